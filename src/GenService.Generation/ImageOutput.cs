using GenService.Inference.Manifest;

namespace GenService.Generation;

/// <summary>How a model's samples read as images: their layout and the values that are black and white.</summary>
public static class ImageOutput
{
    /// <summary>Channels, height and width of <c>output.shape</c> (CHW; a 2-d shape is one channel, anything else one row).</summary>
    public static (int C, int H, int W) Chw(ModelManifest manifest) => Chw(manifest.Output.Shape);

    /// <summary>Channels, height and width of a sample shape (a text-to-image request's own size).</summary>
    public static (int C, int H, int W) Chw(int[] s)
    {
        return s.Length switch
        {
            3 => (s[0], s[1], s[2]),
            2 => (1, s[0], s[1]),
            _ => (1, 1, s.Aggregate(1, (a, b) => a * b)),
        };
    }

    /// <summary><c>output.range</c>: the value of black and of white (default [-1, 1]).</summary>
    public static (float Black, float White) Range(ModelManifest manifest)
        => manifest.Output.Range is [var lo, var hi] ? (lo, hi) : (-1f, 1f);
}
