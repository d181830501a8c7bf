using System.Diagnostics.Metrics;
using GenService.Generation.Loops;
using GenService.Inference.Options;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Generation.Diffusion;

/// <summary>Iteration-level diffusion (<see cref="LoopMode.Iteration"/>, the default): one <see cref="DiffusionIterationLoop"/> per loaded denoiser. The loops' request deadline: <c>GenService:Diffusion:DeadlineMs</c>, else <c>GenService:DefaultDeadlineMs</c> (from <c>inference</c>).</summary>
internal sealed class DiffusionLoopRegistry(IOptions<DiffusionLoopOptions> options, IMeterFactory? meterFactory, GenerationTelemetry telemetry, TimeProvider time, ILoggerFactory loggerFactory,
    IOptions<InferenceOptions>? inference = null)
    : LoopRegistry<DiffusionIterationLoop>("diffusion", "Denoiser rows", meterFactory, telemetry, time, loggerFactory), IDiffusionLoop
{
    private readonly DiffusionLoopOptions _options = options.Value;
    private readonly TimeSpan _deadline = options.Value.DeadlineOr(inference?.Value.DefaultDeadlineMs ?? (int)DiffusionIterationLoop.DefaultDeadline.TotalMilliseconds);

    public IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, bool progress, CancellationToken cancellationToken)
        => For(job).RunAsync(job, cancellationToken, progress);

    /// <summary>The loop of the job's denoiser, created on first use.</summary>
    public DiffusionIterationLoop For(DiffusionJob job)
        => LoopOf(job.Denoiser, forget => new DiffusionIterationLoop(job.Denoiser, job.Manifest, _options.MaxRowsPerIteration,
            _options.MaxQueuedSamples, Metrics, Telemetry, Time, LoggerFactory.CreateLogger<DiffusionIterationLoop>(), forget) { Deadline = _deadline, ShedWaitFraction = _options.ShedWaitFraction });
}
