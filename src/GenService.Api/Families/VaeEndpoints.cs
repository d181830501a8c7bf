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
            """{"inputs": [{"data": [-1, -1, -0.5, 0.75, 1, 0, -1, -1, -1, -0.75, 1, 0.5, 0.5, 1, -0.5, -1, -1, -0.25, 1, -1, -0.75, 1, 0, -1, -1, -0.5, 0.75, -1, -0.5, 1, -0.25, -1, -1, -0.5, 1, 0.75, 1, 1, -0.5, -1, -1, -1, -0.25, -0.25, 0.25, 1, -0.5, -1, -1, -1, -1, -1, 0.25, 0.75, -1, -1, -1, -1, -0.5, 1, 0.5, -0.75, -1, -1]}], "class_label": 9}""");
        group.MapPost("/reconstruct", ReconstructAsync).DescribeSampling(
            "VaeReconstruct",
            "Encode, then decode",
            "Decodes the posterior mean of each input; with a `seed`, decodes a draw z = mean + exp(log_var / 2) * eps instead.",
            """{"inputs": [{"data": [-1, -1, -0.5, 0.75, 1, 0, -1, -1, -1, -0.75, 1, 0.5, 0.5, 1, -0.5, -1, -1, -0.25, 1, -1, -0.75, 1, 0, -1, -1, -0.5, 0.75, -1, -0.5, 1, -0.25, -1, -1, -0.5, 1, 0.75, 1, 1, -0.5, -1, -1, -1, -0.25, -0.25, 0.25, 1, -0.5, -1, -1, -1, -1, -1, 0.25, 0.75, -1, -1, -1, -1, -0.5, 1, 0.5, -0.75, -1, -1]}], "class_label": 9, "output": "both"}""");
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
        var plan = SamplePlan.Create(request, manifest, Elements(latentShape), options.Value.MaxCount);
        float[][] latents = Scale(plan.Latents, temperature);
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

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Vae, model);
        ModelManifest manifest = loaded.Manifest;
        IGraphRunner decoder = FamilyModels.RequireGraph(loaded, "decoder", "interpolations");
        IGraphRunner? encoder = loaded.Graph("encoder");
        int[] latentShape = manifest.LatentShape ?? [];
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        int frames = Validate.IntRange(request.Frames, 8, 2, options.Value.MaxCount, "frames");
        RejectDiffusionFields(request);
        float temperature = Validate.Range(request.Temperature, 1f, 0f, 10f, "temperature");
        (int[]? labels, int?[] reported) = SamplePlan.FrameLabels(request.ClassLabel, manifest, frames, request.From?.Seed ?? 0);
        var timings = new InferenceTimings();
        Func<float[], Task<float[]>>? encode = encoder is null ? null : async sample =>
        {
            (float[][] mean, _) = await EncodeGraphAsync(encoder, manifest, [sample], labels is null ? null : [labels[0]], timings, http.RequestAborted);
            return mean[0];
        };
        float[] from = await LatentGraphs.EndAsync(request.From, "from", Elements(latentShape), manifest, encode);
        float[] to = await LatentGraphs.EndAsync(request.To, "to", Elements(latentShape), manifest, encode);
        double[] t = LatentGraphs.Positions(frames);
        float[][] latents = Scale(LatentGraphs.Frames(from, to, t, request.Method), temperature);
        float[][] samples = await LatentGraphs.DecodeAsync(decoder, latents, latentShape, labels, timings, http.RequestAborted);
        return ModelIO.Respond(http, manifest, seed: null, samples, reported, mode, total, timings, positions: t);
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

    internal static void RejectDiffusionFields(InterpolationRequest request)
    {
        if (request.Steps is not null || request.GuidanceScale is not null)
        {
            throw new RequestValidationException(request.Steps is not null ? "steps" : "guidance_scale", "'steps' and 'guidance_scale' apply to diffusion models only.");
        }
    }

    private static void RejectSamplingFields(InputsRequest request)
    {
        if (request.Output is not null || request.Seed is not null)
        {
            throw new RequestValidationException(request.Output is not null ? "output" : "seed", "encode takes only 'inputs' and 'class_label'.");
        }
    }

    internal static int Elements(int[] shape) => shape.Aggregate(1, (a, b) => a * b);

    internal static float[][] Scale(float[][] latents, float factor)
        => factor == 1f ? latents : [.. latents.Select(l => l.Select(v => v * factor).ToArray())];
}
