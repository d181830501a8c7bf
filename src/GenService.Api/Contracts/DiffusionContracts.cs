using System.ComponentModel;
using System.Text.Json.Serialization;
using GenService.Generation.Diffusion;

namespace GenService.Api.Contracts;

/// <summary>Body of POST /v1/diffusion/{model}/samples.</summary>
internal sealed class DiffusionSampleRequest : SampleRequest
{
    [Description("Inference steps, 1..num_train_timesteps (default 50).")]
    public int? Steps { get; set; }

    [Description("ddpm, ddim, dpm_solver_pp (DPM-Solver++ 2M), euler, euler_ancestral, pndm (PLMS as diffusers' PNDMScheduler: N + 1 evaluations, N + 9 with the PRK warm-up); default ddim, or the sampler a text-to-image folder's scheduler config names.")]
    public string? Sampler { get; set; }

    [Description("DDIM stochasticity in [0, 1] (ddim only; default 0 = deterministic).")]
    public double? Eta { get; set; }

    [Description("leading, trailing or linspace; default: the model's scheduler.")]
    public string? TimestepSpacing { get; set; }

    [Description("Classifier-free guidance scale. Class-conditional models: default 1 = off, needs a class_label and a null class. Text-to-image: default 7.5, guidance on when > 1 (as diffusers).")]
    public double? GuidanceScale { get; set; }

    [Description("img2img (SDEdit): the starting image, {\"png\": ...} or {\"data\": [...]}, one for all samples.")]
    public ModelInput? Init { get; set; }

    [Description("img2img: how far to noise the init, (0, 1] (default 0.8); 1 starts from pure noise.")]
    public double? Strength { get; set; }

    [Description("Text-to-image models: what to draw.")]
    public string? Prompt { get; set; }

    [Description("Text-to-image models: what to steer away from (its embedding replaces the empty prompt's under guidance).")]
    public string? NegativePrompt { get; set; }

    [Description("Text-to-image models: image height in pixels, a multiple of the model's size_step (GET /v1/models/{model}); default its default size.")]
    public int? Height { get; set; }

    [Description("Text-to-image models: image width in pixels (as height).")]
    public int? Width { get; set; }

    [Description("k: also return k snapshots of x_t and the predicted x0, evenly spread over the steps (default 0).")]
    public int? ReturnIntermediates { get; set; }

    [Description("Stream SSE `progress` events per step, then `result` (also with Accept: text/event-stream).")]
    public bool? Stream { get; set; }

    /// <param name="init">The <see cref="Init"/> image decoded by the web layer (null when absent).</param>
    public DiffusionParameters ToParameters(float[]? init) => Shared(new DiffusionParameters
    {
        Steps = Steps,
        Sampler = Sampler,
        Eta = Eta,
        TimestepSpacing = TimestepSpacing,
        GuidanceScale = GuidanceScale,
        Init = init,
        Strength = Strength,
        ReturnIntermediates = ReturnIntermediates,
        Prompt = Prompt,
        NegativePrompt = NegativePrompt,
        Height = Height,
        Width = Width,
    });
}

/// <summary>An SSE `progress` event of a diffusion request.</summary>
internal sealed record DiffusionProgress(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("steps")] int Steps,
    [property: JsonPropertyName("timestep")] double Timestep,
    [property: JsonPropertyName("elapsed_ms")] double ElapsedMs);
