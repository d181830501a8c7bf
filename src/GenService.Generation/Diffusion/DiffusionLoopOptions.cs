using System.ComponentModel.DataAnnotations;
using GenService.Generation.Loops;

namespace GenService.Generation.Diffusion;

/// <summary>
/// Diffusion serving settings, bound from the configuration section <c>GenService:Diffusion</c>
/// (environment variables <c>GenService__Diffusion__Scheduling=request</c> etc.).
/// </summary>
public sealed class DiffusionLoopOptions : LoopOptions
{
    public const string SectionName = "GenService:Diffusion";

    /// <summary>Most samples waiting for admission per model; beyond it a request is refused at once (429, Retry-After).</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedSamples { get; set; } = 4096;
}
