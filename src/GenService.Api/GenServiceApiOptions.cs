using System.ComponentModel.DataAnnotations;

namespace GenService.Api;

/// <summary>
/// HTTP-layer settings, bound from the configuration section <c>GenService:Api</c>
/// (environment variables <c>GenService__Api__MaxCount</c> etc.).
/// </summary>
internal sealed class GenServiceApiOptions
{
    public const string SectionName = "GenService:Api";

    /// <summary>Most samples one /v1 request may ask for (<c>count</c> is 1..MaxCount).</summary>
    [Range(1, 4096)]
    public int MaxCount { get; set; } = 64;

    /// <summary>
    /// Largest request body, in bytes, of every route but v2 infer (a /v1 body of 64 inputs of 3x64x64 as JSON
    /// numbers fits). Larger is a 413 with the protocol's error body; the server's own limit follows this one.
    /// </summary>
    [Range(1024, int.MaxValue)]
    public int MaxRequestBodyBytes { get; set; } = 30_000_000;

    /// <summary>Largest request body, in bytes, the v2 infer route reads (64 rows of 3x64x64 FP32 as JSON fit easily).</summary>
    [Range(1024, int.MaxValue)]
    public int MaxInferBodyBytes { get; set; } = 64 * 1024 * 1024;
}
