using System.ComponentModel.DataAnnotations;
using GenService.Generation.Loops;

namespace GenService.Generation.Ar;

/// <summary>
/// AR serving settings, bound from the configuration section <c>GenService:Ar</c>
/// (environment variables <c>GenService__Ar__Scheduling=request</c> etc.).
/// </summary>
public sealed class ArLoopOptions : LoopOptions
{
    public const string SectionName = "GenService:Ar";

    /// <summary>Most sequences waiting for admission per model; beyond it a request is refused at once (429, Retry-After).</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedSequences { get; set; } = 4096;
}
