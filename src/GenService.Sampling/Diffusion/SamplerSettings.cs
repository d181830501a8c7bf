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
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Parses a wire name; throws an <see cref="ArgumentException"/> naming the field <c>sampler</c> and the allowed values.</summary>
    public static SamplerKind ParseKind(string name) => name switch
    {
        "ddpm" => SamplerKind.Ddpm,
        "ddim" => SamplerKind.Ddim,
        "dpm_solver_pp" => SamplerKind.DpmSolverPP,
        "euler" => SamplerKind.Euler,
        "euler_ancestral" => SamplerKind.EulerAncestral,
        _ => throw new ArgumentException($"Unknown sampler '{name}'; allowed: ddpm, ddim, dpm_solver_pp, euler, euler_ancestral.", "sampler"),
    };

    /// <summary>Parses <c>leading</c>, <c>trailing</c>, <c>linspace</c>; throws naming the field <c>timestep_spacing</c>.</summary>
    public static TimestepSpacing ParseSpacing(string name) => name switch
    {
        "leading" => TimestepSpacing.Leading,
        "trailing" => TimestepSpacing.Trailing,
        "linspace" => TimestepSpacing.Linspace,
        _ => throw new ArgumentException($"Unknown timestep_spacing '{name}'; allowed: leading, trailing, linspace.", "timestep_spacing"),
    };
}
