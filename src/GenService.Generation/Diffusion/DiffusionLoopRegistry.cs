using System.Diagnostics.Metrics;
using GenService.Generation.Loops;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Generation.Diffusion;

/// <summary>
/// Iteration-level diffusion (<see cref="LoopMode.Iteration"/>, the default): one <see cref="DiffusionIterationLoop"/>
/// per loaded denoiser, created on first use. Loops are keyed by the denoiser runner, i.e. by model version: a
/// reloaded model brings a new runner and so a new loop, while requests already on the old version finish there. The
/// table holds runners weakly, so an unloaded version and its (idle) loop can be collected.
/// </summary>
internal sealed class DiffusionLoopRegistry : IDiffusionLoop, IDisposable
{
    private readonly DiffusionLoopOptions _options;
    private readonly IterationLoopMetrics? _metrics;
    private readonly GenerationTelemetry _telemetry;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly LoopTable<DiffusionIterationLoop> _loops = new();

    public DiffusionLoopRegistry(IOptions<DiffusionLoopOptions> options, IMeterFactory? meterFactory, GenerationTelemetry telemetry, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _metrics = meterFactory is null ? null : new IterationLoopMetrics(meterFactory, "diffusion", "Denoiser rows", _loops.ObserveActive);
        _telemetry = telemetry;
        _time = time;
        _loggerFactory = loggerFactory;
    }

    public LoopMode Mode => LoopMode.Iteration;

    public IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, bool progress, CancellationToken cancellationToken)
        => For(job).RunAsync(job, cancellationToken, progress);

    /// <summary>The loop of the job's denoiser, created on first use.</summary>
    public DiffusionIterationLoop For(DiffusionJob job)
        => _loops.GetOrCreate(job.Denoiser, forget => new DiffusionIterationLoop(job.Denoiser, job.Manifest, _options.MaxRowsPerIteration,
            _options.MaxQueuedSamples, _metrics, _telemetry, _time, _loggerFactory.CreateLogger<DiffusionIterationLoop>(), forget));

    /// <summary>Loops alive now (tests, metrics).</summary>
    public IReadOnlyList<DiffusionIterationLoop> Loops => _loops.All;

    public void Dispose() => _loops.Dispose();
}
