using GenService.Generation.Loops;
using GenService.Inference.Manifest;
using GenService.Inference.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace GenService.Generation;

/// <summary>
/// What every generation leaves behind when it ends, whichever family and loop ran it: its network evaluations on
/// <c>genservice.network.evaluations</c> ("network evaluations per sample, summed": a diffusion sample's denoiser
/// rows, an AR sample's decoder rows, a single pass per sample for gan, vae and flow; a request that stops early
/// counts what it computed), and one log line (completed at Debug, stopped early at Information). The loops call it;
/// the web layer never does.
/// </summary>
public sealed class GenerationTelemetry(GenServiceMetrics? metrics, ILogger<GenerationTelemetry> logger)
{
    /// <summary>No metrics, no logs (tests that build a loop by hand).</summary>
    public static GenerationTelemetry None { get; } = new(null, NullLogger<GenerationTelemetry>.Instance);

    /// <summary>A request of a loop ended: completed (<paramref name="stopped"/> null), cancelled or failed.</summary>
    /// <param name="family">The model's family.</param>
    /// <param name="model">The model's name.</param>
    /// <param name="count">Samples of the request.</param>
    /// <param name="evaluations">Network evaluations computed for it, summed over its samples.</param>
    /// <param name="calls">Graph calls that carried its rows.</param>
    /// <param name="loop">The loop that ran it.</param>
    /// <param name="stopped">Why it ended early, or null when it completed.</param>
    internal void Ended(ModelFamily family, string model, int count, long evaluations, int calls, LoopMode loop, Exception? stopped)
    {
        metrics?.RecordNetworkEvaluations(model, family.WireName(), evaluations);
        if (stopped is null)
        {
            Log.GenerationCompleted(logger, family.WireName(), model, count, evaluations, calls, loop == LoopMode.Iteration ? "iteration" : "request");
        }
        else
        {
            Log.GenerationStopped(logger, family.WireName(), model, stopped is OperationCanceledException ? "cancelled" : stopped.Message, evaluations);
        }
    }

    /// <summary>
    /// A loop refused or ended a request before its result: <paramref name="reason"/> queue_full (refused at once) or
    /// deadline (<c>genservice.rejected</c>, tagged with the loop's graph).
    /// </summary>
    internal void Rejected(string model, string graph, string reason) => metrics?.RecordRejected(model, graph, reason);

    /// <summary>A loop's caller went away (disconnected, cancelled, stopped reading) before its result: once per request.</summary>
    internal void Cancelled(string model, string graph) => metrics?.RecordCancelled(model, graph);

    /// <summary>A request that needs no loop (one pass of a graph, or a scoring call) computed <paramref name="evaluations"/>.</summary>
    internal void Evaluated(ModelFamily family, string model, long evaluations)
        => metrics?.RecordNetworkEvaluations(model, family.WireName(), evaluations);
}
