using System.ComponentModel.DataAnnotations;
using System.Diagnostics.Metrics;
using GenService.Api.Families.Common;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families.Diffusion;

/// <summary>
/// Runs diffusion jobs in the configured mode: <see cref="SchedulingMode.Iteration"/> through one
/// <see cref="DiffusionScheduler"/> per loaded denoiser (created on first use), or
/// <see cref="SchedulingMode.Request"/> through the request-level <see cref="DiffusionPipeline"/>.
/// Schedulers are keyed by the denoiser runner, i.e. by model version: a reloaded model brings a new runner and
/// so a new loop, while requests already on the old version finish there. The table holds runners weakly, so an
/// unloaded version and its (idle) scheduler can be collected.
/// </summary>
internal sealed class DiffusionSchedulerRegistry : IDisposable
{
    private readonly DiffusionSchedulingOptions _options;
    private readonly IterationSchedulerMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly SchedulerTable<DiffusionScheduler> _schedulers = new();

    public DiffusionSchedulerRegistry(IOptions<DiffusionSchedulingOptions> options, IMeterFactory? meterFactory, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _metrics = meterFactory is null ? null : new IterationSchedulerMetrics(meterFactory, "diffusion", "Denoiser rows", _schedulers.ObserveActive);
        _time = time;
        _loggerFactory = loggerFactory;
    }

    public SchedulingMode Mode => _options.Scheduling;

    /// <summary>
    /// The registry of a host that did not register one (<see cref="DiffusionSchedulingExtensions.AddDiffusionScheduling"/>):
    /// options bound and validated here, disposed when the host stops.
    /// </summary>
    public static DiffusionSchedulerRegistry FromHost(IServiceProvider services)
    {
        var options = new DiffusionSchedulingOptions();
        services.GetRequiredService<IConfiguration>().GetSection(DiffusionSchedulingOptions.SectionName).Bind(options);
        Validator.ValidateObject(options, new ValidationContext(options), validateAllProperties: true);
        var registry = new DiffusionSchedulerRegistry(
            Options.Create(options),
            services.GetService<IMeterFactory>(),
            services.GetService<TimeProvider>() ?? TimeProvider.System,
            services.GetRequiredService<ILoggerFactory>());
        services.GetService<IHostApplicationLifetime>()?.ApplicationStopping.Register(registry.Dispose);
        return registry;
    }

    /// <summary>
    /// Runs the job in the configured mode (the endpoints' one entry point). With <paramref name="progress"/> false
    /// the iteration-level scheduler may leave out the <see cref="DiffusionStepDone"/> events.
    /// </summary>
    public IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, CancellationToken cancellationToken, bool progress = true)
        => _options.Scheduling == SchedulingMode.Request
            ? DiffusionPipeline.RunAsync(job, cancellationToken)
            : For(job).RunAsync(job, cancellationToken, progress);

    /// <summary>The scheduler of the job's denoiser, created on first use.</summary>
    public DiffusionScheduler For(DiffusionJob job)
        => _schedulers.GetOrCreate(job.Denoiser, forget => new DiffusionScheduler(job.Denoiser, job.Manifest, _options.MaxRowsPerIteration,
            _options.MaxQueuedSamples, _metrics, _time, _loggerFactory.CreateLogger<DiffusionScheduler>(), forget));

    /// <summary>Schedulers alive now (tests, metrics).</summary>
    public IReadOnlyList<DiffusionScheduler> Schedulers => _schedulers.All;

    public void Dispose() => _schedulers.Dispose();
}

/// <summary>Registration of the diffusion scheduling services.</summary>
public static class DiffusionSchedulingExtensions
{
    /// <summary>
    /// Binds <see cref="DiffusionSchedulingOptions"/> from <c>GenService:Diffusion</c> (validated at start) and
    /// registers the scheduler registry. Optional: without it, MapDiffusionEndpoints builds one from configuration.
    /// </summary>
    public static IServiceCollection AddDiffusionScheduling(this IServiceCollection services)
    {
        services.AddOptions<DiffusionSchedulingOptions>()
            .BindConfiguration(DiffusionSchedulingOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton<DiffusionSchedulerRegistry>();
        return services;
    }
}
