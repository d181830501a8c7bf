using System.Diagnostics;
using System.Runtime.CompilerServices;
using GenService.Api.Families.Common;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Diffusion;
using GenService.Sampling.Random;

namespace GenService.Api.Families.Diffusion;

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
/// Two loops run it (GenService:Diffusion:Scheduling): <see cref="DiffusionScheduler"/> (iteration-level, the default:
/// the rows of every in-flight request in one denoiser call per iteration) or <see cref="DiffusionPipeline.RunAsync"/>
/// (request-level, the fallback: one call per step with this request's rows; the graph's dynamic batcher merges concurrent calls).
/// Both step each sample through a <see cref="DiffusionSampleCursor"/>, so sample i depends only on (seed, i,
/// parameters): its latent and its step noise come from its own streams, consumed in its own step order.
/// </summary>
internal sealed class DiffusionJob
{
    public required ModelManifest Manifest { get; init; }

    public required IGraphRunner Denoiser { get; init; }

    public required IDiffusionSampler Sampler { get; init; }

    public required int Count { get; init; }

    public required ulong Seed { get; init; }

    public required int[]? Labels { get; init; }

    public required int?[] ReportedLabels { get; init; }

    public required int? NullClass { get; init; }

    public required float GuidanceScale { get; init; }

    public required float[][] X { get; init; }

    public required int StartStep { get; init; }

    public required int Intermediates { get; init; }

    public required OutputMode Output { get; init; }

    /// <summary>Steps this request runs (N - start).</summary>
    public int StepsToRun => Sampler.Timesteps.Count - StartStep;

    /// <summary>Denoiser evaluations per sample: steps run, doubled under guidance (cond + uncond rows).</summary>
    public int NetworkEvaluations => StepsToRun * (Guided ? 2 : 1);

    public bool Guided => GuidanceScale != 1f;

    public static readonly string[] SamplerNames = ["ddpm", "ddim", "dpm_solver_pp", "euler", "euler_ancestral"];

    /// <summary>Validate a request against the model; every failure names the field and the allowed values.</summary>
    public static DiffusionJob Create(DiffusionSampleRequest request, ILoadedModel model, int maxCount)
    {
        ModelManifest manifest = model.Manifest;
        IGraphRunner denoiser = FamilyModels.RequireGraph(model, "denoiser", "samples");
        SchedulerConfig config = manifest.Scheduler ?? new SchedulerConfig();
        OutputMode output = OutputMode.Parse(request.Output, manifest);

        int steps = Validate.IntRange(request.Steps, 50, 1, config.NumTrainTimesteps, "steps");
        SamplerKind kind = ParseSampler(request.Sampler);
        if (request.Eta is { } etaGiven && kind != SamplerKind.Ddim && etaGiven != 0)
        {
            throw new RequestValidationException("eta", $"'eta' applies to the ddim sampler only; sampler is '{request.Sampler}'.");
        }

        double eta = request.Eta ?? 0;
        if (!(eta >= 0 && eta <= 1))
        {
            throw new RequestValidationException("eta", $"'eta' must be in [0, 1]; got {eta}.");
        }

        TimestepSpacing? spacing = request.TimestepSpacing?.ToLowerInvariant() switch
        {
            null => null,
            "leading" => TimestepSpacing.Leading,
            "trailing" => TimestepSpacing.Trailing,
            "linspace" => TimestepSpacing.Linspace,
            _ => throw new RequestValidationException("timestep_spacing", $"'timestep_spacing' must be leading, trailing or linspace; got '{request.TimestepSpacing}'."),
        };

        double guidance = request.GuidanceScale ?? 1;
        if (!double.IsFinite(guidance) || guidance < 0 || guidance > 50)
        {
            throw new RequestValidationException("guidance_scale", $"'guidance_scale' must be in [0, 50]; got {guidance}.");
        }

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

        IDiffusionSampler sampler;
        try
        {
            sampler = DiffusionSamplers.Create(config, new SamplerSettings(kind, steps, spacing, eta));
        }
        catch (ArgumentException e)
        {
            // e.g. steps_offset pushing leading timesteps past the last trained one: the sampler says which field.
            string field = e.ParamName ?? "steps";
            throw new RequestValidationException(field, ArgumentMessage(e));
        }
        var plan = SamplePlan.Create(request, manifest, manifest.SampleElements, maxCount);

        int start = 0;
        float[][] x = new float[plan.Count][];
        if (request.Init is not null)
        {
            double strength = request.Strength ?? 0.8;
            if (!(strength > 0 && strength <= 1))
            {
                throw new RequestValidationException("strength", $"'strength' must be in (0, 1]; got {strength}.");
            }

            float[] init = ModelIO.DecodeInput(request.Init, manifest, "init");
            start = sampler.StartStepForStrength(strength);
            if (start >= sampler.Timesteps.Count)
            {
                throw new RequestValidationException("strength", $"'strength' {strength} with {steps} steps runs no step; raise strength or steps.");
            }

            for (int i = 0; i < plan.Count; i++)
            {
                x[i] = new float[init.Length];
                sampler.AddNoise(init, plan.Latents[i], start, x[i]);
            }
        }
        else
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
        }

        int stepsToRun = sampler.Timesteps.Count - start;
        int k = Validate.IntRange(request.ReturnIntermediates, 0, 0, stepsToRun, "return_intermediates");
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
            StartStep = start,
            Intermediates = k,
            Output = output,
        };
    }

    /// <summary>An ArgumentException's message without the " (Parameter 'x')" and "Actual value" tails.</summary>
    public static string ArgumentMessage(ArgumentException e)
    {
        string message = e.Message;
        int cut = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        if (cut < 0)
        {
            cut = message.IndexOf("\nActual value", StringComparison.Ordinal);
        }

        return (cut > 0 ? message[..cut] : message).Trim();
    }

    public static SamplerKind ParseSampler(string? name) => name?.ToLowerInvariant() switch
    {
        null or "ddim" => SamplerKind.Ddim,
        "ddpm" => SamplerKind.Ddpm,
        "dpm_solver_pp" or "dpmsolver++" or "dpm_solver++" => SamplerKind.DpmSolverPP,
        "euler" => SamplerKind.Euler,
        "euler_ancestral" => SamplerKind.EulerAncestral,
        _ => throw new RequestValidationException("sampler", $"'sampler' must be one of {string.Join(", ", SamplerNames)}; got '{name}'."),
    };
}

/// <summary>What the diffusion loop reports: a step done, then the finished samples.</summary>
internal abstract record DiffusionEvent;

internal sealed record DiffusionStepDone(DiffusionProgress Progress) : DiffusionEvent;

internal sealed record DiffusionCompleted(float[][] Samples, List<Intermediate>[]? Intermediates, InferenceTimings Timings) : DiffusionEvent;

/// <summary>
/// One denoiser call over the current step of any set of samples (of one request or of many): a sample row per
/// sample at its own timestep, followed by its null-class row under guidance. Input names are resolved once.
/// </summary>
internal sealed class DenoiserBatch
{
    private readonly string _sampleName;
    private readonly string _timestepName;
    private readonly TensorSpec _timestepSpec;
    private readonly TensorSpec? _labelSpec;
    private readonly long[] _sampleDims;
    private readonly int _elements;

    public DenoiserBatch(IGraphRunner denoiser, ModelManifest manifest)
    {
        Denoiser = denoiser;
        _sampleName = ModelIO.Input(denoiser, "sample");
        _timestepName = ModelIO.Input(denoiser, "timestep");
        _timestepSpec = denoiser.Signature.Inputs.First(s => s.Name == _timestepName);
        _labelSpec = denoiser.Signature.Inputs.FirstOrDefault(s => s.Canonical == "class_label");
        PredictionName = ModelIO.Output(denoiser, "prediction");
        int[] shape = manifest.Output.Shape;
        _sampleDims = new long[shape.Length + 1];
        for (int d = 0; d < shape.Length; d++)
        {
            _sampleDims[d + 1] = shape[d];
        }

        _elements = manifest.SampleElements;
    }

    public IGraphRunner Denoiser { get; }

    public string PredictionName { get; }

    /// <summary>Rows of one call over <paramref name="samples"/>.</summary>
    public static int RowsOf(IReadOnlyList<DiffusionSampleCursor> samples)
    {
        int rows = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            rows += samples[k].Rows;
        }

        return rows;
    }

    /// <summary>
    /// The inputs of one call: rows in the order of <paramref name="samples"/>, guided samples taking two.
    /// <paramref name="dispatchImmediately"/>: the call is a whole scheduler iteration, batched already, so the
    /// batcher sends it at once; a request-level step leaves it false, so concurrent requests' steps can merge.
    /// </summary>
    public InferenceRequest Build(IReadOnlyList<DiffusionSampleCursor> samples, int rows, bool dispatchImmediately)
    {
        // Fresh arrays per call: the batcher may hold the tensors until the call completes, and the call is
        // small next to the model run (64 rows of 8x8 = 16 KB).
        int total = rows;
        var input = new float[total * _elements];
        var timesteps = new double[total];
        var labels = _labelSpec is null ? null : new double[total];
        int row = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            DiffusionSampleCursor s = samples[k];
            Span<float> cond = input.AsSpan(row * _elements, _elements);
            s.WriteModelInput(cond);
            timesteps[row] = s.Timestep;
            if (labels is not null)
            {
                labels[row] = s.Label ?? s.UnconditionalLabel;
            }

            row++;
            if (s.Rows == 2)
            {
                cond.CopyTo(input.AsSpan(row * _elements, _elements));
                timesteps[row] = s.Timestep;
                if (labels is not null)
                {
                    labels[row] = s.UnconditionalLabel;
                }

                row++;
            }
        }

        long[] dims = (long[])_sampleDims.Clone();
        dims[0] = total;
        var inputs = new Dictionary<string, Tensor>
        {
            [_sampleName] = Tensor.FromFloats(input, dims),
            [_timestepName] = ModelIO.Scalars(_timestepSpec, timesteps),
        };
        if (_labelSpec is not null && labels is not null)
        {
            inputs[_labelSpec.Name] = ModelIO.Scalars(_labelSpec, labels);
        }

        return new InferenceRequest { Inputs = inputs, Outputs = [PredictionName], DispatchImmediately = dispatchImmediately };
    }

    /// <summary>Advances every sample one step from the call's prediction (rows laid out as <see cref="Build"/>).</summary>
    public void Advance(IReadOnlyList<DiffusionSampleCursor> samples, float[] prediction, Span<float> scratch)
    {
        int row = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            DiffusionSampleCursor s = samples[k];
            ReadOnlySpan<float> cond = prediction.AsSpan(row * _elements, _elements);
            ReadOnlySpan<float> uncond = s.Rows == 2 ? prediction.AsSpan((row + 1) * _elements, _elements) : default;
            s.Advance(cond, uncond, scratch);
            row += s.Rows;
        }
    }
}

/// <summary>Runs a <see cref="DiffusionJob"/> step by step (request-level: all of one request's rows per call).</summary>
internal static class DiffusionPipeline
{
    /// <summary>The request-level loop: one denoiser call per step with all of the request's rows.</summary>
    public static async IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var timings = new InferenceTimings();
        (DiffusionSampleCursor[] samples, List<Intermediate>[]? intermediates) = Cursors(job);
        var batch = new DenoiserBatch(job.Denoiser, job.Manifest);
        int rows = DenoiserBatch.RowsOf(samples);
        var scratch = new float[3 * job.Manifest.SampleElements];
        int total = job.Sampler.Timesteps.Count;

        for (int step = job.StartStep; step < total; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            InferenceResult result = await job.Denoiser.InferAsync(batch.Build(samples, rows, dispatchImmediately: false), cancellationToken);
            timings.Add(result);
            batch.Advance(samples, result.Outputs[batch.PredictionName].AsFloats(), scratch);
            yield return new DiffusionStepDone(Progress(job, step - job.StartStep + 1, clock));
        }

        yield return new DiffusionCompleted(job.X, intermediates, timings);
    }

    /// <summary>A cursor per sample of the job, and the per-sample snapshot lists when intermediates are asked for.</summary>
    internal static (DiffusionSampleCursor[] Samples, List<Intermediate>[]? Intermediates) Cursors(DiffusionJob job)
    {
        HashSet<int> snapshotSteps = SnapshotSteps(job.StartStep, job.Sampler.Timesteps.Count, job.Intermediates);
        List<Intermediate>[]? intermediates = job.Intermediates > 0 ? [.. Enumerable.Range(0, job.Count).Select(_ => new List<Intermediate>())] : null;
        var samples = new DiffusionSampleCursor[job.Count];
        for (int i = 0; i < job.Count; i++)
        {
            samples[i] = new DiffusionSampleCursor(job, i, snapshotSteps, intermediates?[i]);
        }

        return (samples, intermediates);
    }

    /// <summary>The progress event after <paramref name="stepsDone"/> steps of every sample of the job.</summary>
    internal static DiffusionProgress Progress(DiffusionJob job, int stepsDone, Stopwatch clock)
        => new(stepsDone, job.StepsToRun, job.Sampler.Timesteps[job.StartStep + stepsDone - 1], Math.Round(clock.Elapsed.TotalMilliseconds, 3));

    /// <summary>k step indices evenly spread over [start, total), the last one always the final step.</summary>
    internal static HashSet<int> SnapshotSteps(int start, int total, int k)
    {
        var steps = new HashSet<int>();
        int run = total - start;
        for (int j = 1; j <= k; j++)
        {
            steps.Add(start + (int)Math.Round((double)j * run / k) - 1);
        }

        return steps;
    }
}
