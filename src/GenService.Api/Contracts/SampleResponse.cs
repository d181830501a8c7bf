using System.Text.Json.Serialization;

namespace GenService.Api.Contracts;

/// <summary>Per-request timings in milliseconds.</summary>
internal sealed record Timings(double QueueMs, double ComputeMs, double TotalMs);

/// <summary>Response of every sampling route (and reconstruct, interpolations).</summary>
internal sealed class SampleResponse
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

/// <summary>One sample of a response.</summary>
internal sealed class Sample
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
internal sealed class Intermediate
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
