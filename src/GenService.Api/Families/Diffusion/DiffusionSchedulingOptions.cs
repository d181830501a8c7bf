using System.ComponentModel.DataAnnotations;

namespace GenService.Api.Families.Diffusion;

/// <summary>How the denoiser calls of concurrent diffusion requests are scheduled.</summary>
public enum DiffusionScheduling
{
    /// <summary>
    /// One loop per diffusion model: every in-flight request contributes its current rows to one denoiser call
    /// per iteration (a timestep per row); requests join and leave between iterations (Orca-style).
    /// </summary>
    Iteration,

    /// <summary>
    /// Each request runs its own step loop, one denoiser call per step with all its rows; the graph's dynamic
    /// batcher merges calls of concurrent requests that happen to coincide. The comparison point and fallback.
    /// </summary>
    Request,
}

/// <summary>Padding of iteration-level denoiser calls to a full batch (see <see cref="DiffusionSchedulingOptions.Padding"/>).</summary>
public enum DiffusionPadding
{
    /// <summary>Pad when padded partial iterations measure faster than unpadded ones (which wait max_queue_delay_ms).</summary>
    Auto,

    /// <summary>Always pad calls with fewer rows than max_batch_size.</summary>
    Always,

    /// <summary>Never pad (each partial iteration waits max_queue_delay_ms in the batcher).</summary>
    Never,
}

/// <summary>
/// Diffusion serving settings, bound from the configuration section <c>GenService:Diffusion</c>
/// (environment variables <c>GenService__Diffusion__Scheduling=request</c> etc.).
/// </summary>
public sealed class DiffusionSchedulingOptions
{
    public const string SectionName = "GenService:Diffusion";

    /// <summary><c>request</c> (default: on the CPU benchmarks in docs/benchmarks.md it was as fast or faster) or <c>iteration</c>.</summary>
    public DiffusionScheduling Scheduling { get; set; } = DiffusionScheduling.Request;

    /// <summary>
    /// Most denoiser rows in one iteration (a guided sample takes two); 0 = the denoiser's max_batch_size, so an
    /// iteration is one batch. Samples beyond it wait, FIFO, and join as others finish.
    /// </summary>
    [Range(0, 65536)]
    public int MaxRowsPerIteration { get; set; }

    /// <summary>
    /// Whether an iteration's denoiser call is padded up to the denoiser's max_batch_size (copies of its first row,
    /// outputs ignored). Why: the graph's dynamic batcher holds a batch that is not full for up to
    /// max_queue_delay_ms, waiting for company; the scheduler is the denoiser's only caller, so no company comes
    /// and every iteration would pay the delay (about 4 ms per step on the 2-core box for digits-ddpm, against
    /// about 1 ms to compute 64 rows). A full batch leaves at once. <c>auto</c> (default) measures the call latency
    /// of padded and unpadded partial iterations and keeps the faster (so a large model on a CPU, where padding
    /// costs more than the wait, is not padded); <c>always</c> and <c>never</c> force it. The lasting fix is a per-call "do not wait" flag in the batcher.
    /// </summary>
    public DiffusionPadding Padding { get; set; } = DiffusionPadding.Auto;

    /// <summary>Most samples waiting for admission per model; beyond it a request is refused at once (429, Retry-After).</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedSamples { get; set; } = 4096;
}
