using System.ComponentModel;
using GenService.Generation;
using GenService.Generation.Latent;

namespace GenService.Api.Contracts;

/// <summary>Fields every sampling request shares (docs/http-api.md, "Common request fields").</summary>
internal class SampleRequest
{
    [Description("Samples to draw, 1..max_count (default 1; with explicit latents, their number).")]
    public int? Count { get; set; }

    [Description("uint64 seed; sample i depends only on (seed, i, the other parameters). Random when absent.")]
    public ulong? Seed { get; set; }

    [Description("Class for class-conditional models, 0..num_classes-1. Absent: the null class where the model has one, else a class drawn per sample from the seed.")]
    public int? ClassLabel { get; set; }

    [Description("Explicit starting noise: `count` flat float arrays of the latent shape (C order), unit normal.")]
    public float[][]? Latents { get; set; }

    [Description("png, tensor or both. Default png (tensor for models whose output is not an image).")]
    public string? Output { get; set; }

    /// <summary>The family's parameters with the shared fields set (a record's <c>with</c> keeps its runtime type).</summary>
    protected T Shared<T>(T parameters)
        where T : SampleParameters
        => (T)((SampleParameters)parameters with { Count = Count, Seed = Seed, ClassLabel = ClassLabel, Latents = Latents });
}

/// <summary>Body of POST /v1/gan/{model}/samples.</summary>
internal sealed class GanSampleRequest : SampleRequest
{
    [Description("In (0, 1]: drawn latents come from a normal truncated at ±2 and are scaled by it. Absent: a plain normal.")]
    public float? Truncation { get; set; }

    public GanParameters ToParameters() => Shared(new GanParameters { Truncation = Truncation });
}

/// <summary>Body of POST /v1/vae/{model}/samples and /v1/flow/{model}/samples.</summary>
internal sealed class LatentSampleRequest : SampleRequest
{
    [Description(">= 0; scales the latent. Default 1 for vae, 0.8 for flow (the usual reduced-temperature sampling of flows).")]
    public float? Temperature { get; set; }

    public LatentParameters ToParameters() => Shared(new LatentParameters { Temperature = Temperature });
}
