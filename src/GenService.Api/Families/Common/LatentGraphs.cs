using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Interpolation;
using GenService.Sampling.Random;

namespace GenService.Api.Families.Common;

/// <summary>
/// The calls the latent-variable families (gan, vae, flow) share: run a latent -> sample graph, and build
/// interpolation frames between two latents.
/// </summary>
public static class LatentGraphs
{
    /// <summary>Run a latent -> sample graph (gan generator, vae decoder, flow inverse) on all rows at once.</summary>
    public static async Task<float[][]> DecodeAsync(IGraphRunner runner, IReadOnlyList<float[]> latents, IReadOnlyList<int> latentShape, int[]? labels, InferenceTimings timings, CancellationToken ct)
    {
        var inputs = new Dictionary<string, Tensor>
        {
            [ModelIO.Input(runner, "latent")] = ModelIO.Stack(latents, latentShape),
        };
        ModelIO.AddLabels(inputs, runner, labels);
        InferenceResult result = await runner.InferAsync(new InferenceRequest { Inputs = inputs }, ct);
        timings.Add(result);
        return ModelIO.Unstack(result.Outputs[ModelIO.Output(runner, "sample")]);
    }

    /// <summary>Run a sample -> outputs graph (vae encoder, flow forward) on all inputs at once.</summary>
    public static async Task<IReadOnlyDictionary<string, Tensor>> EncodeAsync(IGraphRunner runner, IReadOnlyList<float[]> samples, IReadOnlyList<int> sampleShape, int[]? labels, InferenceTimings timings, CancellationToken ct)
    {
        var inputs = new Dictionary<string, Tensor>
        {
            [ModelIO.Input(runner, "sample")] = ModelIO.Stack(samples, sampleShape),
        };
        ModelIO.AddLabels(inputs, runner, labels);
        InferenceResult result = await runner.InferAsync(new InferenceRequest { Inputs = inputs }, ct);
        timings.Add(result);
        return result.Outputs;
    }

    /// <summary>Positions t_i = i / (frames - 1), both ends included.</summary>
    public static double[] Positions(int frames)
    {
        var t = new double[frames];
        for (int i = 0; i < frames; i++)
        {
            t[i] = frames == 1 ? 0 : (double)i / (frames - 1);
        }

        return t;
    }

    /// <summary>Validate frames and method; interpolate between two latents.</summary>
    public static float[][] Frames(float[] from, float[] to, double[] positions, string? method)
    {
        bool slerp = method?.ToLowerInvariant() switch
        {
            null or "" or "slerp" => true,
            "lerp" => false,
            _ => throw new RequestValidationException("method", $"'method' must be slerp or lerp; got '{method}'."),
        };
        var frames = new float[positions.Length][];
        for (int i = 0; i < positions.Length; i++)
        {
            frames[i] = new float[from.Length];
            if (slerp)
            {
                LatentInterpolation.Slerp(from, to, positions[i], frames[i]);
            }
            else
            {
                LatentInterpolation.Lerp(from, to, positions[i], frames[i]);
            }
        }

        return frames;
    }

    /// <summary>
    /// The latent of one end of an interpolation: from a seed (the latent sample 0 of that seed would start from),
    /// an explicit latent, or an input run through <paramref name="encode"/> where the model has an encoder.
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
            new NoiseStream(seed, 0, SeedStreams.Latent).FillNormal(latent);
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

        float[] sample = ModelIO.DecodeInput(end.Input, manifest, $"{field}.input");
        return await encode(sample);
    }
}
