namespace GenService.Sampling.Interpolation;

/// <summary>How to walk between two latents (request field <c>method</c>).</summary>
public enum InterpolationMethod
{
    /// <summary>Spherical: keeps the norm of Gaussian latents, so mid frames look like samples.</summary>
    Slerp,

    /// <summary>Straight line.</summary>
    Lerp,
}

/// <summary>Interpolation between latents for the /interpolations endpoints.</summary>
public static class LatentInterpolation
{
    /// <summary>Above this |cos angle| slerp divides by a vanishing sin: fall back to lerp (the usual threshold).</summary>
    public const double ParallelThreshold = 0.9995;

    /// <summary>(1 - t) a + t b.</summary>
    public static void Lerp(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double t, Span<float> output)
    {
        CheckLengths(a, b, output);
        for (var i = 0; i < a.Length; i++)
        {
            output[i] = (float)(((1 - t) * a[i]) + (t * b[i]));
        }
    }

    /// <summary>
    /// Shoemake's slerp on the unnormalised vectors: (sin((1-t) theta) a + sin(t theta) b) / sin theta with
    /// cos theta = a.b / (|a||b|); lerp when the vectors are nearly parallel (or one is zero).
    /// </summary>
    public static void Slerp(ReadOnlySpan<float> a, ReadOnlySpan<float> b, double t, Span<float> output)
    {
        CheckLengths(a, b, output);
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        var norms = Math.Sqrt(na) * Math.Sqrt(nb);
        var cos = norms > 0 ? dot / norms : 1.0;
        if (Math.Abs(cos) > ParallelThreshold)
        {
            Lerp(a, b, t, output);
            return;
        }

        var theta = Math.Acos(cos);
        var sin = Math.Sin(theta);
        var wa = Math.Sin((1 - t) * theta) / sin;
        var wb = Math.Sin(t * theta) / sin;
        for (var i = 0; i < a.Length; i++)
        {
            output[i] = (float)((wa * a[i]) + (wb * b[i]));
        }
    }

    public static void Interpolate(InterpolationMethod method, ReadOnlySpan<float> a, ReadOnlySpan<float> b, double t, Span<float> output)
    {
        if (method == InterpolationMethod.Lerp)
        {
            Lerp(a, b, t, output);
        }
        else
        {
            Slerp(a, b, t, output);
        }
    }

    /// <summary>t of frame i of n: i / (n - 1), so the first frame is a and the last is b (one frame: t = 0).</summary>
    public static double FrameT(int index, int frames) => frames <= 1 ? 0 : (double)index / (frames - 1);

    /// <summary>All frames; <paramref name="frames"/> in 1..<paramref name="maxFrames"/> (request field <c>frames</c>).</summary>
    public static float[][] Frames(InterpolationMethod method, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int frames, int maxFrames = 64)
    {
        if (frames < 1 || frames > maxFrames)
        {
            throw new ArgumentOutOfRangeException(nameof(frames), frames, $"frames must be in 1..{maxFrames}.");
        }

        var result = new float[frames][];
        for (var i = 0; i < frames; i++)
        {
            result[i] = new float[a.Length];
            Interpolate(method, a, b, FrameT(i, frames), result[i]);
        }

        return result;
    }

    private static void CheckLengths(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> output)
    {
        if (a.Length != b.Length || output.Length != a.Length)
        {
            throw new ArgumentException($"The two ends must have the same length ({a.Length} vs {b.Length}) and so must the output ({output.Length}).", "to");
        }
    }
}
