using System.Diagnostics.Metrics;
using GenService.Generation.Loops;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Generation.Ar;

/// <summary>
/// Iteration-level AR (<see cref="LoopMode.Iteration"/>, the default): one <see cref="ArIterationLoop"/> per loaded
/// decoder (i.e. per model version), created on first use. A job that asks for recomputation on a KV-cache decoder
/// (<see cref="ArJob.UseCache"/> off, a test switch) runs request-level: a loop serves one path per graph.
/// </summary>
internal sealed class ArLoopRegistry : IArLoop, IDisposable
{
    private readonly ArLoopOptions _options;
    private readonly IterationLoopMetrics? _metrics;
    private readonly GenerationTelemetry _telemetry;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ArRequestLoop _recompute;
    private readonly LoopTable<ArIterationLoop> _loops = new();

    public ArLoopRegistry(IOptions<ArLoopOptions> options, IMeterFactory? meterFactory, GenerationTelemetry telemetry, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _metrics = meterFactory is null ? null : new IterationLoopMetrics(meterFactory, "ar", "Decoder rows", _loops.ObserveActive);
        _telemetry = telemetry;
        _time = time;
        _loggerFactory = loggerFactory;
        _recompute = new ArRequestLoop(telemetry);
    }

    public LoopMode Mode => LoopMode.Iteration;

    public IAsyncEnumerable<ArEvent> RunAsync(ArJob job, bool stream, CancellationToken cancellationToken)
        => !job.UseCache && job.Decoder.HasCache
            ? _recompute.RunAsync(job, stream, cancellationToken)
            : For(job).RunAsync(job, cancellationToken, stream);

    /// <summary>The loop of the job's decoder, created on first use.</summary>
    public ArIterationLoop For(ArJob job)
        => _loops.GetOrCreate(job.Decoder.Runner, forget => new ArIterationLoop(job.Decoder, job.Manifest.Name, job.Manifest.Tokens!.MaxLength,
            _options.MaxRowsPerIteration, _options.MaxQueuedSequences, _metrics, _telemetry, _time, _loggerFactory.CreateLogger<ArIterationLoop>(), forget));

    /// <summary>Loops alive now (tests, metrics).</summary>
    public IReadOnlyList<ArIterationLoop> Loops => _loops.All;

    public void Dispose() => _loops.Dispose();
}
