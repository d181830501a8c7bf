namespace GenService.Generation.Loops;

/// <summary>How the graph calls of concurrent requests of one model are scheduled (diffusion steps, AR tokens).</summary>
public enum LoopMode
{
    /// <summary>
    /// One loop per model: every in-flight request contributes its current rows to one graph call per iteration
    /// (a timestep or a token per row); requests join and leave between iterations (Orca-style).
    /// </summary>
    Iteration,

    /// <summary>
    /// Each request runs its own loop, one graph call per step or token with all its rows; the graph's dynamic
    /// batcher merges calls of concurrent requests that happen to coincide. The comparison point and fallback.
    /// </summary>
    Request,
}
