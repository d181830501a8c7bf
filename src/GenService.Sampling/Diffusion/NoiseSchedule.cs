namespace GenService.Sampling.Diffusion;

/// <summary>
/// The training noise schedule of a <see cref="SchedulerConfig"/>: betas, alphas_cumprod and the derived sigmas,
/// as diffusers computes them (in float64 here; diffusers keeps float32, a ~1e-6 relative difference).
/// </summary>
public sealed class NoiseSchedule
{
    private readonly double[] _betas;
    private readonly double[] _alphasCumprod;
    private readonly double[] _sigmas;

    public NoiseSchedule(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Validate(config);
        Config = config;
        var t = config.NumTrainTimesteps;
        _betas = new double[t];
        switch (config.BetaSchedule)
        {
            case BetaSchedule.Linear:
                Linspace(config.BetaStart, config.BetaEnd, _betas);
                break;
            case BetaSchedule.ScaledLinear:
                // The Stable Diffusion schedule: linear in sqrt(beta).
                Linspace(Math.Sqrt(config.BetaStart), Math.Sqrt(config.BetaEnd), _betas);
                for (var i = 0; i < t; i++)
                {
                    _betas[i] *= _betas[i];
                }

                break;
            case BetaSchedule.SquaredcosCapV2:
                // Nichol & Dhariwal's cosine schedule (diffusers betas_for_alpha_bar, max_beta 0.999).
                for (var i = 0; i < t; i++)
                {
                    _betas[i] = Math.Min(1 - (CosineAlphaBar((i + 1.0) / t) / CosineAlphaBar((double)i / t)), 0.999);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(config), config.BetaSchedule, "Unknown beta_schedule.");
        }

        _alphasCumprod = new double[t];
        _sigmas = new double[t];
        var product = 1.0;
        for (var i = 0; i < t; i++)
        {
            product *= 1 - _betas[i];
            _alphasCumprod[i] = product;
            _sigmas[i] = Math.Sqrt((1 - product) / product);
        }

        FinalAlphaCumprod = config.SetAlphaToOne ? 1.0 : _alphasCumprod[0];
    }

    public SchedulerConfig Config { get; }

    public int NumTrainTimesteps => _betas.Length;

    public IReadOnlyList<double> Betas => _betas;

    /// <summary>alphas_cumprod[t] = prod_{s &lt;= t} (1 - beta_s).</summary>
    public IReadOnlyList<double> AlphasCumprod => _alphasCumprod;

    /// <summary>The alpha_cumprod a DDIM step uses "before" timestep 0: 1 with set_alpha_to_one, else alphas_cumprod[0].</summary>
    public double FinalAlphaCumprod { get; }

    /// <summary>The karras-style sigma sqrt((1 - acp) / acp) at a (possibly fractional) timestep, linearly interpolated (np.interp).</summary>
    public double SigmaAt(double timestep)
    {
        if (timestep <= 0)
        {
            return _sigmas[0];
        }

        var last = _sigmas.Length - 1;
        if (timestep >= last)
        {
            return _sigmas[last];
        }

        var lo = (int)Math.Floor(timestep);
        var frac = timestep - lo;
        return frac == 0 ? _sigmas[lo] : _sigmas[lo] + ((_sigmas[lo + 1] - _sigmas[lo]) * frac);
    }

    /// <summary>Checks a scheduler configuration; errors name the model.json key (a model-load error).</summary>
    public static void Validate(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.NumTrainTimesteps is < 2 or > 100_000)
        {
            throw new ArgumentOutOfRangeException("num_train_timesteps", config.NumTrainTimesteps, "scheduler.num_train_timesteps must be in 2..100000.");
        }

        if (!(config.BetaStart > 0 && config.BetaStart < 1) || !(config.BetaEnd > 0 && config.BetaEnd < 1))
        {
            throw new ArgumentOutOfRangeException("beta_start", $"scheduler.beta_start ({config.BetaStart}) and beta_end ({config.BetaEnd}) must be in (0, 1).");
        }

        if (!(config.ClipSampleRange > 0))
        {
            throw new ArgumentOutOfRangeException("clip_sample_range", config.ClipSampleRange, "scheduler.clip_sample_range must be > 0.");
        }

        if (config.StepsOffset is < 0 or > 1000)
        {
            throw new ArgumentOutOfRangeException("steps_offset", config.StepsOffset, "scheduler.steps_offset must be in 0..1000.");
        }
    }

    private static double CosineAlphaBar(double t)
    {
        var c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2);
        return c * c;
    }

    /// <summary>np.linspace(start, stop, n) with its exact arithmetic: start + i * step, the last point = stop.</summary>
    internal static void Linspace(double start, double stop, Span<double> output)
    {
        var n = output.Length;
        if (n == 1)
        {
            output[0] = start;
            return;
        }

        var step = (stop - start) / (n - 1);
        for (var i = 0; i < n; i++)
        {
            output[i] = (i * step) + start;
        }

        output[n - 1] = stop;
    }
}
