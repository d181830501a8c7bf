using System.Runtime.InteropServices;
using SkiaSharp;

namespace GenService.Api.Families.Common;

/// <summary>
/// PNG in and out through SkiaSharp (MIT; the NoDependencies Linux natives need no system libraries).
/// A sample is CHW floats in the model's range [black, white]; C is 1 (grey) or 3 (RGB). Only the PNG clips:
/// the raw data is never touched.
/// </summary>
internal static class ImageCodec
{
    /// <summary>Encode one CHW sample as a PNG; values outside the range are clipped.</summary>
    public static byte[] EncodePng(ReadOnlySpan<float> chw, int channels, int height, int width, float black, float white, int scale = 1)
    {
        return EncodeGrid([chw.ToArray()], channels, height, width, black, white, columns: 1, scale, padding: 0);
    }

    /// <summary>
    /// Encode samples as one PNG grid: near-square (columns = ceil(sqrt(n))), 1 px of padding between tiles,
    /// each pixel repeated <paramref name="scale"/> times (nearest neighbour, so pixels stay crisp).
    /// </summary>
    public static byte[] EncodeGrid(IReadOnlyList<float[]> samples, int channels, int height, int width, float black, float white, int? columns = null, int scale = 1, int padding = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(samples.Count, 1);
        if (channels is not (1 or 3))
        {
            throw new ArgumentOutOfRangeException(nameof(channels), "PNG needs 1 or 3 channels.");
        }

        int n = samples.Count;
        int cols = columns ?? (int)Math.Ceiling(Math.Sqrt(n));
        int rows = (n + cols - 1) / cols;
        int tileW = width * scale, tileH = height * scale;
        int outW = (cols * tileW) + ((cols - 1) * padding);
        int outH = (rows * tileH) + ((rows - 1) * padding);
        int bytesPerPixel = channels == 1 ? 1 : 4;
        var pixels = new byte[outW * outH * bytesPerPixel];
        if (channels == 3)
        {
            // Opaque black background for the padding.
            for (int i = 3; i < pixels.Length; i += 4)
            {
                pixels[i] = 255;
            }
        }

        float span = white - black;
        int plane = height * width;
        for (int s = 0; s < n; s++)
        {
            float[] x = samples[s];
            int ox = (s % cols) * (tileW + padding);
            int oy = (s / cols) * (tileH + padding);
            for (int y = 0; y < tileH; y++)
            {
                int sy = y / scale;
                for (int xx = 0; xx < tileW; xx++)
                {
                    int sx = xx / scale;
                    int dst = (((oy + y) * outW) + ox + xx) * bytesPerPixel;
                    for (int c = 0; c < channels; c++)
                    {
                        pixels[dst + c] = ToByte(x[(c * plane) + (sy * width) + sx], black, span);
                    }
                }
            }
        }

        var info = new SKImageInfo(outW, outH, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using SKData data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>
    /// Decode a PNG (or any format Skia reads) into CHW floats in the model's range. The image must have the
    /// model's size; colour images are converted to grey (ITU-R BT.601 luma) for 1-channel models, grey images
    /// are replicated for 3-channel models. Alpha is ignored.
    /// </summary>
    /// <exception cref="FormatException">Not an image, or the wrong size; the message says what was expected.</exception>
    public static float[] DecodeToChw(byte[] encoded, int channels, int height, int width, float black, float white)
    {
        using var codec = SKCodec.Create(new MemoryStream(encoded))
            ?? throw new FormatException("is not a PNG (or other image) that can be decoded");
        SKImageInfo src = codec.Info;
        if (src.Width != width || src.Height != height)
        {
            throw new FormatException($"is {src.Width}x{src.Height} but the model takes {width}x{height} images");
        }

        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[width * height * 4];
        GCHandle pin = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            SKCodecResult result = codec.GetPixels(info, pin.AddrOfPinnedObject());
            if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
            {
                throw new FormatException($"could not be decoded ({result})");
            }
        }
        finally
        {
            pin.Free();
        }

        float span = white - black;
        int plane = height * width;
        var chw = new float[channels * plane];
        for (int i = 0; i < plane; i++)
        {
            byte r = rgba[i * 4], g = rgba[(i * 4) + 1], b = rgba[(i * 4) + 2];
            if (channels == 1)
            {
                double luma = r == g && g == b ? r : (0.299 * r) + (0.587 * g) + (0.114 * b);
                chw[i] = black + (float)(luma / 255.0 * span);
            }
            else
            {
                chw[i] = black + (r / 255f * span);
                chw[plane + i] = black + (g / 255f * span);
                chw[(2 * plane) + i] = black + (b / 255f * span);
            }
        }

        return chw;
    }

    private static byte ToByte(float v, float black, float span)
    {
        float u = (v - black) / span;
        if (!(u > 0f))
        {
            return 0; // also NaN
        }

        return u >= 1f ? (byte)255 : (byte)MathF.Round(u * 255f);
    }
}
