using GenService.Generation.Budgets;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Sampling.Diffusion;

namespace GenService.Generation.Diffusion;

/// <summary>
/// A validated diffusion request, ready to run: the sampler, per-sample state and where to start.
/// <code>
///   x_T = latent * init_sigma            (img2img: x = add_noise(init, latent, t_start))
///   for step in start..N-1:               one denoiser call per step for all rows of the request
///     rows = [x_i scaled]                 (+ the same rows with the null class under guidance)
///     eps  = denoiser(rows, t_step, labels)
///     eps  = uncond + g (cond - uncond)   (guidance)
///     x_i  = sampler.step(state_i, eps_i, x_i, noise_i)   noise_i from NoiseStream(seed, i, StepNoise)
/// </code>
/// Two loops run it (<see cref="IDiffusionLoop"/>, chosen by GenService:Diffusion:Scheduling): <see cref="DiffusionLoopRegistry"/>
/// (iteration-level, the default: the rows of every in-flight request in one denoiser call per iteration) or
/// <see cref="DiffusionRequestLoop"/> (request-level, the fallback: one call per step with this request's rows; the
/// graph's dynamic batcher merges concurrent calls).
/// Both step each sample through a <see cref="DiffusionSampleCursor"/>, so sample i depends only on (seed, i,
/// parameters): its latent and its step noise come from its own streams, consumed in its own step order.
/// </summary>
public sealed class DiffusionJob
{
    public required ModelManifest Manifest { get; init; }

    internal IGraphRunner Denoiser { get; init; } = null!;

    internal IDiffusionSampler Sampler { get; init; } = null!;

    /// <summary>A text-to-image job's VAE decoder (its latents become images after the loop).</summary>
    internal IGraphRunner? VaeDecoder { get; init; }

    public required int Count { get; init; }

    public required ulong Seed { get; init; }

    internal int[]? Labels { get; init; }

    /// <summary>The class of each sample as responses report it (null: the null class, or an unconditional model).</summary>
    public required int?[] ReportedLabels { get; init; }

    internal int? NullClass { get; init; }

    internal float GuidanceScale { get; init; }

    /// <summary>Each sample's x, from x_T to x_0 as the loop steps (the result when it completes).</summary>
    internal float[][] X { get; init; } = null!;

    /// <summary>The shape of one sample's x: output.shape, or a text-to-image job's latent [C, h, w].</summary>
    internal int[] SampleShape { get; init; } = null!;

    /// <summary>Elements of one sample's x (the product of <see cref="SampleShape"/>).</summary>
    internal int SampleElements => X[0].Length;

    /// <summary>The shape of one sample of the result: output.shape, or a text-to-image job's image [C, H, W].</summary>
    public int[] OutputShape { get; init; } = null!;

    /// <summary>A text-to-image job's prompt conditioning (null for a class-conditional or unconditional model).</summary>
    internal PromptConditioning? Text { get; init; }

    internal int StartStep { get; init; }

    internal int Intermediates { get; init; }

    /// <summary>The work this request asks for (count x steps x output pixels), for <see cref="WorkBudget"/>.</summary>
    public WorkRequest Work => WorkRequest.Diffusion(Manifest.Name, Count, Sampler.Timesteps.Count, OutputShape, Text is not null);

    /// <summary>Steps this request runs (N - start).</summary>
    public int StepsToRun => Sampler.Timesteps.Count - StartStep;

    /// <summary>Denoiser evaluations per sample: steps run, doubled under guidance (cond + uncond rows).</summary>
    public int NetworkEvaluations => StepsToRun * (Guided ? 2 : 1);

    internal bool Guided => GuidanceScale != 1f;

    /// <summary>Validate a request against the model; every failure names the field and the allowed values.</summary>
    public static DiffusionJob Create(DiffusionParameters request, ILoadedModel model, int maxCount)
    {
        ModelManifest manifest = model.Manifest;
        if (manifest.TextToImage is not null)
        {
            throw new InvalidOperationException($"Model '{manifest.Name}' is a text-to-image pipeline: its jobs come from TextToImagePipeline.");
        }

        if (request.Prompt is not null || request.NegativePrompt is not null || request.Height is not null || request.Width is not null)
        {
            string field = request.Prompt is not null ? "prompt" : request.NegativePrompt is not null ? "negative_prompt" : request.Height is not null ? "height" : "width";
            throw new RequestValidationException(field, $"'{field}' applies to text-to-image models (an export folder with a text encoder); '{manifest.Name}' is a {(manifest.Conditioning is null ? "unconditional" : "class-conditional")} pixel-space model of fixed size {string.Join("x", manifest.Output.Shape)}.");
        }

        IGraphRunner denoiser = FamilyModels.RequireGraph(model, "denoiser", "samples");
        SchedulerConfig config = manifest.Scheduler ?? new SchedulerConfig();
        double guidance = request.GuidanceScale ?? 1;
        CheckGuidance(guidance);
        int? nullClass = manifest.Conditioning?.NullClass;
        if (guidance != 1)
        {
            if (nullClass is null)
            {
                throw new RequestValidationException("guidance_scale", $"Model '{manifest.Name}' has no null class, so classifier-free guidance is not available; leave 'guidance_scale' at 1.");
            }

            if (request.ClassLabel is null)
            {
                throw new RequestValidationException("guidance_scale", "Classifier-free guidance steers towards a class: give a 'class_label' with 'guidance_scale'.");
            }
        }

        IDiffusionSampler sampler = CreateSampler(request, config, SamplerKind.Ddim);
        var plan = SamplePlan.Create(request, manifest, manifest.SampleElements, maxCount);
        float[]? init = request.Init is null ? null : Validate.Vector(request.Init, manifest.SampleElements, "init");
        (float[][] x, int start) = StartingPoints(request, sampler, plan, init is null ? null : _ => init);
        return new DiffusionJob
        {
            Manifest = manifest,
            Denoiser = denoiser,
            Sampler = sampler,
            Count = plan.Count,
            Seed = plan.Seed,
            Labels = plan.ModelLabels,
            ReportedLabels = plan.ReportedLabels,
            NullClass = nullClass,
            GuidanceScale = (float)guidance,
            X = x,
            SampleShape = manifest.Output.Shape,
            OutputShape = manifest.Output.Shape,
            StartStep = start,
            Intermediates = Validate.IntRange(request.ReturnIntermediates, 0, 0, sampler.Timesteps.Count - start, "return_intermediates"),
        };
    }

    /// <summary><c>guidance_scale</c> in [0, 50].</summary>
    internal static void CheckGuidance(double guidance)
    {
        if (!double.IsFinite(guidance) || guidance < 0 || guidance > 50)
        {
            throw new RequestValidationException("guidance_scale", $"'guidance_scale' must be in [0, 50]; got {guidance}.");
        }
    }

    /// <summary>The request's sampler (steps, sampler, eta, timestep_spacing), every failure naming its field.</summary>
    internal static IDiffusionSampler CreateSampler(DiffusionParameters request, SchedulerConfig config, SamplerKind defaultKind)
    {
        int steps = Validate.IntRange(request.Steps, 50, 1, config.NumTrainTimesteps, "steps");
        SamplerKind kind = WireChoices.Sampler.Parse(request.Sampler) ?? defaultKind;
        if (request.Eta is { } etaGiven && kind != SamplerKind.Ddim && etaGiven != 0)
        {
            throw new RequestValidationException("eta", $"'eta' applies to the ddim sampler only; sampler is '{SamplerSettings.WireName(kind)}'.");
        }

        double eta = request.Eta ?? 0;
        if (!(eta >= 0 && eta <= 1))
        {
            throw new RequestValidationException("eta", $"'eta' must be in [0, 1]; got {eta}.");
        }

        TimestepSpacing? spacing = WireChoices.Spacing.Parse(request.TimestepSpacing);
        try
        {
            return DiffusionSamplers.Create(config, new SamplerSettings(kind, steps, spacing, eta));
        }
        catch (ArgumentException e)
        {
            // e.g. steps_offset pushing leading timesteps past the last trained one: the sampler says which field.
            throw new RequestValidationException(e.ParamName ?? "steps", ArgumentMessage(e));
        }
    }

    /// <summary>
    /// Each sample's x_T and the step it starts at: latent * init_noise_sigma, or img2img (SDEdit) from
    /// <paramref name="initOf"/>(i), noised to the level of the start step that <c>strength</c> (default 0.8) gives.
    /// </summary>
    internal static (float[][] X, int Start) StartingPoints(DiffusionParameters request, IDiffusionSampler sampler, SamplePlan plan, Func<int, float[]>? initOf)
    {
        var x = new float[plan.Count][];
        if (initOf is null)
        {
            if (request.Strength is not null)
            {
                throw new RequestValidationException("strength", "'strength' needs an 'init' image (img2img).");
            }

            float sigma = (float)sampler.InitNoiseSigma;
            for (int i = 0; i < plan.Count; i++)
            {
                x[i] = new float[plan.Latents[i].Length];
                for (int j = 0; j < x[i].Length; j++)
                {
                    x[i][j] = plan.Latents[i][j] * sigma;
                }
            }

            return (x, 0);
        }

        double strength = request.Strength ?? 0.8;
        if (!(strength > 0 && strength <= 1))
        {
            throw new RequestValidationException("strength", $"'strength' must be in (0, 1]; got {strength}.");
        }

        int start = sampler.StartStepForStrength(strength);
        if (start >= sampler.Timesteps.Count)
        {
            throw new RequestValidationException("strength", $"'strength' {strength} with {request.Steps ?? 50} steps runs no step; raise strength or steps.");
        }

        for (int i = 0; i < plan.Count; i++)
        {
            float[] init = initOf(i);
            x[i] = new float[init.Length];
            sampler.AddNoise(init, plan.Latents[i], start, x[i]);
        }

        return (x, start);
    }

    /// <summary>An ArgumentException's message without the " (Parameter 'x')" and "Actual value" tails.</summary>
    internal static string ArgumentMessage(ArgumentException e)
    {
        string message = e.Message;
        int cut = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        if (cut < 0)
        {
            cut = message.IndexOf("\nActual value", StringComparison.Ordinal);
        }

        return (cut > 0 ? message[..cut] : message).Trim();
    }
}
