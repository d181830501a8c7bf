using GenService.Inference;

namespace GenService.Generation.Loops;

/// <summary>
/// What the iteration loops do when a graph call of an iteration fails: the call's rows are re-run split by owner
/// request (one call per request, its rows as they were), the requests that fail alone end, and the others advance
/// in the same iteration as if nothing had happened (each sample's and sequence's arithmetic is its own, so its rows
/// give the same numbers in any company).
/// <para>
/// Why per request rather than bisection (which the dynamic batcher uses): a loop drops an offender at its first
/// failing iteration, so the re-runs are paid once per offender, not on every iteration, and an iteration holds few
/// requests (at most the row cap). At most one re-run per request of the failed call.
/// </para>
/// <para>
/// Who is at fault: a request that fails alone while another request of the call succeeded gets
/// <see cref="InputNotComputableException"/> (400, one warning line, <c>genservice.{family}.isolated</c>). When every
/// request fails, or the call held only one, nothing shows the model can compute the call: each keeps the original
/// error (500), logged once with its stack. A model version that goes away (<see cref="ModelNotReadyException"/>) or a
/// loop that stops is not isolated: the loop closes as before.
/// </para>
/// </summary>
internal static class IterationIsolation
{
    /// <summary>Whether a failed call is worth re-running apart (not: the model is gone, or the loop stops).</summary>
    public static bool CanIsolate(Exception e, CancellationToken stopping)
        => e is not ModelNotReadyException && e is not OperationCanceledException && !stopping.IsCancellationRequested;
}
