namespace GenService.Sampling.Diffusion;

/// <summary>Beta schedules as diffusers names them.</summary>
public enum BetaSchedule
{
    Linear,
    ScaledLinear,
    SquaredcosCapV2,
}

/// <summary>What the denoiser predicts.</summary>
public enum PredictionType
{
    Epsilon,
    VPrediction,
    Sample,
}

/// <summary>How inference timesteps are spread over the training timesteps (diffusers' timestep_spacing).</summary>
public enum TimestepSpacing
{
    Leading,
    Trailing,
    Linspace,
}

/// <summary>
/// The keys of a diffusers <c>scheduler_config.json</c> that GenService uses (docs/model-contract.md, "scheduler").
/// Unknown keys are ignored when parsing, so a diffusers file can be pasted in.
/// </summary>
public sealed record SchedulerConfig
{
    public int NumTrainTimesteps { get; init; } = 1000;

    public BetaSchedule BetaSchedule { get; init; } = BetaSchedule.Linear;

    public double BetaStart { get; init; } = 0.0001;

    public double BetaEnd { get; init; } = 0.02;

    public PredictionType PredictionType { get; init; } = PredictionType.Epsilon;

    public bool ClipSample { get; init; }

    public double ClipSampleRange { get; init; } = 1.0;

    public TimestepSpacing TimestepSpacing { get; init; } = TimestepSpacing.Leading;

    public int StepsOffset { get; init; }

    public bool SetAlphaToOne { get; init; } = true;

    /// <summary>
    /// PNDM only: true runs PLMS alone (as Stable Diffusion 1.x's scheduler config asks), false first runs diffusers'
    /// 12 Runge-Kutta (PRK) warm-up evaluations. False when absent, as in diffusers' PNDMScheduler.
    /// </summary>
    public bool SkipPrkSteps { get; init; }
}
