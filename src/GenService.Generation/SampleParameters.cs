namespace GenService.Generation;

/// <summary>
/// The fields every sampling request shares, as sent (nothing validated or defaulted yet): <c>count</c>,
/// <c>seed</c>, <c>class_label</c>, <c>latents</c>. The web layer maps its request bodies onto these types; the
/// jobs validate them against the model, and every error names the wire field (snake_case).
/// </summary>
public record SampleParameters
{
    /// <summary>Samples to draw (default 1; with explicit latents, their number).</summary>
    public int? Count { get; init; }

    /// <summary>The seed; random (below 2^53) when absent.</summary>
    public ulong? Seed { get; init; }

    /// <summary>The class of class-conditional models.</summary>
    public int? ClassLabel { get; init; }

    /// <summary>Explicit unit-normal starting latents, one flat array per sample.</summary>
    public float[][]? Latents { get; init; }
}
