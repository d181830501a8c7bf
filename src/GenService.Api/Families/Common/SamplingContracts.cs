using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace GenService.Api.Families.Common;

// Request and response bodies of the /v1/{family} routes (API.md). JSON names are snake_case through the
// global naming policy; unknown fields are rejected so a typo ("stpes") is a 400 naming the field instead of
// being silently ignored.

/// <summary>Fields every sampling request shares.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public class SampleRequest
{
    /// <summary>Samples to draw, 1..max_count (default 1; with explicit latents, their number).</summary>
    [Description("Samples to draw, 1..max_count (default 1; with explicit latents, their number).")]
    public int? Count { get; set; }

    /// <summary>uint64 seed; the response echoes the seed used. Random when absent.</summary>
    [Description("uint64 seed; sample i depends only on (seed, i, the other parameters). Random when absent.")]
    public ulong? Seed { get; set; }

    /// <summary>Class for class-conditional models; absent means the null class, or a class drawn per sample.</summary>
    [Description("Class for class-conditional models, 0..num_classes-1. Absent: the null class where the model has one, else a class drawn per sample from the seed.")]
    public int? ClassLabel { get; set; }

    /// <summary>Explicit starting noise: count flat arrays of the latent shape, unit normal.</summary>
    [Description("Explicit starting noise: `count` flat float arrays of the latent shape (C order), unit normal.")]
    public float[][]? Latents { get; set; }

    /// <summary>png, tensor or both (default png; tensor for models whose output kind is tensor).</summary>
    [Description("png, tensor or both. Default png (tensor for models whose output is not an image).")]
    public string? Output { get; set; }
}

/// <summary>GAN sampling: adds truncation.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class GanSampleRequest : SampleRequest
{
    /// <summary>In (0, 1]: latents drawn from a normal truncated at +/-2, scaled by it.</summary>
    [Description("In (0, 1]: drawn latents come from a normal truncated at ±2 and are scaled by it. Absent: a plain normal.")]
    public float? Truncation { get; set; }
}

/// <summary>VAE and flow sampling: adds temperature.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class LatentSampleRequest : SampleRequest
{
    /// <summary>&gt;= 0; scales the latent. Default 1 (vae) or 0.8 (flow).</summary>
    [Description(">= 0; scales the latent. Default 1 for vae, 0.8 for flow (the usual reduced-temperature sampling of flows).")]
    public float? Temperature { get; set; }
}

/// <summary>One input of the "other direction" routes: a PNG or raw data in the model's range.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class ModelInput
{
    /// <summary>Base64 PNG of the model's output size.</summary>
    public string? Png { get; set; }

    /// <summary>Flat floats of output.shape, in the model's range.</summary>
    public float[]? Data { get; set; }
}

/// <summary>Body of encode, reconstruct and log-likelihood.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class InputsRequest
{
    /// <summary>The inputs, each a PNG or raw data.</summary>
    public List<ModelInput>? Inputs { get; set; }

    /// <summary>Class for class-conditional models (applies to every input); see sampling.</summary>
    public int? ClassLabel { get; set; }

    /// <summary>reconstruct only: png, tensor or both.</summary>
    public string? Output { get; set; }

    /// <summary>reconstruct only: seed for the latent draw (default: decode the mean).</summary>
    public ulong? Seed { get; set; }
}

/// <summary>One end of an interpolation.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class InterpolationEnd
{
    /// <summary>Latent drawn from this seed (sample index 0).</summary>
    public ulong? Seed { get; set; }

    /// <summary>An explicit latent, flat, of the latent shape.</summary>
    public float[]? Latent { get; set; }

    /// <summary>An input encoded to its latent (vae: the mean; flow: the exact latent; diffusion: DDIM inversion is not offered).</summary>
    public ModelInput? Input { get; set; }
}

/// <summary>Body of /interpolations.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed class InterpolationRequest
{
    public InterpolationEnd? From { get; set; }

    public InterpolationEnd? To { get; set; }

    /// <summary>Frames including both ends, 2..max_count (default 8).</summary>
    public int? Frames { get; set; }

    /// <summary>slerp (default) or lerp.</summary>
    public string? Method { get; set; }

    public int? ClassLabel { get; set; }

    public string? Output { get; set; }

    /// <summary>vae/flow: latent temperature (default 1). gan: truncation scale.</summary>
    public float? Temperature { get; set; }

    /// <summary>diffusion: DDIM steps (default 50).</summary>
    public int? Steps { get; set; }

    /// <summary>diffusion: classifier-free guidance scale (default 1).</summary>
    public float? GuidanceScale { get; set; }
}

/// <summary>Per-request timings in milliseconds.</summary>
public sealed record Timings(double QueueMs, double ComputeMs, double TotalMs);

/// <summary>One sample of a response.</summary>
public sealed class Sample
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Png { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public float[]? Data { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? ClassLabel { get; set; }

    /// <summary>ar: generated token ids.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int[]? Tokens { get; set; }

    /// <summary>ar text models: generated text without special tokens.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Text { get; set; }

    /// <summary>ar: length, eos_token or stop_sequence.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FinishReason { get; set; }

    /// <summary>interpolations: the position t of this frame in [0, 1].</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? T { get; set; }

    /// <summary>diffusion with return_intermediates: snapshots along the way.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<Intermediate>? Intermediates { get; set; }
}

/// <summary>A diffusion snapshot: x_t and the predicted x0 after a step.</summary>
public sealed class Intermediate
{
    public int Step { get; set; }

    public double Timestep { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public float[]? Sample { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public float[]? PredictedOriginal { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Png { get; set; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? PredictedOriginalPng { get; set; }
}

/// <summary>Response of every sampling route (and reconstruct, interpolations).</summary>
public sealed class SampleResponse
{
    public required string Model { get; init; }

    public required string Family { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ulong? Seed { get; init; }

    public required int[] Shape { get; init; }

    public required List<Sample> Samples { get; init; }

    /// <summary>Network evaluations per sample (diffusion, ar).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? Nfe { get; set; }

    public Timings? Timings { get; set; }
}

/// <summary>Response of encode and log-likelihood: one result per input, in order.</summary>
public sealed class ResultsResponse<T>
{
    public required string Model { get; init; }

    public required string Family { get; init; }

    public required List<T> Results { get; init; }

    public Timings? Timings { get; set; }
}

/// <summary>vae encode result.</summary>
public sealed record VaeEncoding(float[] Mean, float[] LogVar);

/// <summary>flow encode result.</summary>
public sealed record FlowEncoding(float[] Latent, double LogDet);

/// <summary>flow log-likelihood result (nats; bits/dim discrete when the model declares a bin width).</summary>
public sealed record FlowLikelihood(double LogProb, double BitsPerDim);

/// <summary>Helpers for the raw JSON of requests.</summary>
internal static class JsonHelpers
{
    public static readonly JsonSerializerOptions Compact = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
