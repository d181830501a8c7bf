namespace GenService.Sampling.Random;

/// <summary>
/// The stream ids GenService uses, so that different uses of one (seed, sample) never share random numbers and
/// adding a use never shifts another's. Documented in docs/reproducibility.md; clients reproduce noise with them.
/// </summary>
public static class NoiseStreamIds
{
    /// <summary>The starting latent / noise of a sample (gan, vae, flow latents; diffusion x_T; img2img noise).</summary>
    public const uint Latent = 0;

    /// <summary>Per-step noise of stochastic diffusion samplers (ddpm, ddim eta &gt; 0, euler_ancestral), step after step.</summary>
    public const uint DiffusionStepNoise = 1;

    /// <summary>One uniform per generated token of an autoregressive sample.</summary>
    public const uint TokenSampling = 2;

    /// <summary>A class label drawn for a conditional model without a null class when the request names none.</summary>
    public const uint ClassLabel = 3;

    /// <summary>The latent draw of vae reconstruct with a seed: z = mean + sigma * eps.</summary>
    public const uint Reconstruct = 4;

    /// <summary>img2img of a latent pipeline: the draw from the VAE encoder's distribution, z = mean + std * eps.</summary>
    public const uint InitLatent = 5;
}
