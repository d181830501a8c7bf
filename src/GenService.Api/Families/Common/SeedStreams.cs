using GenService.Sampling.Random;

namespace GenService.Api.Families.Common;

/// <summary>
/// Stream ids of the counter-based generator (docs/reproducibility.md). Noise for sample i of a request with
/// seed s comes from NoiseStream(s, i, stream): each purpose has its own stream so that, e.g., drawing a class
/// label never shifts the latent noise.
/// </summary>
public static class SeedStreams
{
    /// <summary>The starting latent / x_T (and the img2img noise).</summary>
    public const uint Latent = NoiseStreamIds.Latent;

    /// <summary>Per-step noise of stochastic samplers (ddpm, ddim eta &gt; 0, euler_ancestral).</summary>
    public const uint StepNoise = NoiseStreamIds.DiffusionStepNoise;

    /// <summary>Token sampling of autoregressive models (one uniform per token).</summary>
    public const uint Tokens = NoiseStreamIds.TokenSampling;

    /// <summary>A class label drawn for conditional models without a null class when none was asked for.</summary>
    public const uint ClassLabel = 3;

    /// <summary>Latent draws of vae reconstruct with a seed.</summary>
    public const uint Reconstruct = 4;

    /// <summary>Random seeds are drawn below 2^53 so JavaScript clients can echo them back exactly.</summary>
    public static ulong NewSeed() => (ulong)Random.Shared.NextInt64(0, 1L << 53);
}
