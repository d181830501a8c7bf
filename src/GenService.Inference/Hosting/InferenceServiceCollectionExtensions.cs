using GenService.Inference.Metrics;
using GenService.Inference.Options;
using GenService.Inference.Repository;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace GenService.Inference.Hosting;

public static class InferenceServiceCollectionExtensions
{
    /// <summary>
    /// Registers the inference core: <see cref="InferenceOptions"/> (section "GenService", validated at
    /// start), <see cref="TimeProvider"/>, <see cref="GenServiceMetrics"/>, <see cref="IModelRepository"/>
    /// and a hosted service that indexes the repository in the background at startup; <see cref="ServiceLifecycle"/>
    /// (service readiness and admission) with the graceful shutdown sequence (<see cref="ShutdownOptions"/>); and the
    /// repository watcher (<see cref="RepositoryWatchOptions"/>).
    /// </summary>
    public static IServiceCollection AddGenServiceInference(this IServiceCollection services)
    {
        services.AddOptions<InferenceOptions>()
            .BindConfiguration(InferenceOptions.SectionName)
            .PostConfigure<IServiceProvider>((o, sp) =>
            {
                if (string.IsNullOrWhiteSpace(o.ModelRepository))
                {
                    string? contentRoot = sp.GetService<IHostEnvironment>()?.ContentRootPath;
                    o.ModelRepository = InferenceOptions.FindDefaultRepository(contentRoot, AppContext.BaseDirectory);
                }
                else if (!Path.IsPathRooted(o.ModelRepository) && sp.GetService<IHostEnvironment>()?.ContentRootPath is { } root)
                {
                    o.ModelRepository = Path.GetFullPath(o.ModelRepository, root);
                }
            })
            .Validate(o => InferenceOptions.Providers.Contains(o.ExecutionProvider.ToLowerInvariant()),
                "GenService:ExecutionProvider must be 'cpu' or 'cuda'.")
            .Validate(o => InferenceOptions.OptimizationLevels.Contains(o.GraphOptimizationLevel.ToLowerInvariant()),
                "GenService:GraphOptimizationLevel must be one of disable, basic, extended, all.")
            .Validate(o => o.IntraOpNumThreads >= 0 && o.InterOpNumThreads >= 0,
                "GenService:IntraOpNumThreads and InterOpNumThreads must be >= 0 (0 = ONNX Runtime default).")
            .Validate(o => o.Instances >= 0, "GenService:Instances must be >= 0 (0 = each model.json's instances).")
            .Validate(o => o.DeviceId >= 0, "GenService:DeviceId must be >= 0.")
            .Validate(o => o.DefaultDeadlineMs > 0, "GenService:DefaultDeadlineMs must be > 0.")
            .Validate(o => o.DrainGraceMs >= 0, "GenService:DrainGraceMs must be >= 0.")
            .ValidateOnStart();
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<GenServiceMetrics>();
        services.TryAddSingleton(sp => new ModelRepository(
            sp.GetRequiredService<IOptions<InferenceOptions>>(),
            sp.GetRequiredService<GenServiceMetrics>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>(),
            sp.GetServices<IModelLoadCheck>()));
        services.TryAddSingleton<IModelRepository>(sp => sp.GetRequiredService<ModelRepository>());
        services.AddOptions<RepositoryWatchOptions>()
            .BindConfiguration(RepositoryWatchOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<ShutdownOptions>()
            .BindConfiguration(ShutdownOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.TryAddSingleton<ServiceLifecycle>();
        services.AddHostedService<RepositoryStartupService>();
        services.AddHostedService<RepositoryWatchService>();
        services.AddHostedService<GracefulShutdownService>();
        return services;
    }
}

/// <summary>Indexes the repository at startup without holding up the host: models report Loading until ready.</summary>
internal sealed class RepositoryStartupService(ModelRepository repository, IOptions<InferenceOptions> options, ServiceLifecycle lifecycle) : IHostedService
{
    // Never disposed on purpose: hosts may call StopAsync again after disposing services (the
    // WebApplicationFactory does), and a CTS without timers or links holds nothing to release.
    private readonly CancellationTokenSource _stopping = new();
    private Task _scan = Task.CompletedTask;

    /// <summary>
    /// The scan started by <see cref="StartAsync"/>: completes once every model folder found at startup is listed and,
    /// with LoadOnStartup, has loaded or failed (tests await it instead of polling the repository).
    /// </summary>
    internal Task Scan => _scan;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        bool load = options.Value.LoadOnStartup;
        _scan = Task.Run(
            async () =>
            {
                try
                {
                    await repository.ScanAsync(load, _stopping.Token);
                }
                finally
                {
                    // Ready or failed, every model found at startup has had its load: the service is ready.
                    lifecycle.MarkStarted();
                }
            },
            CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        try
        {
            await _scan.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Stopping mid-load is fine: the repository disposes what loaded.
        }
    }
}
