using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Sampling.Interpolation;
using GenService.Sampling.Latents;
using GenService.Sampling.Random;

namespace GenService.Generation.Latent;

/// <summary>The parts of an interpolation every family shares: its ends, its frame positions and the path between.</summary>
internal static class Interpolation
{
    /// <summary>Frames including both ends, 2..max_count (default 8).</summary>
    public static int Frames(InterpolationParameters request, int maxCount) => Validate.IntRange(request.Frames, 8, 2, maxCount, "frames");

    /// <summary>Positions t_i = i / (frames - 1), both ends included.</summary>
    public static double[] Positions(int frames)
        => [.. Enumerable.Range(0, frames).Select(i => LatentInterpolation.FrameT(i, frames))];

    /// <summary>Validate the method; interpolate between two latents at every frame position.</summary>
    public static float[][] Path(float[] from, float[] to, int frames, string? method)
        => LatentInterpolation.Frames(WireChoices.Method.Parse(method) ?? InterpolationMethod.Slerp, from, to, frames, maxFrames: frames);

    /// <summary>Multiply every latent by <paramref name="factor"/> (temperature, truncation), in place.</summary>
    public static float[][] Scale(float[][] latents, float factor)
    {
        if (factor != 1f)
        {
            foreach (float[] latent in latents)
            {
                LatentMath.Scale(latent, factor);
            }
        }

        return latents;
    }

    /// <summary>
    /// The latent of one end: from a seed (the latent sample 0 of that seed would start from), an explicit latent, or
    /// an input run through <paramref name="encode"/> where the model has an encoder (null where it has none).
    /// </summary>
    public static async Task<float[]> EndAsync(InterpolationEnd? end, string field, int latentElements, ModelManifest manifest, Func<float[], Task<float[]>>? encode)
    {
        if (end is null)
        {
            throw new RequestValidationException(field, $"'{field}' is missing: give {{\"seed\": s}}, {{\"latent\": [...]}} or, where the model has an encoder, {{\"input\": {{...}}}}.");
        }

        int given = (end.Seed is null ? 0 : 1) + (end.Latent is null ? 0 : 1) + (end.Input is null ? 0 : 1);
        if (given != 1)
        {
            throw new RequestValidationException(field, $"'{field}' must have exactly one of 'seed', 'latent' or 'input'.");
        }

        if (end.Seed is { } seed)
        {
            var latent = new float[latentElements];
            new NoiseStream(seed, 0, NoiseStreamIds.Latent).FillNormal(latent);
            return latent;
        }

        if (end.Latent is { } explicitLatent)
        {
            return Validate.Vector(explicitLatent, latentElements, $"{field}.latent");
        }

        if (encode is null)
        {
            throw new RequestValidationException($"{field}.input", $"Model '{manifest.Name}' has no encoder, so '{field}' cannot be an input; give a seed or a latent.");
        }

        return await encode(Validate.Vector(end.Input, manifest.SampleElements, $"{field}.input"));
    }
}
