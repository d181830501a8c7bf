using System.ComponentModel.DataAnnotations;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families.Diffusion;

/// <summary>
/// Runs diffusion jobs in the configured mode: <see cref="DiffusionScheduling.Iteration"/> through one
/// <see cref="DiffusionScheduler"/> per loaded denoiser (created on first use), or
/// <see cref="DiffusionScheduling.Request"/> through the request-level <see cref="DiffusionPipeline"/>.
/// Schedulers are keyed by the denoiser runner, i.e. by model version: a reloaded model brings a new runner and
/// so a new loop, while requests already on the old version finish there. The table holds runners weakly, so an
/// unloaded version and its (idle) scheduler can be collected.
/// </summary>
internal sealed class DiffusionSchedulerRegistry : IDisposable
{
    private readonly DiffusionSchedulingOptions _options;
    private readonly DiffusionSchedulerMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ConditionalWeakTable<IGraphRunner, DiffusionScheduler> _schedulers = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    public DiffusionSchedulerRegistry(IOptions<DiffusionSchedulingOptions> options, IMeterFactory? meterFactory, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _metrics = meterFactory is null ? null : new DiffusionSchedulerMetrics(meterFactory, ObserveActive);
        _time = time;
        _loggerFactory = loggerFactory;
    }

    public DiffusionScheduling Mode => _options.Scheduling;

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
        => _options.Scheduling == DiffusionScheduling.Request
            ? DiffusionPipeline.RunAsync(job, cancellationToken)
            : For(job).RunAsync(job, cancellationToken, progress);

    /// <summary>The scheduler of the job's denoiser, created on first use.</summary>
    public DiffusionScheduler For(DiffusionJob job)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_schedulers.TryGetValue(job.Denoiser, out DiffusionScheduler? scheduler))
            {
                scheduler = new DiffusionScheduler(job.Denoiser, job.Manifest, _options.MaxRowsPerIteration, _options.MaxQueuedSamples,
                    _metrics, _time, _loggerFactory.CreateLogger<DiffusionScheduler>(), Forget, _options.Padding);
                _schedulers.Add(job.Denoiser, scheduler);
            }

            return scheduler;
        }
    }

    /// <summary>Schedulers alive now (tests, metrics).</summary>
    public IReadOnlyList<DiffusionScheduler> Schedulers
    {
        get
        {
            lock (_lock)
            {
                return [.. _schedulers.Select(p => p.Value)];
            }
        }
    }

    private void Forget(DiffusionScheduler scheduler)
    {
        lock (_lock)
        {
            if (_schedulers.TryGetValue(scheduler.Denoiser, out DiffusionScheduler? current) && ReferenceEquals(current, scheduler))
            {
                _schedulers.Remove(scheduler.Denoiser);
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveActive()
    {
        foreach (DiffusionScheduler s in Schedulers)
        {
            yield return new Measurement<int>(s.ActiveRequests, new KeyValuePair<string, object?>("model", s.ModelName));
        }
    }

    public void Dispose()
    {
        IReadOnlyList<DiffusionScheduler> all;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            all = [.. _schedulers.Select(p => p.Value)];
            _disposed = true;
        }

        foreach (DiffusionScheduler s in all)
        {
            s.Dispose();
        }
    }
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
