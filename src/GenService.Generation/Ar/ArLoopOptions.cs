using System.ComponentModel.DataAnnotations;
using GenService.Generation.Loops;

namespace GenService.Generation.Ar;

/// <summary>
/// AR serving settings, bound from the configuration section <c>GenService:Ar</c>
/// (environment variables <c>GenService__Ar__Scheduling=request</c> etc.).
/// </summary>
public sealed class ArLoopOptions
{
    public const string SectionName = "GenService:Ar";

    /// <summary><c>iteration</c> (default: one token per in-flight sequence per iteration) or <c>request</c> (each request its own loop).</summary>
    public LoopMode Scheduling { get; set; } = LoopMode.Iteration;

    /// <summary>Most sequences per iteration; 0 = the decoder's max_batch_size. Sequences beyond wait, FIFO, and join as others finish.</summary>
    [Range(0, 65536)]
    public int MaxRowsPerIteration { get; set; }

    /// <summary>Most sequences waiting for admission per model; beyond it a request is refused at once (429, Retry-After).</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedSequences { get; set; } = 4096;
}
