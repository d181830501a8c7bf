using System.Diagnostics;
using GenService.Api.Contracts;
using GenService.Api.Families.Common;
using GenService.Generation;
using GenService.Generation.Latent;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/gan/{model}: one forced leap from the prior to the data.</summary>
internal static class GanEndpoints
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

    internal static async Task<IResult> SampleAsync(string model, GanSampleRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Gan, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        GeneratedSamples samples = await generation.GanSamplesAsync(loaded, request.ToParameters(), options.Value.MaxCount, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, samples, mode, total);
    }

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Gan, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        GeneratedSamples frames = await generation.InterpolateAsync(loaded, request.ToParameters(loaded.Manifest), options.Value.MaxCount, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, frames, mode, total);
    }
}
