using System.Diagnostics;
using GenService.Api.Families.Common;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Random;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/vae/{model}: the decoder sails from the prior; the encoder tells where data lands.</summary>
public static class VaeEndpoints
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

    internal static async Task<IResult> SampleAsync(string model, LatentSampleRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner decoder = FamilyModels.RequireGraph(loaded, "decoder", "samples");
        int[] latentShape = manifest.LatentShape ?? [];
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        float temperature = Validate.Range(request.Temperature, 1f, 0f, 10f, "temperature");
        var plan = SamplePlan.Create(request, manifest, latentShape.Aggregate(1, (a, b) => a * b), options.Value.MaxCount);
        float[][] latents = LatentGraphs.Scale(plan.Latents, temperature);
        var timings = new InferenceTimings();
        float[][] samples = await LatentGraphs.DecodeAsync(decoder, latents, latentShape, plan.ModelLabels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, plan.Seed, samples, plan.ReportedLabels, mode, total, timings);
    }

    internal static async Task<IResult> EncodeAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner encoder = FamilyModels.RequireGraph(loaded, "encoder", "encode");
        RejectSamplingFields(request);
        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, manifest, options.Value.MaxCount);
        int[]? labels = InputLabels(request.ClassLabel, manifest, inputs.Length);
        var timings = new InferenceTimings();
        (float[][] mean, float[][] logVar) = await EncodeGraphAsync(encoder, manifest, inputs, labels, timings, http.RequestAborted);
        var results = new List<VaeEncoding>(inputs.Length);
        for (int i = 0; i < inputs.Length; i++)
        {
            results.Add(new VaeEncoding(mean[i], logVar[i]));
        }

        return TypedResults.Json(new ResultsResponse<VaeEncoding> { Model = manifest.Name, Family = "vae", Results = results, Timings = timings.ToTimings(total) });
    }

    internal static async Task<IResult> ReconstructAsync(string model, InputsRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner encoder = FamilyModels.RequireGraph(loaded, "encoder", "reconstruct");
        IGraphRunner decoder = FamilyModels.RequireGraph(loaded, "decoder", "reconstruct");
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        float[][] inputs = ModelIO.DecodeInputs(request.Inputs, manifest, options.Value.MaxCount);
        int[]? labels = InputLabels(request.ClassLabel, manifest, inputs.Length);
        var timings = new InferenceTimings();
        (float[][] mean, float[][] logVar) = await EncodeGraphAsync(encoder, manifest, inputs, labels, timings, http.RequestAborted);
        float[][] latents = mean;
        if (request.Seed is { } seed)
        {
            // z = mean + sigma * eps, eps from the reconstruct stream of (seed, input index).
            latents = new float[inputs.Length][];
            for (int i = 0; i < inputs.Length; i++)
            {
                var eps = new float[mean[i].Length];
                new NoiseStream(seed, (ulong)i, SeedStreams.Reconstruct).FillNormal(eps);
                latents[i] = new float[eps.Length];
                for (int j = 0; j < eps.Length; j++)
                {
                    latents[i][j] = mean[i][j] + (MathF.Exp(0.5f * logVar[i][j]) * eps[j]);
                }
            }
        }

        float[][] samples = await LatentGraphs.DecodeAsync(decoder, latents, manifest.LatentShape ?? [], labels, timings, http.RequestAborted);
        int?[] reported = labels is null || request.ClassLabel is null ? new int?[inputs.Length] : [.. labels.Select(l => (int?)l)];
        return ModelIO.Respond(http, manifest, request.Seed, samples, reported, mode, total, timings);
    }

    internal static Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner decoder = FamilyModels.RequireGraph(loaded, "decoder", "interpolations");
        IGraphRunner? encoder = loaded.Graph("encoder");
        Func<float[], int[]?, InferenceTimings, Task<float[]>>? encode = encoder is null ? null : async (sample, labels, timings) =>
            (await EncodeGraphAsync(encoder, manifest, [sample], labels, timings, http.RequestAborted)).Mean[0];
        return LatentGraphs.InterpolateAsync(http, request, manifest, decoder, manifest.LatentShape ?? [], options.Value.MaxCount, encode);
    }

    private static async Task<(float[][] Mean, float[][] LogVar)> EncodeGraphAsync(IGraphRunner encoder, ModelManifest manifest, float[][] inputs, int[]? labels, InferenceTimings timings, CancellationToken ct)
    {
        IReadOnlyDictionary<string, Tensor> outputs = await LatentGraphs.EncodeAsync(encoder, inputs, manifest.Output.Shape, labels, timings, ct);
        return (ModelIO.Unstack(outputs[ModelIO.Output(encoder, "mean")]), ModelIO.Unstack(outputs[ModelIO.Output(encoder, "log_var")]));
    }

    /// <summary>Labels for inputs: the asked-for class, else the null class; a conditional model without one needs a class.</summary>
    internal static int[]? InputLabels(int? classLabel, ModelManifest manifest, int count)
    {
        if (manifest.Conditioning is { } cond && classLabel is null && cond.NullClass is null)
        {
            throw new RequestValidationException("class_label", $"Model '{manifest.Name}' is class-conditional without a null class: give the inputs' 'class_label' (0..{cond.NumClasses - 1}).");
        }

        return SamplePlan.Labels(classLabel, manifest, count, 0).ModelLabels;
    }

    private static void RejectSamplingFields(InputsRequest request)
    {
        if (request.Output is not null || request.Seed is not null)
        {
            throw new RequestValidationException(request.Output is not null ? "output" : "seed", "encode takes only 'inputs' and 'class_label'.");
        }
    }
}
