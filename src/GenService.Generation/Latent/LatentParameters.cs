namespace GenService.Generation.Latent;

/// <summary>A GAN sampling request as sent: the shared fields and <c>truncation</c>.</summary>
public sealed record GanParameters : SampleParameters
{
    /// <summary>In (0, 1]: drawn latents come from a normal truncated at ±2 and are scaled by it; absent: a plain normal.</summary>
    public float? Truncation { get; init; }
}

/// <summary>A VAE or flow sampling request as sent: the shared fields and <c>temperature</c>.</summary>
public sealed record LatentParameters : SampleParameters
{
    /// <summary>&gt;= 0; scales the latent (default 1 for vae, <see cref="LatentGeneration.FlowTemperature"/> for flow).</summary>
    public float? Temperature { get; init; }
}

/// <summary>One end of an interpolation: exactly one of a seed, a latent, or an input (decoded by the web layer).</summary>
public sealed record InterpolationEnd(ulong? Seed, float[]? Latent, float[]? Input);

/// <summary>An interpolation request as sent (<c>POST /v1/{family}/{model}/interpolations</c>).</summary>
public sealed record InterpolationParameters
{
    public InterpolationEnd? From { get; init; }

    public InterpolationEnd? To { get; init; }

    /// <summary>Frames including both ends, 2..max_count (default 8).</summary>
    public int? Frames { get; init; }

    /// <summary>A name of <see cref="WireChoices.Method"/> (default slerp).</summary>
    public string? Method { get; init; }

    public int? ClassLabel { get; init; }

    /// <summary>gan, vae, flow: latent scale (default 1).</summary>
    public float? Temperature { get; init; }

    /// <summary>diffusion: DDIM steps (default 50).</summary>
    public int? Steps { get; init; }

    /// <summary>diffusion: classifier-free guidance scale (default 1).</summary>
    public float? GuidanceScale { get; init; }
}

/// <summary>
/// Samples as responses carry them: flat, in the model's own space, with the seed used (sampling), the class each
/// reports, the graph time, and for interpolations each frame's position t in [0, 1].
/// </summary>
public sealed record GeneratedSamples(ulong? Seed, float[][] Samples, int?[] ReportedLabels, InferenceTimings Timings)
{
    /// <summary>Network evaluations per sample (diffusion), when the response reports them.</summary>
    public int? NetworkEvaluations { get; init; }

    /// <summary>The shape of each sample when it is not output.shape (a text-to-image request's own size).</summary>
    public int[]? Shape { get; init; }

    /// <summary>Interpolations: frame i's position t_i.</summary>
    public double[]? Positions { get; init; }
}

/// <summary>vae encode: per input, the posterior's mean and log-variance.</summary>
public sealed record VaeEncodings(float[][] Mean, float[][] LogVar, InferenceTimings Timings);

/// <summary>flow encode: per input, z = f(x) and log |det df/dx|.</summary>
public sealed record FlowEncodings(float[][] Latents, double[] LogDet, InferenceTimings Timings);

/// <summary>flow log-likelihood: per input, log p(x) in nats and bits per dimension.</summary>
public sealed record FlowLikelihoods(double[] LogProb, double[] BitsPerDim, InferenceTimings Timings);
