using System.Diagnostics.Metrics;
using GenService.Generation.Loops;
using GenService.Inference.Options;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Generation.Ar;

/// <summary>
/// Iteration-level AR (<see cref="LoopMode.Iteration"/>, the default): one <see cref="ArIterationLoop"/> per loaded
/// decoder. A job that asks for recomputation on a KV-cache decoder (<see cref="ArJob.UseCache"/> off, a test switch)
/// runs request-level: a loop serves one path per graph.
/// The loops' request deadline: <c>GenService:Ar:DeadlineMs</c>, else <c>GenService:DefaultDeadlineMs</c> (from <c>inference</c>).
/// </summary>
internal sealed class ArLoopRegistry(IOptions<ArLoopOptions> options, IMeterFactory? meterFactory, GenerationTelemetry telemetry, TimeProvider time, ILoggerFactory loggerFactory,
    IOptions<InferenceOptions>? inference = null)
    : LoopRegistry<ArIterationLoop>("ar", "Decoder rows", meterFactory, telemetry, time, loggerFactory), IArLoop
{
    private readonly ArLoopOptions _options = options.Value;
    private readonly TimeSpan _deadline = options.Value.DeadlineOr(inference?.Value.DefaultDeadlineMs ?? (int)ArIterationLoop.DefaultDeadline.TotalMilliseconds);
    private readonly ArRequestLoop _recompute = new(telemetry);

    public IAsyncEnumerable<ArEvent> RunAsync(ArJob job, bool stream, CancellationToken cancellationToken)
        => !job.UseCache && job.Decoder.HasCache
            ? _recompute.RunAsync(job, stream, cancellationToken)
            : For(job).RunAsync(job, cancellationToken, stream);

    /// <summary>The loop of the job's decoder, created on first use.</summary>
    public ArIterationLoop For(ArJob job)
        => LoopOf(job.Decoder.Runner, forget => new ArIterationLoop(job.Decoder, job.Manifest.Name, job.Manifest.Tokens!.MaxLength,
            _options.MaxRowsPerIteration, _options.MaxQueuedSequences, Metrics, Telemetry, Time, LoggerFactory.CreateLogger<ArIterationLoop>(), forget) { Deadline = _deadline, ShedWaitFraction = _options.ShedWaitFraction });
}
