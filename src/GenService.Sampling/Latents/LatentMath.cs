using GenService.Sampling.Random;

namespace GenService.Sampling.Latents;

/// <summary>Small helpers the sampling endpoints share: drawing and scaling latents, finiteness checks, flow likelihoods.</summary>
public static class LatentMath
{
    private static readonly double HalfLogTwoPi = 0.5 * Math.Log(2 * Math.PI);

    /// <summary>The truncation bound of the GAN truncation trick: drawn latents come from N(0, 1) cut at +/-2.</summary>
    public const float TruncationBound = 2f;

    /// <summary>x *= factor.</summary>
    public static void Scale(Span<float> x, float factor)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] *= factor;
        }
    }

    /// <summary>gan: a drawn latent: plain normal, or (truncation set) a normal truncated at +/-2 scaled by it.</summary>
    public static void DrawGanLatent(NoiseStream stream, Span<float> latent, double? truncation)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (truncation is null)
        {
            stream.FillNormal(latent);
            return;
        }

        ValidateTruncation(truncation.Value);
        stream.FillTruncatedNormal(latent, TruncationBound);
        Scale(latent, (float)truncation.Value);
    }

    /// <summary>vae, flow: a drawn latent times the temperature.</summary>
    public static void DrawScaledNormal(NoiseStream stream, Span<float> latent, double temperature)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ValidateTemperature(temperature);
        stream.FillNormal(latent);
        Scale(latent, (float)temperature);
    }

    /// <summary>Request field <c>truncation</c>: (0, 1].</summary>
    public static void ValidateTruncation(double truncation)
    {
        if (!(truncation > 0 && truncation <= 1))
        {
            throw new ArgumentOutOfRangeException("truncation", truncation, "truncation must be in (0, 1].");
        }
    }

    /// <summary>Request field <c>temperature</c> (vae, flow): 0..10.</summary>
    public static void ValidateTemperature(double temperature)
    {
        if (!(temperature >= 0 && temperature <= 10))
        {
            throw new ArgumentOutOfRangeException("temperature", temperature, "temperature must be in 0..10.");
        }
    }

    /// <summary>The first index holding NaN or +/-infinity, or -1.</summary>
    public static int IndexOfNonFinite(ReadOnlySpan<float> x)
    {
        for (var i = 0; i < x.Length; i++)
        {
            if (!float.IsFinite(x[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming <paramref name="field"/>[index] when a value is not finite.</summary>
    public static void EnsureFinite(ReadOnlySpan<float> x, string field)
    {
        var index = IndexOfNonFinite(x);
        if (index >= 0)
        {
            throw new ArgumentException($"{field}[{index}] is {x[index]}; all values must be finite numbers.", field);
        }
    }

    /// <summary>sum_i log N(z_i; 0, 1) = -0.5 sum z^2 - D/2 ln(2 pi), in double.</summary>
    public static double StandardNormalLogDensity(ReadOnlySpan<float> z)
    {
        var sum = 0.0;
        for (var i = 0; i < z.Length; i++)
        {
            sum += (double)z[i] * z[i];
        }

        return (-0.5 * sum) - (z.Length * HalfLogTwoPi);
    }

    /// <summary>
    /// Bits per dimension (docs/model-contract.md, flow): with a bin width, -(log p(x) + D ln(bin_width)) / (D ln 2)
    /// (the discrete likelihood of the bins of a dequantised model); without, -log p(x) / (D ln 2).
    /// </summary>
    public static double BitsPerDim(double logProb, int elements, double? binWidth = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(elements);
        if (binWidth is { } w && !(w > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(binWidth), w, "likelihood.bin_width must be > 0.");
        }

        var discrete = binWidth is { } width ? elements * Math.Log(width) : 0.0;
        return -(logProb + discrete) / (elements * Math.Log(2));
    }
}
