using System.Diagnostics;
using GenService.Api.Contracts;
using GenService.Api.Families.Common;
using GenService.Generation;
using GenService.Generation.Latent;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/flow/{model}: a fixed, exactly reversible route, so it also gives exact log-likelihoods.</summary>
internal static class FlowEndpoints
{
    public static IEndpointRouteBuilder MapFlowEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/flow/{model}").WithTags("flow");
        group.MapPost("/samples", SampleAsync).DescribeSampling(
            "FlowSamples",
            "Run the inverse flow on latents drawn from the prior",
            "z ~ N(0, I) per sample times `temperature` (default 0.8, the usual reduced temperature for flows; 1 samples the model's exact density), mapped through the inverse graph.",
            """{"count": 8, "seed": 42, "class_label": 2, "temperature": 0.8}""");
        group.MapPost("/encode", EncodeAsync).DescribeResults<FlowEncoding>(
            "FlowEncode",
            "Map inputs exactly to the latent space",
            "Per input: the forward graph's `latent` z = f(x) and `log_det` = log |det df/dx|.",
            FamilyRouteExtensions.DigitInputsExample);
        group.MapPost("/log-likelihood", LogLikelihoodAsync).DescribeResults<FlowLikelihood>(
            "FlowLogLikelihood",
            "Exact log-likelihood of inputs",
            "log p(x) = sum log N(z; 0, I) + log_det in the model's data space (nats). `bits_per_dim` = -(log p(x) + D ln(bin_width)) / (D ln 2) " +
            "when the model declares `likelihood.bin_width` (discrete data), else -log p(x) / (D ln 2).",
            FamilyRouteExtensions.DigitInputsExample);
        group.MapPost("/interpolations", InterpolateAsync).DescribeSampling(
            "FlowInterpolations",
            "Walk the latent space between two points",
            "`from`/`to` are {\"seed\": s}, {\"latent\": [...]} or {\"input\": {...}} (mapped exactly by the forward graph, so the end frames reproduce the inputs at temperature 1, the default here).",
            """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 8, "class_label": 1}""");
        return app;
    }

    internal static async Task<IResult> SampleAsync(string model, LatentSampleRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        GeneratedSamples samples = await generation.FlowSamplesAsync(loaded, request.ToParameters(), options.Value.MaxCount, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, samples, mode, total);
    }

    internal static async Task<IResult> EncodeAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        ModelIO.RejectSamplingFields(request, "encode");
        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, loaded.Manifest, options.Value.MaxCount);
        FlowEncodings encoded = await generation.FlowEncodeAsync(loaded, inputs, request.ClassLabel, http.RequestAborted);
        List<FlowEncoding> results = [.. encoded.Latents.Zip(encoded.LogDet, (latent, logDet) => new FlowEncoding(latent, logDet))];
        return TypedResults.Json(new ResultsResponse<FlowEncoding> { Model = loaded.Manifest.Name, Family = "flow", Results = results, Timings = encoded.Timings.ToTimings(total) });
    }

    internal static async Task<IResult> LogLikelihoodAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        ModelIO.RejectSamplingFields(request, "log-likelihood");
        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, loaded.Manifest, options.Value.MaxCount);
        FlowLikelihoods scored = await generation.FlowLogLikelihoodAsync(loaded, inputs, request.ClassLabel, http.RequestAborted);
        List<FlowLikelihood> results = [.. scored.LogProb.Zip(scored.BitsPerDim, (logProb, bits) => new FlowLikelihood(logProb, bits))];
        return TypedResults.Json(new ResultsResponse<FlowLikelihood> { Model = loaded.Manifest.Name, Family = "flow", Results = results, Timings = scored.Timings.ToTimings(total) });
    }

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, LatentGeneration generation, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        GeneratedSamples frames = await generation.InterpolateAsync(loaded, request.ToParameters(loaded.Manifest), options.Value.MaxCount, http.RequestAborted);
        return ModelIO.Respond(http, loaded.Manifest, frames, mode, total);
    }
}
