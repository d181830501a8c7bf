namespace GenService.Sampling.Diffusion;

/// <summary>The diffusion samplers (the request field <c>sampler</c>).</summary>
public enum SamplerKind
{
    /// <summary><c>ddpm</c>: DDPMScheduler, ancestral, variance "fixed_small".</summary>
    Ddpm,

    /// <summary><c>ddim</c>: DDIMScheduler with eta (0 = deterministic).</summary>
    Ddim,

    /// <summary><c>dpm_solver_pp</c>: DPMSolverMultistepScheduler, dpmsolver++ 2M.</summary>
    DpmSolverPP,

    /// <summary><c>euler</c>: EulerDiscreteScheduler.</summary>
    Euler,

    /// <summary><c>euler_ancestral</c>: EulerAncestralDiscreteScheduler.</summary>
    EulerAncestral,

    /// <summary><c>pndm</c>: PNDMScheduler (PLMS, plus the PRK warm-up unless the scheduler config skips it).</summary>
    Pndm,
}

/// <summary>What one request asks of a sampler. <paramref name="Spacing"/> null = the model's scheduler default.</summary>
public sealed record SamplerSettings(SamplerKind Kind, int Steps, TimestepSpacing? Spacing = null, double Eta = 0)
{
    /// <summary>The wire names of <see cref="SamplerKind"/> (request field <c>sampler</c>).</summary>
    public static string WireName(SamplerKind kind) => kind switch
    {
        SamplerKind.Ddpm => "ddpm",
        SamplerKind.Ddim => "ddim",
        SamplerKind.DpmSolverPP => "dpm_solver_pp",
        SamplerKind.Euler => "euler",
        SamplerKind.EulerAncestral => "euler_ancestral",
        SamplerKind.Pndm => "pndm",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The wire names of <see cref="TimestepSpacing"/> (request field <c>timestep_spacing</c>, diffusers' values).</summary>
    public static string WireName(TimestepSpacing spacing) => spacing switch
    {
        TimestepSpacing.Leading => "leading",
        TimestepSpacing.Trailing => "trailing",
        TimestepSpacing.Linspace => "linspace",
        _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
    };
}
