using System.Diagnostics;
using GenService.Api.Contracts;
using GenService.Api.Families.Common;
using GenService.Generation;
using GenService.Generation.Latent;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/vae/{model}: the decoder sails from the prior; the encoder tells where data lands.</summary>
internal static class VaeEndpoints
{
    public static IEndpointRouteBuilder MapVaeEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/vae/{model}").WithTags("vae");
        group.MapPost("/samples", SampleAsync).DescribeSampling(
            "VaeSamples",
            "Decode latents drawn from the prior",
            "z ~ N(0, I) per sample (counter-based, keyed by seed and sample index) times `temperature` (default 1), decoded.",
            """{"count": 8, "seed": 42, "class_label": 5, "temperature": 1.0}""");
        group.MapPost("/encode", EncodeAsync).DescribeResults<VaeEncoding>(
            "VaeEncode",
            "Encode inputs to the posterior Gaussian",
            "Per input: the encoder's `mean` and `log_var` of q(z | x). Inputs are PNGs of the model's size or raw data in its range.",
            FamilyRouteExtensions.DigitInputsExample);
        group.MapPost("/reconstruct", ReconstructAsync).DescribeSampling(
            "VaeReconstruct",
            "Encode, then decode",
            "Decodes the posterior mean of each input; with a `seed`, decodes a draw z = mean + exp(log_var / 2) * eps instead.",
            FamilyRouteExtensions.DigitInputsExample);
        group.MapPost("/interpolations", InterpolateAsync).DescribeSampling(
            "VaeInterpolations",
            "Walk the latent space between two points",
            "`from`/`to` are {\"seed\": s}, {\"latent\": [...]} or {\"input\": {\"png\"|\"data\"}} (encoded to its posterior mean). slerp (default) or lerp.",
            """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 8, "class_label": 4}""");
        return app;
    }

    internal static async Task<IResult> SampleAsync(string model, LatentSampleRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        GeneratedSamples samples = await generation.VaeSamplesAsync(loaded, request.ToParameters(), options.Value.MaxCount, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, samples, mode, total);
    }

    internal static async Task<IResult> EncodeAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        ModelIO.RejectSamplingFields(request, "encode");
        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, loaded.Manifest, options.Value.MaxCount);
        VaeEncodings encoded = await generation.VaeEncodeAsync(loaded, inputs, request.ClassLabel, http.RequestAborted);
        List<VaeEncoding> results = [.. encoded.Mean.Zip(encoded.LogVar, (mean, logVar) => new VaeEncoding(mean, logVar))];
        return TypedResults.Json(new ResultsResponse<VaeEncoding> { Model = loaded.Manifest.Name, Family = "vae", Results = results, Timings = encoded.Timings.ToTimings(total) });
    }

    internal static async Task<IResult> ReconstructAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, loaded.Manifest, options.Value.MaxCount);
        GeneratedSamples samples = await generation.VaeReconstructAsync(loaded, inputs, request.ClassLabel, request.Seed, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, samples, mode, total);
    }

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        GeneratedSamples frames = await generation.InterpolateAsync(loaded, request.ToParameters(loaded.Manifest), options.Value.MaxCount, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, frames, mode, total);
    }
}
