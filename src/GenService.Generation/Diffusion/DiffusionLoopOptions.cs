using System.ComponentModel.DataAnnotations;
using GenService.Generation.Loops;

namespace GenService.Generation.Diffusion;

/// <summary>
/// Diffusion serving settings, bound from the configuration section <c>GenService:Diffusion</c>
/// (environment variables <c>GenService__Diffusion__Scheduling=request</c> etc.).
/// </summary>
public sealed class DiffusionLoopOptions
{
    public const string SectionName = "GenService:Diffusion";

    /// <summary>
    /// <c>iteration</c> (default: one denoiser call per iteration for every in-flight request; docs/benchmarks.md) or
    /// <c>request</c> (each request its own step loop, merged only by the dynamic batcher: the fallback).
    /// </summary>
    public LoopMode Scheduling { get; set; } = LoopMode.Iteration;

    /// <summary>
    /// Most denoiser rows in one iteration (a guided sample takes two); 0 = the denoiser's max_batch_size, so an
    /// iteration is one batch. Samples beyond it wait, FIFO, and join as others finish.
    /// </summary>
    [Range(0, 65536)]
    public int MaxRowsPerIteration { get; set; }

    /// <summary>Most samples waiting for admission per model; beyond it a request is refused at once (429, Retry-After).</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedSamples { get; set; } = 4096;
}
