using System.ComponentModel.DataAnnotations;

namespace GenService.Generation.Loops;

/// <summary>The settings every family's loops take (<c>GenService:Diffusion</c>, <c>GenService:Ar</c>).</summary>
public abstract class LoopOptions
{
    /// <summary>
    /// <c>iteration</c> (default: one loop per graph; every in-flight request contributes its current rows to one call
    /// per iteration; docs/benchmarks.md) or <c>request</c> (each request its own loop, merged only by the dynamic
    /// batcher: the comparison point and fallback).
    /// </summary>
    public LoopMode Scheduling { get; set; } = LoopMode.Iteration;

    /// <summary>
    /// Most graph rows in one iteration (a guided diffusion sample takes two, an AR sequence one); 0 = the graph's
    /// max_batch_size, so an iteration is one batch. Items beyond it wait, FIFO, and join as others finish.
    /// </summary>
    [Range(0, 65536)]
    public int MaxRowsPerIteration { get; set; }

    /// <summary>
    /// How long a request may take in an iteration loop, from submission to its result (waiting and every iteration),
    /// in milliseconds; past it the request fails with 504 and its rows stop being computed. 0 (default) =
    /// <c>GenService:DefaultDeadlineMs</c> (30 s). Raise it where long requests are legitimate (many samples x many
    /// steps on a CPU host); a caller can only shorten it (<c>X-Request-Timeout-Ms</c>).
    /// </summary>
    [Range(0, int.MaxValue)]
    public int DeadlineMs { get; set; }

    /// <summary>Default of <see cref="ShedWaitFraction"/>.</summary>
    internal const double DefaultShedWaitFraction = 0.5;

    /// <summary>
    /// Load shedding: a request is refused at once (429 + Retry-After) when its caller's own waiting requests would
    /// take longer than this fraction of its deadline to start, at the rate that caller is being served, instead of
    /// waiting to time out with a 504. 0 = off (requests queue until <c>MaxQueued*</c> and time out at the deadline).
    /// </summary>
    [Range(0.0, 1.0)]
    public double ShedWaitFraction { get; set; } = DefaultShedWaitFraction;

    /// <summary>The loops' deadline: <see cref="DeadlineMs"/>, else <paramref name="defaultDeadlineMs"/>.</summary>
    internal TimeSpan DeadlineOr(int defaultDeadlineMs) => TimeSpan.FromMilliseconds(DeadlineMs > 0 ? DeadlineMs : defaultDeadlineMs);
}
