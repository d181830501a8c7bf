using GenService.Generation.Loops;

namespace GenService.Generation.Diffusion;

/// <summary>
/// The seam between a diffusion request and the denoiser calls that compute it: one implementation per
/// <see cref="LoopMode"/>, chosen once from configuration (<c>GenService:Diffusion:Scheduling</c>) by
/// <c>AddGeneration()</c>. Whichever runs a job, its samples are the same (each sample's arithmetic and noise are its
/// own), and it records the job's network evaluations and completion log (<see cref="GenerationTelemetry"/>).
/// </summary>
public interface IDiffusionLoop
{
    LoopMode Mode { get; }

    /// <summary>
    /// Runs the job: <see cref="DiffusionStepDone"/> after each step when <paramref name="progress"/> is true, then
    /// <see cref="DiffusionCompleted"/>. Leaving the enumeration early, or cancelling, stops its compute within one step.
    /// </summary>
    /// <param name="job">The validated request.</param>
    /// <param name="progress">
    /// False when nobody reads the step events (a JSON answer): each event would wake the caller's task, one thread-pool
    /// hop per request per iteration, which on a busy CPU costs more than the denoiser call.
    /// </param>
    /// <param name="cancellationToken">The caller's token (the HTTP request's RequestAborted).</param>
    IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, bool progress, CancellationToken cancellationToken);
}
