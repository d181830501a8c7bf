using GenService.Generation.Loops;

namespace GenService.Generation.Ar;

/// <summary>
/// The seam between an AR request and the decoder calls that compute it: one implementation per
/// <see cref="LoopMode"/>, chosen once from configuration (<c>GenService:Ar:Scheduling</c>) by <c>AddGeneration()</c>.
/// Whichever runs a job, a sample's tokens are the same (its own logits and its own uniforms), and it records the
/// job's network evaluations and completion log (<see cref="GenerationTelemetry"/>).
/// </summary>
public interface IArLoop
{
    LoopMode Mode { get; }

    /// <summary>
    /// Runs the job: with <paramref name="stream"/>, <see cref="ArTokenGenerated"/> and <see cref="ArSampleFinished"/> as
    /// they happen; always <see cref="ArCompleted"/> last. Leaving early, or cancelling, stops its compute before the
    /// next decoder call.
    /// </summary>
    /// <param name="job">The validated request.</param>
    /// <param name="stream">False when nobody reads the token events (a JSON answer): each would wake the caller's task.</param>
    /// <param name="cancellationToken">The caller's token (the HTTP request's RequestAborted).</param>
    IAsyncEnumerable<ArEvent> RunAsync(ArJob job, bool stream, CancellationToken cancellationToken);
}
