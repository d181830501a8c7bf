using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using System.Diagnostics;
using GenService.Sampling.Interpolation;
using GenService.Sampling.Latents;
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
        => [.. Enumerable.Range(0, frames).Select(i => LatentInterpolation.FrameT(i, frames))];

    /// <summary>Validate the method; interpolate between two latents at every frame position.</summary>
    public static float[][] Frames(float[] from, float[] to, int frames, string? method)
    {
        InterpolationMethod parsed;
        try
        {
            parsed = LatentInterpolation.ParseMethod(string.IsNullOrEmpty(method) ? "slerp" : method.ToLowerInvariant());
        }
        catch (ArgumentException)
        {
            throw new RequestValidationException("method", $"'method' must be slerp or lerp; got '{method}'.");
        }

        return LatentInterpolation.Frames(parsed, from, to, frames, maxFrames: frames);
    }

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
    /// POST /v1/{gan|vae|flow}/{model}/interpolations: the ends (seed, latent, or an input through
    /// <paramref name="encode"/> where the model has an encoder), `frames` latents along slerp/lerp, scaled by
    /// `temperature` (default 1), decoded by <paramref name="decoder"/> with one class for the whole walk. `encode`
    /// maps (sample, labels of one row, timings) to a latent; null when the model has no encoder.
    /// </summary>
    public static async Task<IResult> InterpolateAsync(HttpContext http, InterpolationRequest request, ModelManifest manifest, IGraphRunner decoder, int[] latentShape, int maxCount,
        Func<float[], int[]?, InferenceTimings, Task<float[]>>? encode)
    {
        var total = Stopwatch.StartNew();
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        int frames = Validate.IntRange(request.Frames, 8, 2, maxCount, "frames");
        if (request.Steps is not null || request.GuidanceScale is not null)
        {
            throw new RequestValidationException(request.Steps is not null ? "steps" : "guidance_scale", "'steps' and 'guidance_scale' apply to diffusion models only.");
        }

        float temperature = Validate.Range(request.Temperature, 1f, 0f, 10f, "temperature");
        (int[]? labels, int?[] reported) = SamplePlan.FrameLabels(request.ClassLabel, manifest, frames, request.From?.Seed ?? 0);
        var timings = new InferenceTimings();
        Func<float[], Task<float[]>>? encodeEnd = encode is null ? null : sample => encode(sample, labels is null ? null : [labels[0]], timings);
        int latentElements = latentShape.Aggregate(1, (a, b) => a * b);
        float[] from = await EndAsync(request.From, "from", latentElements, manifest, encodeEnd);
        float[] to = await EndAsync(request.To, "to", latentElements, manifest, encodeEnd);
        double[] t = Positions(frames);
        float[][] latents = Scale(Frames(from, to, frames, request.Method), temperature);
        float[][] samples = await DecodeAsync(decoder, latents, latentShape, labels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, seed: null, samples, reported, mode, total, timings, positions: t);
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
