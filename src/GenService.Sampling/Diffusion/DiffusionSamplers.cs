namespace GenService.Sampling.Diffusion;

/// <summary>Creates samplers; validates the request's values and names the field at fault.</summary>
public static class DiffusionSamplers
{
    /// <summary>Builds the sampler for one request (cheap: the schedule is O(num_train_timesteps)).</summary>
    /// <exception cref="ArgumentException">A request value is out of range; <see cref="ArgumentException.ParamName"/> is the request field.</exception>
    public static IDiffusionSampler Create(SchedulerConfig config, SamplerSettings settings) =>
        Create(new NoiseSchedule(config), settings);

    /// <summary>As <see cref="Create(SchedulerConfig, SamplerSettings)"/>, reusing a schedule built once per model.</summary>
    public static IDiffusionSampler Create(NoiseSchedule schedule, SamplerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(settings);
        var config = schedule.Config;
        var trainSteps = schedule.NumTrainTimesteps;
        if (settings.Steps < 1 || settings.Steps > trainSteps)
        {
            throw new ArgumentOutOfRangeException("steps", settings.Steps, $"steps must be in 1..{trainSteps} (the model's num_train_timesteps).");
        }

        if (!(settings.Eta >= 0 && settings.Eta <= 1))
        {
            throw new ArgumentOutOfRangeException("eta", settings.Eta, "eta must be in 0..1.");
        }

        var spacing = settings.Spacing ?? config.TimestepSpacing;
        if (!Enum.IsDefined(spacing))
        {
            throw new ArgumentOutOfRangeException("timestep_spacing", spacing, "timestep_spacing must be leading, trailing or linspace.");
        }

        DiffusionSamplerBase sampler = settings.Kind switch
        {
            SamplerKind.Ddpm => new DdpmSampler(schedule, TimestepSchedules.Ddim(trainSteps, settings.Steps, spacing, config.StepsOffset)),
            SamplerKind.Ddim => new DdimSampler(schedule, TimestepSchedules.Ddim(trainSteps, settings.Steps, spacing, config.StepsOffset), settings.Eta),
            SamplerKind.DpmSolverPP => new DpmSolverPPSampler(schedule, TimestepSchedules.DpmSolver(trainSteps, settings.Steps, spacing, config.StepsOffset)),
            SamplerKind.Euler => new EulerSampler(schedule, TimestepSchedules.Euler(trainSteps, settings.Steps, spacing, config.StepsOffset), spacing, ancestral: false),
            SamplerKind.EulerAncestral => new EulerSampler(schedule, TimestepSchedules.Euler(trainSteps, settings.Steps, spacing, config.StepsOffset), spacing, ancestral: true),
            SamplerKind.Pndm => PndmSampler.Create(schedule, settings.Steps, spacing),
            _ => throw new ArgumentOutOfRangeException("sampler", settings.Kind, "sampler must be ddpm, ddim, dpm_solver_pp, euler, euler_ancestral or pndm."),
        };

        // Too many steps for the spacing: e.g. DPM-Solver++ with leading spacing uses T // (N + 1) as its stride, which
        // is 0 for N >= T and repeats timesteps; those steps do nothing (diffusers divides 0 by 0) and the sample is
        // noise. Refuse rather than return garbage. Checked on the N inference timesteps: PNDM repeats some on purpose.
        var inference = sampler.InferenceTimesteps;
        for (var i = 1; i < inference.Count; i++)
        {
            if (inference[i] >= inference[i - 1])
            {
                var name = SamplerSettings.WireName(settings.Kind);
                var distinct = inference.Distinct().Count();
                throw new ArgumentOutOfRangeException("steps", settings.Steps, $"steps {settings.Steps} with {spacing.ToString().ToLowerInvariant()} timestep spacing gives the {name} sampler only {distinct} distinct timesteps (it repeats timestep {inference[i]}); use fewer steps or timestep_spacing trailing or linspace.");
            }
        }

        // numpy's arange(T, 0, -T / N) has N + 1 points for some N (T = 1000: N = 61, 103, 121, ...), the last
        // rounding to timestep -1. The samplers that index alphas_cumprod by timestep cannot step there (diffusers
        // reads alphas_cumprod[-1], treating the almost clean sample as the noisiest one); the sigma samplers clamp
        // it to t = 0 as np.interp does and keep the extra step.
        if (settings.Kind is SamplerKind.Ddpm or SamplerKind.Ddim or SamplerKind.Pndm && sampler.Timesteps.Min() < 0)
        {
            var name = SamplerSettings.WireName(settings.Kind);
            throw new ArgumentOutOfRangeException("steps", settings.Steps, $"steps {settings.Steps} with {spacing.ToString().ToLowerInvariant()} timestep spacing gives the {name} sampler timestep {sampler.Timesteps.Min()} (numpy's arange(T, 0, -T / N) has N + 1 points here); use another number of steps or timestep_spacing.");
        }

        // steps_offset can push leading timesteps past the last trained one (diffusers would index out of range).
        if (sampler.Timesteps.Max() > trainSteps - 1)
        {
            throw new ArgumentOutOfRangeException("steps", settings.Steps, $"steps {settings.Steps} with the model's steps_offset {config.StepsOffset} reaches timestep {sampler.Timesteps.Max()}, beyond {trainSteps - 1}; use fewer steps or another timestep_spacing.");
        }

        return sampler;
    }
}

/// <summary>Per-sample state shared by all samplers; only DPM-Solver++ uses <see cref="PreviousX0"/> (PNDM extends it: <see cref="PndmState"/>).</summary>
internal class SamplerState(int elements, bool keepsHistory) : ISamplerState
{
    public int Elements { get; } = elements;

    public int LastStepIndex { get; set; } = -1;

    /// <summary>Steps taken since the start (diffusers' lower_order_nums, capped by the solver order).</summary>
    public int StepsTaken { get; set; }

    public float[]? PreviousX0 { get; } = keepsHistory ? new float[elements] : null;
}

/// <summary>What every sampler shares: timesteps, argument checks, img2img start.</summary>
internal abstract class DiffusionSamplerBase : IDiffusionSampler
{
    private readonly double[] _timesteps;
    private readonly double[] _inferenceTimesteps;

    /// <param name="schedule">The model's training noise schedule.</param>
    /// <param name="timesteps">The timestep of each model evaluation, noisiest first.</param>
    /// <param name="inferenceTimesteps">The N distinct inference timesteps behind <paramref name="timesteps"/> where they
    /// differ (PNDM evaluates some twice); null: the same list.</param>
    protected DiffusionSamplerBase(NoiseSchedule schedule, double[] timesteps, double[]? inferenceTimesteps = null)
    {
        Schedule = schedule;
        _timesteps = timesteps;
        _inferenceTimesteps = inferenceTimesteps ?? timesteps;
    }

    public abstract SamplerKind Kind { get; }

    public IReadOnlyList<double> Timesteps => _timesteps;

    public virtual double InitNoiseSigma => 1.0;

    public int NetworkEvaluations => _timesteps.Length;

    /// <summary>
    /// The request's N inference timesteps, noisiest first: <see cref="Timesteps"/> for every sampler but PNDM,
    /// whose list repeats one (PLMS: N + 1 entries) or adds Runge-Kutta midpoints (PRK: N + 9).
    /// </summary>
    public IReadOnlyList<double> InferenceTimesteps => _inferenceTimesteps;

    /// <summary>
    /// N, the steps the request asked for (diffusers' num_inference_steps), counted as inference timesteps: one more
    /// where numpy's trailing arange adds a point (only euler and dpm_solver_pp accept those; see Create).
    /// </summary>
    public int InferenceSteps => _inferenceTimesteps.Length;

    protected NoiseSchedule Schedule { get; }

    protected PredictionType Prediction => Schedule.Config.PredictionType;

    protected virtual bool KeepsHistory => false;

    public abstract bool NeedsNoise(int stepIndex);

    public virtual void ScaleModelInput(ReadOnlySpan<float> x, int stepIndex, Span<float> modelInput)
    {
        CheckStep(stepIndex);
        CheckLength(modelInput.Length, x.Length, nameof(modelInput));
        x.CopyTo(modelInput);
    }

    public void Step(ISamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0)
    {
        if (state is not SamplerState s || !IsOwnState(s))
        {
            throw new ArgumentException("The state must come from this sampler's CreateState.", nameof(state));
        }

        CheckStep(stepIndex);
        CheckLength(x.Length, s.Elements, nameof(x));
        CheckLength(modelOutput.Length, s.Elements, nameof(modelOutput));
        if (!predictedX0.IsEmpty)
        {
            CheckLength(predictedX0.Length, s.Elements, nameof(predictedX0));
        }

        if (NeedsNoise(stepIndex))
        {
            CheckLength(noise.Length, s.Elements, nameof(noise));
        }

        if (s.LastStepIndex >= 0 && stepIndex != s.LastStepIndex + 1)
        {
            throw new InvalidOperationException($"Steps must come in order: step {stepIndex} after step {s.LastStepIndex}.");
        }

        StepCore(s, modelOutput, stepIndex, x, noise, predictedX0);
        s.LastStepIndex = stepIndex;
        s.StepsTaken++;
    }

    public ISamplerState CreateState(int elements)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(elements);
        return NewState(elements);
    }

    public int StartStepForStrength(double strength)
    {
        if (!(strength >= 0 && strength <= 1))
        {
            throw new ArgumentOutOfRangeException("strength", strength, "strength must be in 0..1.");
        }

        // From N, not from Timesteps.Count: diffusers' get_timesteps works on num_inference_steps and then slices
        // scheduler.timesteps[t_start:] (scheduler.order is 1 here), so PNDM keeps its extra entries at the end.
        var n = InferenceSteps;
        var initTimestep = Math.Min((int)(n * strength), n);
        return Math.Max(n - initTimestep, 0);
    }

    public void AddNoise(ReadOnlySpan<float> x0, ReadOnlySpan<float> noise, int stepIndex, Span<float> xt)
    {
        if (stepIndex < 0 || stepIndex > _timesteps.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"stepIndex must be in 0..{_timesteps.Length}.");
        }

        CheckLength(xt.Length, x0.Length, nameof(xt));
        if (stepIndex == _timesteps.Length)
        {
            x0.CopyTo(xt);
            return;
        }

        CheckLength(noise.Length, x0.Length, nameof(noise));
        var (signal, noiseScale) = NoisingCoefficients(stepIndex);
        for (var i = 0; i < x0.Length; i++)
        {
            xt[i] = (float)((signal * x0[i]) + (noiseScale * noise[i]));
        }
    }

    /// <summary>x_t = a * x0 + b * noise at a step (DDPM/DDIM form: sqrt(acp), sqrt(1 - acp)).</summary>
    protected virtual (double Signal, double Noise) NoisingCoefficients(int stepIndex)
    {
        var acp = Schedule.AlphasCumprod[(int)_timesteps[stepIndex]];
        return (Math.Sqrt(acp), Math.Sqrt(1 - acp));
    }

    /// <summary>A fresh per-sample state (samplers with more memory than <see cref="SamplerState"/> override both).</summary>
    protected virtual SamplerState NewState(int elements) => new(elements, KeepsHistory);

    /// <summary>Whether <paramref name="state"/> has what this sampler's steps need (it came from a sampler of this kind).</summary>
    protected virtual bool IsOwnState(SamplerState state) => !KeepsHistory || state.PreviousX0 is not null;

    protected abstract void StepCore(SamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0);

    /// <summary>x0 and epsilon from a model output at alpha_prod_t (the DDPM/DDIM parameterisation).</summary>
    protected static (double X0, double Eps) Split(PredictionType prediction, double output, double sample, double sqrtAlpha, double sqrtBeta) =>
        prediction switch
        {
            PredictionType.Epsilon => ((sample - (sqrtBeta * output)) / sqrtAlpha, output),
            PredictionType.Sample => (output, (sample - (sqrtAlpha * output)) / sqrtBeta),
            _ => ((sqrtAlpha * sample) - (sqrtBeta * output), (sqrtAlpha * output) + (sqrtBeta * sample)),
        };

    protected void CheckStep(int stepIndex)
    {
        if ((uint)stepIndex >= (uint)_timesteps.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"stepIndex must be in 0..{_timesteps.Length - 1}.");
        }
    }

    private static void CheckLength(int actual, int expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{name} has {actual} elements; expected {expected}.", name);
        }
    }
}
