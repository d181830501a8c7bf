using System.Diagnostics;
using GenService.Api.Families.Common;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Latents;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/flow/{model}: a fixed, exactly reversible route, so it also gives exact log-likelihoods.</summary>
public static class FlowEndpoints
{
    /// <summary>Default sampling temperature of flows: the usual reduced-temperature sampling (Glow, Kingma 2018).</summary>
    public const float DefaultTemperature = 0.8f;

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

    internal static async Task<IResult> SampleAsync(string model, LatentSampleRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner inverse = FamilyModels.RequireGraph(loaded, "inverse", "samples");
        int[] latentShape = LatentShape(manifest);
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        float temperature = Validate.Range(request.Temperature, DefaultTemperature, 0f, 10f, "temperature");
        var plan = SamplePlan.Create(request, manifest, manifest.SampleElements, options.Value.MaxCount);
        var timings = new InferenceTimings();
        float[][] samples = await LatentGraphs.DecodeAsync(inverse, LatentGraphs.Scale(plan.Latents, temperature), latentShape, plan.ModelLabels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, plan.Seed, samples, plan.ReportedLabels, mode, total, timings);
    }

    internal static async Task<IResult> EncodeAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        (ModelManifest manifest, float[][] latents, double[] logDet, _, InferenceTimings timings) = await ForwardAsync(model, request, "encode", http, repository, options);
        var results = new List<FlowEncoding>(latents.Length);
        for (int i = 0; i < latents.Length; i++)
        {
            results.Add(new FlowEncoding(latents[i], logDet[i]));
        }

        return TypedResults.Json(new ResultsResponse<FlowEncoding> { Model = manifest.Name, Family = "flow", Results = results, Timings = timings.ToTimings(total) });
    }

    internal static async Task<IResult> LogLikelihoodAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        (ModelManifest manifest, float[][] latents, double[] logDet, int elements, InferenceTimings timings) = await ForwardAsync(model, request, "log-likelihood", http, repository, options);
        var results = new List<FlowLikelihood>(latents.Length);
        for (int i = 0; i < latents.Length; i++)
        {
            double logProb = LatentMath.StandardNormalLogDensity(latents[i]) + logDet[i];
            results.Add(new FlowLikelihood(logProb, LatentMath.BitsPerDim(logProb, elements, manifest.Likelihood?.BinWidth)));
        }

        return TypedResults.Json(new ResultsResponse<FlowLikelihood> { Model = manifest.Name, Family = "flow", Results = results, Timings = timings.ToTimings(total) });
    }

    internal static Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner inverse = FamilyModels.RequireGraph(loaded, "inverse", "interpolations");
        IGraphRunner? forward = loaded.Graph("forward");
        Func<float[], int[]?, InferenceTimings, Task<float[]>>? encode = forward is null ? null : async (sample, labels, timings) =>
        {
            IReadOnlyDictionary<string, Tensor> outputs = await LatentGraphs.EncodeAsync(forward, [sample], manifest.Output.Shape, labels, timings, http.RequestAborted);
            return outputs[ModelIO.Output(forward, "latent")].AsFloats();
        };
        return LatentGraphs.InterpolateAsync(http, request, manifest, inverse, LatentShape(manifest), options.Value.MaxCount, encode);
    }

    private static async Task<(ModelManifest Manifest, float[][] Latents, double[] LogDet, int Elements, InferenceTimings Timings)> ForwardAsync(
        string model, InputsRequest request, string route, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Flow, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner forward = FamilyModels.RequireGraph(loaded, "forward", route);
        if (request.Output is not null || request.Seed is not null)
        {
            throw new RequestValidationException(request.Output is not null ? "output" : "seed", $"{route} takes only 'inputs' and 'class_label'.");
        }

        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, manifest, options.Value.MaxCount);
        int[]? labels = VaeEndpoints.InputLabels(request.ClassLabel, manifest, inputs.Length);
        var timings = new InferenceTimings();
        IReadOnlyDictionary<string, Tensor> outputs = await LatentGraphs.EncodeAsync(forward, inputs, manifest.Output.Shape, labels, timings, http.RequestAborted);
        float[][] latents = ModelIO.Unstack(outputs[ModelIO.Output(forward, "latent")]);
        Tensor logDetTensor = outputs[ModelIO.Output(forward, "log_det")];
        float[] logDetFlat = logDetTensor.AsFloats();
        int per = logDetFlat.Length / inputs.Length;
        var logDet = new double[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            // log_det is [B] by the contract; sum any per-dimension terms a graph may return instead.
            for (int j = 0; j < per; j++)
            {
                logDet[i] += logDetFlat[(i * per) + j];
            }
        }

        return (manifest, latents, logDet, manifest.SampleElements, timings);
    }

    private static int[] LatentShape(ModelManifest manifest) => manifest.LatentShape ?? manifest.Output.Shape;
}
