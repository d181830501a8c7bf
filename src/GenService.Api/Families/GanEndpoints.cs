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
        float[][] latents = LatentGraphs.Scale(plan.Latents, truncation ?? 1f);

        var timings = new InferenceTimings();
        float[][] samples = await LatentGraphs.DecodeAsync(generator, latents, latentShape, plan.ModelLabels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, plan.Seed, samples, plan.ReportedLabels, mode, total, timings);
    }

    internal static Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Gan, model);
        IGraphRunner generator = FamilyModels.RequireGraph(loaded, "generator", "interpolations");
        return LatentGraphs.InterpolateAsync(http, request, loaded.Manifest, generator, loaded.Manifest.LatentShape ?? [], options.Value.MaxCount, encode: null);
    }
}
