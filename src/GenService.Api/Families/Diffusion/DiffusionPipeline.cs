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
/// The denoiser calls go through the graph's dynamic batcher, so steps of concurrent requests share batches.
/// Sample i depends only on (seed, i, parameters): its latent and its step noise come from its own streams.
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

/// <summary>Runs a <see cref="DiffusionJob"/> step by step (request-level: all of one request's rows per call).</summary>
internal static class DiffusionPipeline
{
    public static async IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        IDiffusionSampler sampler = job.Sampler;
        IGraphRunner denoiser = job.Denoiser;
        int n = job.Count;
        int elements = job.Manifest.SampleElements;
        int[] shape = job.Manifest.Output.Shape;
        var timings = new InferenceTimings();

        var states = new ISamplerState[n];
        var noiseStreams = new NoiseStream[n];
        for (int i = 0; i < n; i++)
        {
            states[i] = sampler.CreateState(elements);
            noiseStreams[i] = new NoiseStream(job.Seed, (ulong)i, SeedStreams.StepNoise);
        }

        string sampleName = ModelIO.Input(denoiser, "sample");
        string timestepName = ModelIO.Input(denoiser, "timestep");
        TensorSpec timestepSpec = denoiser.Signature.Inputs.First(s => s.Name == timestepName);
        string predictionName = ModelIO.Output(denoiser, "prediction");
        int rows = job.Guided ? 2 * n : n;
        int[]? rowLabels = null;
        if (job.Labels is { } labels)
        {
            rowLabels = new int[rows];
            labels.CopyTo(rowLabels, 0);
            if (job.Guided)
            {
                Array.Fill(rowLabels, job.NullClass!.Value, n, n);
            }
        }

        int total = sampler.Timesteps.Count;
        var snapshotSteps = SnapshotSteps(job.StartStep, total, job.Intermediates);
        List<Intermediate>[]? intermediates = job.Intermediates > 0 ? [.. Enumerable.Range(0, n).Select(_ => new List<Intermediate>())] : null;
        var modelInput = new float[rows * elements];
        var noise = new float[elements];
        var guided = new float[elements];
        var x0 = new float[elements];

        for (int step = job.StartStep; step < total; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int i = 0; i < n; i++)
            {
                sampler.ScaleModelInput(job.X[i], step, modelInput.AsSpan(i * elements, elements));
            }

            if (job.Guided)
            {
                Array.Copy(modelInput, 0, modelInput, n * elements, n * elements);
            }

            var dims = new long[shape.Length + 1];
            dims[0] = rows;
            for (int d = 0; d < shape.Length; d++)
            {
                dims[d + 1] = shape[d];
            }

            double t = sampler.Timesteps[step];
            var inputs = new Dictionary<string, Tensor>
            {
                [sampleName] = Tensor.FromFloats((float[])modelInput.Clone(), dims),
                [timestepName] = ModelIO.Scalars(timestepSpec, Enumerable.Repeat(t, rows).ToArray()),
            };
            ModelIO.AddLabels(inputs, denoiser, rowLabels);
            InferenceResult result = await denoiser.InferAsync(new InferenceRequest { Inputs = inputs }, cancellationToken);
            timings.Add(result);
            float[] prediction = result.Outputs[predictionName].AsFloats();

            bool snapshot = snapshotSteps.Contains(step);
            for (int i = 0; i < n; i++)
            {
                ReadOnlySpan<float> eps = prediction.AsSpan(i * elements, elements);
                if (job.Guided)
                {
                    Guidance.Apply(prediction.AsSpan((n + i) * elements, elements), eps, job.GuidanceScale, guided);
                    eps = guided;
                }

                if (sampler.NeedsNoise(step))
                {
                    noiseStreams[i].FillNormal(noise);
                }
                else
                {
                    Array.Clear(noise);
                }

                sampler.Step(states[i], eps, step, job.X[i], noise, x0);
                if (snapshot && intermediates is not null)
                {
                    intermediates[i].Add(new Intermediate
                    {
                        Step = step,
                        Timestep = t,
                        Sample = (float[])job.X[i].Clone(),
                        PredictedOriginal = (float[])x0.Clone(),
                    });
                }
            }

            yield return new DiffusionStepDone(new DiffusionProgress(step - job.StartStep + 1, total - job.StartStep, t, Math.Round(clock.Elapsed.TotalMilliseconds, 3)));
        }

        yield return new DiffusionCompleted(job.X, intermediates, timings);
    }

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
