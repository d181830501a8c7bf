using System.Diagnostics.Metrics;
using GenService.Generation.Ar;
using GenService.Generation.Budgets;
using GenService.Generation.Diffusion;
using GenService.Generation.Latent;
using GenService.Generation.Loops;
using GenService.Generation.TextToImage;
using GenService.Inference.Metrics;
using GenService.Inference.Options;
using GenService.Inference.Repository;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Generation;

/// <summary>Registration of the generation engine.</summary>
public static class GenerationServiceCollectionExtensions
{
    /// <summary>
    /// Registers the generation engine on top of the inference core (<c>AddGenServiceInference()</c>):
    /// <list type="bullet">
    /// <item><see cref="DiffusionLoopOptions"/> (<c>GenService:Diffusion</c>) and <see cref="ArLoopOptions"/> (<c>GenService:Ar</c>), validated at start;</item>
    /// <item>one <see cref="IDiffusionLoop"/> and one <see cref="IArLoop"/>, each chosen once from its <c>Scheduling</c> setting
    /// (<see cref="LoopMode.Iteration"/>: one iteration loop per loaded graph; <see cref="LoopMode.Request"/>: each request its own loop);</item>
    /// <item><see cref="LatentGeneration"/> (gan, vae, flow), <see cref="ArLikelihoodScorer"/> and the shared <see cref="GenerationTelemetry"/>;</item>
    /// <item><see cref="WorkBudget"/> with <see cref="WorkBudgetOptions"/> (<c>GenService:Limits</c>): work per request and per caller in flight.</item>
    /// </list>
    /// The loops are disposed with the container: requests still in them fail as "model not ready".
    /// </summary>
    public static IServiceCollection AddGeneration(this IServiceCollection services)
    {
        services.AddOptions<DiffusionLoopOptions>()
            .BindConfiguration(DiffusionLoopOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<ArLoopOptions>()
            .BindConfiguration(ArLoopOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<TextToImageOptions>()
            .BindConfiguration(TextToImageOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<WorkBudgetOptions>()
            .BindConfiguration(WorkBudgetOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.TryAddSingleton(sp => new WorkBudget(sp.GetRequiredService<IOptions<WorkBudgetOptions>>(), sp.GetService<GenServiceMetrics>()));
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new GenerationTelemetry(sp.GetService<GenServiceMetrics>(), sp.GetRequiredService<ILogger<GenerationTelemetry>>()));
        services.TryAddSingleton<LatentGeneration>();
        services.TryAddSingleton<ArLikelihoodScorer>();
        services.TryAddSingleton(sp => new TextToImagePipeline(sp.GetRequiredService<IDiffusionLoop>(), sp.GetRequiredService<IOptions<TextToImageOptions>>(), sp.GetService<IMeterFactory>(), sp.GetRequiredService<WorkBudget>()));
        services.AddSingleton<IModelLoadCheck>(sp => sp.GetRequiredService<TextToImagePipeline>());
        services.TryAddSingleton<IDiffusionLoop>(sp =>
        {
            IOptions<DiffusionLoopOptions> options = sp.GetRequiredService<IOptions<DiffusionLoopOptions>>();
            GenerationTelemetry telemetry = sp.GetRequiredService<GenerationTelemetry>();
            return options.Value.Scheduling == LoopMode.Request
                ? new DiffusionRequestLoop(telemetry)
                : new DiffusionLoopRegistry(options, sp.GetService<IMeterFactory>(), telemetry, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>(),
                    sp.GetService<IOptions<InferenceOptions>>());
        });
        services.TryAddSingleton<IArLoop>(sp =>
        {
            IOptions<ArLoopOptions> options = sp.GetRequiredService<IOptions<ArLoopOptions>>();
            GenerationTelemetry telemetry = sp.GetRequiredService<GenerationTelemetry>();
            return options.Value.Scheduling == LoopMode.Request
                ? new ArRequestLoop(telemetry)
                : new ArLoopRegistry(options, sp.GetService<IMeterFactory>(), telemetry, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>(),
                    sp.GetService<IOptions<InferenceOptions>>());
        });
        return services;
    }
}
