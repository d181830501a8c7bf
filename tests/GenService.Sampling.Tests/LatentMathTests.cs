using GenService.Sampling.Latents;
using GenService.Sampling.Random;

namespace GenService.Sampling.Tests;

public sealed class LatentMathTests
{
    [Fact]
    public void Bits_per_dim_follow_the_contract_formula()
    {
        // D = 64, log p = -100 nats, bin width 1/8: -(-100 + 64 ln(1/8)) / (64 ln 2) = 100 / (64 ln 2) + 3
        Assert.Equal((100 / (64 * Math.Log(2))) + 3, LatentMath.BitsPerDim(-100, 64, 0.125), 1e-12);
        Assert.Equal(100 / (64 * Math.Log(2)), LatentMath.BitsPerDim(-100, 64), 1e-12);
        Assert.Throws<ArgumentOutOfRangeException>(() => LatentMath.BitsPerDim(-1, 4, 0));
    }

    [Fact]
    public void Standard_normal_log_density_matches_scipy_values()
    {
        // scipy.stats.norm.logpdf([0, 1, -2]).sum() = -0.91893853 - 1.41893853 - 2.91893853
        Assert.Equal(-5.2568155996140185, LatentMath.StandardNormalLogDensity([0f, 1f, -2f]), 1e-9);
    }

    [Fact]
    public void Non_finite_values_are_found_with_their_index()
    {
        Assert.Equal(-1, LatentMath.IndexOfNonFinite([1f, 2f]));
        Assert.Equal(2, LatentMath.IndexOfNonFinite([1f, 2f, float.NaN, float.PositiveInfinity]));
        var ex = Assert.Throws<ArgumentException>(() => LatentMath.EnsureFinite([0f, float.NegativeInfinity], "latents[3]"));
        Assert.Equal("latents[3]", ex.ParamName);
        Assert.Contains("latents[3][1]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gan_truncation_draws_a_bounded_scaled_normal()
    {
        var z = new float[4096];
        LatentMath.DrawGanLatent(new NoiseStream(8, 2), z, 0.5);
        Assert.All(z, v => Assert.InRange(v, -1f, 1f));
        var truncated = new float[4096];
        new NoiseStream(8, 2).FillTruncatedNormal(truncated, 2f);
        Assert.Equal(truncated.Select(v => v * 0.5f), z);
        Assert.Equal("truncation", Assert.Throws<ArgumentOutOfRangeException>(() => LatentMath.DrawGanLatent(new NoiseStream(1, 0), z, 1.5)).ParamName);

        var plain = new float[8];
        LatentMath.DrawGanLatent(new NoiseStream(8, 2), plain, null);
        var normal = new float[8];
        new NoiseStream(8, 2).FillNormal(normal);
        Assert.Equal(normal, plain);
    }

    [Fact]
    public void Temperature_scales_the_drawn_normal()
    {
        var z = new float[16];
        LatentMath.DrawScaledNormal(new NoiseStream(3, 1), z, 0.8);
        var normal = new float[16];
        new NoiseStream(3, 1).FillNormal(normal);
        Assert.Equal(normal.Select(v => v * 0.8f), z);
        Assert.Equal("temperature", Assert.Throws<ArgumentOutOfRangeException>(() => LatentMath.DrawScaledNormal(new NoiseStream(1, 0), z, -1)).ParamName);
    }
}
