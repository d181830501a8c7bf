using System.Diagnostics;
using GenService.Api.Families.Common;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Sampling.Random;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/gan/{model}: one forced leap from the prior to the data.</summary>
public static class GanEndpoints
{
    public static IEndpointRouteBuilder MapGanEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/gan/{model}").WithTags("gan");
        group.MapPost("/samples", SampleAsync).DescribeSampling(
            "GanSamples",
            "Draw samples from a GAN generator",
            "Latents are drawn per sample from the counter-based generator keyed by (seed, sample index), or given in `latents`. " +
            "`truncation` in (0, 1] draws them from a normal truncated at ±2 and scales them by it (explicit latents are only scaled). " +
            "With `Accept: image/png` the answer is one PNG grid.",
            """{"count": 8, "seed": 42, "class_label": 3, "truncation": 0.8, "output": "png"}""");
        group.MapPost("/interpolations", InterpolateAsync).DescribeSampling(
            "GanInterpolations",
            "Walk the latent space between two points",
            "`from`/`to` are {\"seed\": s} (the latent sample 0 of that seed starts from) or {\"latent\": [...]}; `frames` samples along a slerp (default) or lerp path.",
            """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 8, "method": "slerp", "class_label": 7}""");
        return app;
    }

    internal static async Task<IResult> SampleAsync(string model, GanSampleRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Gan, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner generator = FamilyModels.RequireGraph(loaded, "generator", "samples");
        int[] latentShape = manifest.LatentShape ?? [];
        int latentElements = latentShape.Aggregate(1, (a, b) => a * b);
        OutputMode mode = OutputMode.Parse(request.Output, manifest);

        float? truncation = request.Truncation is null ? null : Validate.Range(request.Truncation, 1f, 0f, 1f, "truncation", minExclusive: true);
        Action<NoiseStream, Span<float>>? draw = truncation is null ? null : static (stream, span) => stream.FillTruncatedNormal(span, 2f);
        var plan = SamplePlan.Create(request, manifest, latentElements, options.Value.MaxCount, draw);
        float[][] latents = plan.Latents;
        if (truncation is { } scale)
        {
            latents = [.. latents.Select(l => l.Select(v => v * scale).ToArray())];
        }

        var timings = new InferenceTimings();
        float[][] samples = await LatentGraphs.DecodeAsync(generator, latents, latentShape, plan.ModelLabels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, plan.Seed, samples, plan.ReportedLabels, mode, total, timings);
    }

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Gan, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner generator = FamilyModels.RequireGraph(loaded, "generator", "interpolations");
        int[] latentShape = manifest.LatentShape ?? [];
        int latentElements = latentShape.Aggregate(1, (a, b) => a * b);
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        int frames = Validate.IntRange(request.Frames, 8, 2, options.Value.MaxCount, "frames");
        if (request.Steps is not null || request.GuidanceScale is not null)
        {
            throw new Inference.RequestValidationException(request.Steps is not null ? "steps" : "guidance_scale", "'steps' and 'guidance_scale' apply to diffusion models only.");
        }

        float temperature = Validate.Range(request.Temperature, 1f, 0f, 10f, "temperature");
        float[] from = await LatentGraphs.EndAsync(request.From, "from", latentElements, manifest, encode: null);
        float[] to = await LatentGraphs.EndAsync(request.To, "to", latentElements, manifest, encode: null);
        double[] t = LatentGraphs.Positions(frames);
        float[][] latents = LatentGraphs.Frames(from, to, t, request.Method);
        if (temperature != 1f)
        {
            latents = [.. latents.Select(l => l.Select(v => v * temperature).ToArray())];
        }

        (int[]? labels, int?[] reported) = SamplePlan.FrameLabels(request.ClassLabel, manifest, frames, request.From?.Seed ?? 0);
        var timings = new InferenceTimings();
        float[][] samples = await LatentGraphs.DecodeAsync(generator, latents, latentShape, labels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, seed: null, samples, reported, mode, total, timings, positions: t);
    }
}
