using System.ComponentModel;

namespace GenService.Api.Contracts;

/// <summary>One input of the "other direction" routes: a PNG or raw data in the model's range.</summary>
internal sealed class ModelInput
{
    [Description("Base64 PNG of the model's output size.")]
    public string? Png { get; set; }

    [Description("Flat floats of output.shape (C order), in the model's range.")]
    public float[]? Data { get; set; }
}

/// <summary>Body of encode, reconstruct and log-likelihood (vae, flow).</summary>
internal sealed class InputsRequest
{
    [Description("The inputs, each {\"png\": \"<base64>\"} or {\"data\": [...]}.")]
    public List<ModelInput>? Inputs { get; set; }

    [Description("Class for class-conditional models (applies to every input).")]
    public int? ClassLabel { get; set; }

    [Description("reconstruct only: png, tensor or both.")]
    public string? Output { get; set; }

    [Description("reconstruct only: seed for the latent draw z = mean + sigma * eps (default: decode the mean).")]
    public ulong? Seed { get; set; }
}
