using GenService.Generation.Budgets;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Latents;
using GenService.Sampling.Random;

namespace GenService.Generation.Latent;

/// <summary>
/// The families that cross in one pass of a graph: gan (generator), vae (decoder; encoder the way back) and flow
/// (inverse; forward the way back, with exact log-likelihoods). No loop: each request is one call of each graph it
/// needs, with all of its rows, and the graph's dynamic batcher merges concurrent requests. Every call counts one
/// network evaluation per row (<see cref="GenerationTelemetry"/>).
/// <code>
///   samples          z_i = latent(seed, i) * temperature (gan: truncated, * truncation)  ──► generator / decoder / inverse
///   vae encode       x_i ──► encoder ──► mean_i, log_var_i
///   vae reconstruct  x_i ──► encoder ──► z_i = mean_i (+ exp(log_var_i / 2) eps_i with a seed) ──► decoder
///   flow encode      x_i ──► forward ──► z_i, log_det_i;  log p(x_i) = log N(z_i; 0, I) + log_det_i
///   interpolations   ends (seed | latent | input ──► encoder) ──► slerp/lerp frames ──► decoder
/// </code>
/// </summary>
public sealed class LatentGeneration(GenerationTelemetry telemetry, WorkBudget? budget = null)
{
    /// <summary>Default sampling temperature of flows: the usual reduced-temperature sampling (Glow, Kingma 2018).</summary>
    public const float FlowTemperature = 0.8f;

    /// <summary>
    /// Holds the request's work (rows x output pixels) for its caller until the request's graph calls are done;
    /// a 400 past the per-request budget, a 429 past the caller's (<see cref="WorkBudget"/>).
    /// </summary>
    private WorkBudget.Lease? Admit(ModelManifest manifest, int rows, string field) =>
        budget?.Admit(WorkRequest.OneShot(manifest.Name, rows, manifest.Output.Shape, field));

    /// <summary>POST /v1/gan/{model}/samples.</summary>
    public async Task<GeneratedSamples> GanSamplesAsync(ILoadedModel model, GanParameters request, int maxCount, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        IGraphRunner generator = FamilyModels.RequireGraph(model, "generator", "samples");
        int[] latentShape = manifest.LatentShape ?? [];
        float? truncation = request.Truncation is null ? null : Validate.Range(request.Truncation, 1f, 0f, 1f, "truncation", minExclusive: true);
        Action<NoiseStream, Span<float>>? draw = truncation is null ? null : static (stream, span) => stream.FillTruncatedNormal(span, 2f);
        var plan = SamplePlan.Create(request, manifest, Elements(latentShape), maxCount, draw);
        using WorkBudget.Lease? work = Admit(manifest, plan.Count, "count");
        return await SampleAsync(generator, manifest, plan, Interpolation.Scale(plan.Latents, truncation ?? 1f), latentShape, ct);
    }

    /// <summary>POST /v1/vae/{model}/samples.</summary>
    public async Task<GeneratedSamples> VaeSamplesAsync(ILoadedModel model, LatentParameters request, int maxCount, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        IGraphRunner decoder = FamilyModels.RequireGraph(model, "decoder", "samples");
        int[] latentShape = manifest.LatentShape ?? [];
        float temperature = Validate.Range(request.Temperature, 1f, 0f, 10f, "temperature");
        var plan = SamplePlan.Create(request, manifest, Elements(latentShape), maxCount);
        using WorkBudget.Lease? work = Admit(manifest, plan.Count, "count");
        return await SampleAsync(decoder, manifest, plan, Interpolation.Scale(plan.Latents, temperature), latentShape, ct);
    }

    /// <summary>POST /v1/flow/{model}/samples (default temperature <see cref="FlowTemperature"/>).</summary>
    public async Task<GeneratedSamples> FlowSamplesAsync(ILoadedModel model, LatentParameters request, int maxCount, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        IGraphRunner inverse = FamilyModels.RequireGraph(model, "inverse", "samples");
        float temperature = Validate.Range(request.Temperature, FlowTemperature, 0f, 10f, "temperature");
        var plan = SamplePlan.Create(request, manifest, manifest.SampleElements, maxCount);
        using WorkBudget.Lease? work = Admit(manifest, plan.Count, "count");
        return await SampleAsync(inverse, manifest, plan, Interpolation.Scale(plan.Latents, temperature), FlowLatentShape(manifest), ct);
    }

    /// <summary>POST /v1/vae/{model}/encode: the posterior of each input.</summary>
    public async Task<VaeEncodings> VaeEncodeAsync(ILoadedModel model, float[][] inputs, int? classLabel, CancellationToken ct)
    {
        IGraphRunner encoder = FamilyModels.RequireGraph(model, "encoder", "encode");
        using WorkBudget.Lease? work = Admit(model.Manifest, inputs.Length, "inputs");
        int[]? labels = InputLabels(classLabel, model.Manifest, inputs.Length);
        var timings = new InferenceTimings();
        (float[][] mean, float[][] logVar) = await EncodeVaeAsync(encoder, model.Manifest, inputs, labels, timings, ct);
        return new VaeEncodings(mean, logVar, timings);
    }

    /// <summary>
    /// POST /v1/vae/{model}/reconstruct: decodes each input's posterior mean, or with <paramref name="seed"/> a draw
    /// z = mean + exp(log_var / 2) eps, eps from NoiseStream(seed, i, Reconstruct).
    /// </summary>
    public async Task<GeneratedSamples> VaeReconstructAsync(ILoadedModel model, float[][] inputs, int? classLabel, ulong? seed, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        IGraphRunner encoder = FamilyModels.RequireGraph(model, "encoder", "reconstruct");
        IGraphRunner decoder = FamilyModels.RequireGraph(model, "decoder", "reconstruct");
        using WorkBudget.Lease? work = Admit(manifest, inputs.Length, "inputs");
        int[]? labels = InputLabels(classLabel, manifest, inputs.Length);
        var timings = new InferenceTimings();
        (float[][] mean, float[][] logVar) = await EncodeVaeAsync(encoder, manifest, inputs, labels, timings, ct);
        float[][] latents = mean;
        if (seed is { } s)
        {
            latents = new float[inputs.Length][];
            for (int i = 0; i < inputs.Length; i++)
            {
                var eps = new float[mean[i].Length];
                new NoiseStream(s, (ulong)i, NoiseStreamIds.Reconstruct).FillNormal(eps);
                latents[i] = new float[eps.Length];
                for (int j = 0; j < eps.Length; j++)
                {
                    latents[i][j] = mean[i][j] + (MathF.Exp(0.5f * logVar[i][j]) * eps[j]);
                }
            }
        }

        float[][] samples = await DecodeAsync(decoder, manifest, latents, manifest.LatentShape ?? [], labels, timings, ct);
        int?[] reported = labels is null || classLabel is null ? new int?[inputs.Length] : [.. labels.Select(l => (int?)l)];
        return new GeneratedSamples(seed, samples, reported, timings);
    }

    /// <summary>POST /v1/flow/{model}/encode: z = f(x) and log |det df/dx| per input.</summary>
    public async Task<FlowEncodings> FlowEncodeAsync(ILoadedModel model, float[][] inputs, int? classLabel, CancellationToken ct)
    {
        using WorkBudget.Lease? work = Admit(model.Manifest, inputs.Length, "inputs");
        (float[][] latents, double[] logDet, InferenceTimings timings) = await ForwardAsync(model, inputs, classLabel, "encode", ct);
        return new FlowEncodings(latents, logDet, timings);
    }

    /// <summary>
    /// POST /v1/flow/{model}/log-likelihood: log p(x) = log N(z; 0, I) + log_det (nats) and bits/dim, discrete when
    /// the model declares <c>likelihood.bin_width</c>.
    /// </summary>
    public async Task<FlowLikelihoods> FlowLogLikelihoodAsync(ILoadedModel model, float[][] inputs, int? classLabel, CancellationToken ct)
    {
        using WorkBudget.Lease? work = Admit(model.Manifest, inputs.Length, "inputs");
        (float[][] latents, double[] logDet, InferenceTimings timings) = await ForwardAsync(model, inputs, classLabel, "log-likelihood", ct);
        ModelManifest manifest = model.Manifest;
        var logProb = new double[latents.Length];
        var bits = new double[latents.Length];
        for (int i = 0; i < latents.Length; i++)
        {
            logProb[i] = LatentMath.StandardNormalLogDensity(latents[i]) + logDet[i];
            bits[i] = LatentMath.BitsPerDim(logProb[i], manifest.SampleElements, manifest.Likelihood?.BinWidth);
        }

        return new FlowLikelihoods(logProb, bits, timings);
    }

    /// <summary>
    /// POST /v1/{gan|vae|flow}/{model}/interpolations: the ends (seed, latent, or an input through the encoder where
    /// the model has one: the vae's posterior mean, the flow's exact latent), <c>frames</c> latents along slerp/lerp,
    /// scaled by <c>temperature</c> (default 1), decoded with one class for the whole walk.
    /// </summary>
    public async Task<GeneratedSamples> InterpolateAsync(ILoadedModel model, InterpolationParameters request, int maxCount, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        (string decoderRole, string? encoderRole, int[] latentShape) = manifest.Family switch
        {
            ModelFamily.Gan => ("generator", (string?)null, manifest.LatentShape ?? []),
            ModelFamily.Vae => ("decoder", "encoder", manifest.LatentShape ?? []),
            ModelFamily.Flow => ("inverse", "forward", FlowLatentShape(manifest)),
            _ => throw new InvalidOperationException($"Model '{manifest.Name}' is a {manifest.Family.WireName()} model; its interpolations are not a single pass."),
        };
        IGraphRunner decoder = FamilyModels.RequireGraph(model, decoderRole, "interpolations");
        IGraphRunner? encoder = encoderRole is null ? null : model.Graph(encoderRole);
        int frames = Interpolation.Frames(request, maxCount);
        if (request.Steps is not null || request.GuidanceScale is not null)
        {
            throw new RequestValidationException(request.Steps is not null ? "steps" : "guidance_scale", "'steps' and 'guidance_scale' apply to diffusion models only.");
        }

        float temperature = Validate.Range(request.Temperature, 1f, 0f, 10f, "temperature");
        using WorkBudget.Lease? work = Admit(manifest, frames, "frames");
        (int[]? labels, int?[] reported) = SamplePlan.FrameLabels(request.ClassLabel, manifest, frames, request.From?.Seed ?? 0);
        var timings = new InferenceTimings();
        Func<float[], Task<float[]>>? encode = encoder is null ? null : async sample =>
        {
            int[]? one = labels is null ? null : [labels[0]];
            return manifest.Family == ModelFamily.Vae
                ? (await EncodeVaeAsync(encoder, manifest, [sample], one, timings, ct)).Mean[0]
                : (await EncodeAsync(encoder, manifest, [sample], one, timings, ct))[GraphIO.Output(encoder, "latent")].AsFloats();
        };
        int latentElements = Elements(latentShape);
        float[] from = await Interpolation.EndAsync(request.From, "from", latentElements, manifest, encode);
        float[] to = await Interpolation.EndAsync(request.To, "to", latentElements, manifest, encode);
        float[][] latents = Interpolation.Scale(Interpolation.Path(from, to, frames, request.Method), temperature);
        float[][] samples = await DecodeAsync(decoder, manifest, latents, latentShape, labels, timings, ct);
        return new GeneratedSamples(null, samples, reported, timings) { Positions = Interpolation.Positions(frames) };
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

    private async Task<GeneratedSamples> SampleAsync(IGraphRunner graph, ModelManifest manifest, SamplePlan plan, float[][] latents, int[] latentShape, CancellationToken ct)
    {
        var timings = new InferenceTimings();
        float[][] samples = await DecodeAsync(graph, manifest, latents, latentShape, plan.ModelLabels, timings, ct);
        return new GeneratedSamples(plan.Seed, samples, plan.ReportedLabels, timings);
    }

    /// <summary>Run a latent -> sample graph (gan generator, vae decoder, flow inverse) on all rows at once.</summary>
    private async Task<float[][]> DecodeAsync(IGraphRunner runner, ModelManifest manifest, IReadOnlyList<float[]> latents, IReadOnlyList<int> latentShape, int[]? labels, InferenceTimings timings, CancellationToken ct)
    {
        var inputs = new Dictionary<string, Tensor>
        {
            [GraphIO.Input(runner, "latent")] = GraphIO.Stack(latents, latentShape),
        };
        GraphIO.AddLabels(inputs, runner, labels);
        InferenceResult result = await runner.InferAsync(new InferenceRequest { Inputs = inputs }, ct);
        timings.Add(result);
        telemetry.Evaluated(manifest.Family, manifest.Name, latents.Count);
        return GraphIO.Unstack(result.Outputs[GraphIO.Output(runner, "sample")]);
    }

    /// <summary>Run a sample -> outputs graph (vae encoder, flow forward) on all inputs at once.</summary>
    private async Task<IReadOnlyDictionary<string, Tensor>> EncodeAsync(IGraphRunner runner, ModelManifest manifest, IReadOnlyList<float[]> samples, int[]? labels, InferenceTimings timings, CancellationToken ct)
    {
        var inputs = new Dictionary<string, Tensor>
        {
            [GraphIO.Input(runner, "sample")] = GraphIO.Stack(samples, manifest.Output.Shape),
        };
        GraphIO.AddLabels(inputs, runner, labels);
        InferenceResult result = await runner.InferAsync(new InferenceRequest { Inputs = inputs }, ct);
        timings.Add(result);
        telemetry.Evaluated(manifest.Family, manifest.Name, samples.Count);
        return result.Outputs;
    }

    private async Task<(float[][] Mean, float[][] LogVar)> EncodeVaeAsync(IGraphRunner encoder, ModelManifest manifest, float[][] inputs, int[]? labels, InferenceTimings timings, CancellationToken ct)
    {
        IReadOnlyDictionary<string, Tensor> outputs = await EncodeAsync(encoder, manifest, inputs, labels, timings, ct);
        return (GraphIO.Unstack(outputs[GraphIO.Output(encoder, "mean")]), GraphIO.Unstack(outputs[GraphIO.Output(encoder, "log_var")]));
    }

    private async Task<(float[][] Latents, double[] LogDet, InferenceTimings Timings)> ForwardAsync(ILoadedModel model, float[][] inputs, int? classLabel, string route, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        IGraphRunner forward = FamilyModels.RequireGraph(model, "forward", route);
        int[]? labels = InputLabels(classLabel, manifest, inputs.Length);
        var timings = new InferenceTimings();
        IReadOnlyDictionary<string, Tensor> outputs = await EncodeAsync(forward, manifest, inputs, labels, timings, ct);
        float[][] latents = GraphIO.Unstack(outputs[GraphIO.Output(forward, "latent")]);
        float[] logDetFlat = outputs[GraphIO.Output(forward, "log_det")].AsFloats();
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

        return (latents, logDet, timings);
    }

    private static int[] FlowLatentShape(ModelManifest manifest) => manifest.LatentShape ?? manifest.Output.Shape;

    private static int Elements(int[] shape) => shape.Aggregate(1, (a, b) => a * b);
}
