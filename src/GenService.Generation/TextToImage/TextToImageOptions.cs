using System.ComponentModel.DataAnnotations;

namespace GenService.Generation.TextToImage;

/// <summary>Text-to-image settings (<c>GenService:TextToImage</c>).</summary>
public sealed class TextToImageOptions
{
    public const string SectionName = "GenService:TextToImage";

    /// <summary>Prompt embeddings kept per process (least recently used leave first); 0 turns the cache off.</summary>
    [Range(0, 1_000_000)]
    public int PromptCacheSize { get; set; } = 1024;

    /// <summary>Largest image a request may ask for, height x width in pixels (a 400 past it).</summary>
    [Range(1, int.MaxValue)]
    public int MaxPixels { get; set; } = 1024 * 1024;
}
