using System.ComponentModel;
using GenService.Api.Families.Common;
using GenService.Generation.Latent;
using GenService.Inference.Manifest;

namespace GenService.Api.Contracts;

/// <summary>One end of an interpolation: exactly one of seed, latent or input.</summary>
internal sealed class InterpolationEnd
{
    [Description("The latent sample 0 of this seed would start from.")]
    public ulong? Seed { get; set; }

    [Description("An explicit latent, flat, of the latent shape.")]
    public float[]? Latent { get; set; }

    [Description("An input encoded to its latent (vae: the posterior mean; flow: the exact latent), where the model has an encoder.")]
    public ModelInput? Input { get; set; }

    /// <param name="manifest">The model (what a PNG input decodes to).</param>
    /// <param name="field">"from" or "to".</param>
    public Generation.Latent.InterpolationEnd ToEnd(ModelManifest manifest, string field)
        => new(Seed, Latent, Input is null ? null : ModelIO.DecodeInput(Input, manifest, $"{field}.input"));
}

/// <summary>Body of POST /v1/{gan|vae|flow|diffusion}/{model}/interpolations.</summary>
internal sealed class InterpolationRequest
{
    public InterpolationEnd? From { get; set; }

    public InterpolationEnd? To { get; set; }

    [Description("Frames including both ends, 2..max_count (default 8).")]
    public int? Frames { get; set; }

    [Description("slerp (default) or lerp.")]
    public string? Method { get; set; }

    public int? ClassLabel { get; set; }

    public string? Output { get; set; }

    [Description("gan, vae, flow: latent scale (default 1).")]
    public float? Temperature { get; set; }

    [Description("diffusion: DDIM steps (default 50).")]
    public int? Steps { get; set; }

    [Description("diffusion: classifier-free guidance scale (default 1).")]
    public float? GuidanceScale { get; set; }

    /// <param name="manifest">The model (what PNG inputs at the ends decode to).</param>
    public InterpolationParameters ToParameters(ModelManifest manifest) => new()
    {
        From = From?.ToEnd(manifest, "from"),
        To = To?.ToEnd(manifest, "to"),
        Frames = Frames,
        Method = Method,
        ClassLabel = ClassLabel,
        Temperature = Temperature,
        Steps = Steps,
        GuidanceScale = GuidanceScale,
    };
}
