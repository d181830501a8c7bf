namespace GenService.Sampling.Diffusion;

/// <summary>Classifier-free guidance (Ho &amp; Salimans 2022).</summary>
public static class Guidance
{
    /// <summary>
    /// output = uncond + scale (cond - uncond), on whatever the model predicts (eps, v or x0, as diffusers does).
    /// Scale 1 returns cond; <paramref name="output"/> may alias either input.
    /// </summary>
    public static void Apply(ReadOnlySpan<float> uncond, ReadOnlySpan<float> cond, float scale, Span<float> output)
    {
        if (uncond.Length != cond.Length || output.Length != cond.Length)
        {
            throw new ArgumentException($"Guidance needs equal lengths (uncond {uncond.Length}, cond {cond.Length}, output {output.Length}).", nameof(output));
        }

        for (var i = 0; i < cond.Length; i++)
        {
            output[i] = uncond[i] + (scale * (cond[i] - uncond[i]));
        }
    }

    /// <summary>Checks the request field <c>guidance_scale</c>: finite, 0..50 (1 = off).</summary>
    public static void ValidateScale(double scale)
    {
        if (!(scale >= 0 && scale <= 50))
        {
            throw new ArgumentOutOfRangeException("guidance_scale", scale, "guidance_scale must be in 0..50 (1 = no guidance).");
        }
    }
}
