namespace GenService.Sampling.Diffusion;

/// <summary>
/// Euler (Karras et al. 2022, Algorithm 2 with s_churn = 0) and Euler ancestral, as diffusers'
/// EulerDiscreteScheduler / EulerAncestralDiscreteScheduler. They work in the "sigma" space x = x0 + sigma eps:
/// sigma_i = sqrt((1 - acp) / acp) interpolated at the (possibly fractional) timesteps, then a final 0; the model
/// sees x / sqrt(sigma^2 + 1).
/// <code>
///   x0 = x - sigma m (epsilon) | m (sample) | m (-sigma / sqrt(sigma^2+1)) + x / (sigma^2+1) (v)
///   d  = (x - x0) / sigma
///   euler:            x' = x + d (sigma_next - sigma)
///   euler_ancestral:  up = sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2), down = sqrt(sigma_next^2 - up^2)
///                     x' = x + d (down - sigma) + up z
/// </code>
/// diffusers' ancestral scheduler refuses prediction_type "sample"; here it uses x0 = m like the others.
/// init_noise_sigma is max sigma for linspace/trailing spacing and sqrt(max^2 + 1) for leading (as diffusers).
/// </summary>
internal sealed class EulerSampler : DiffusionSamplerBase
{
    private readonly double[] _sigmas;
    private readonly bool _ancestral;

    public EulerSampler(NoiseSchedule schedule, double[] timesteps, TimestepSpacing spacing, bool ancestral)
        : base(schedule, timesteps)
    {
        _ancestral = ancestral;
        _sigmas = new double[timesteps.Length + 1];
        var max = 0.0;
        for (var i = 0; i < timesteps.Length; i++)
        {
            _sigmas[i] = schedule.SigmaAt(timesteps[i]);
            max = Math.Max(max, _sigmas[i]);
        }

        InitNoiseSigma = spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? max : Math.Sqrt((max * max) + 1);
    }

    public override SamplerKind Kind => _ancestral ? SamplerKind.EulerAncestral : SamplerKind.Euler;

    public override double InitNoiseSigma { get; }

    /// <summary>Sigma per step plus the final 0.</summary>
    public IReadOnlyList<double> Sigmas => _sigmas;

    public override bool NeedsNoise(int stepIndex) => _ancestral && _sigmas[stepIndex + 1] > 0;

    public override void ScaleModelInput(ReadOnlySpan<float> x, int stepIndex, Span<float> modelInput)
    {
        base.ScaleModelInput(x, stepIndex, modelInput);
        var sigma = _sigmas[stepIndex];
        var scale = 1.0 / Math.Sqrt((sigma * sigma) + 1);
        for (var i = 0; i < modelInput.Length; i++)
        {
            modelInput[i] = (float)(x[i] * scale);
        }
    }

    protected override (double Signal, double Noise) NoisingCoefficients(int stepIndex) => (1.0, _sigmas[stepIndex]);

    protected override void StepCore(SamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0)
    {
        var sigma = _sigmas[stepIndex];
        var sigmaNext = _sigmas[stepIndex + 1];
        double target = sigmaNext, up = 0;
        if (_ancestral)
        {
            up = Math.Sqrt(sigmaNext * sigmaNext * ((sigma * sigma) - (sigmaNext * sigmaNext)) / (sigma * sigma));
            target = Math.Sqrt((sigmaNext * sigmaNext) - (up * up));
        }

        var dt = target - sigma;
        var vOut = -sigma / Math.Sqrt((sigma * sigma) + 1);
        var vIn = 1.0 / ((sigma * sigma) + 1);
        var prediction = Prediction;
        var noisy = NeedsNoise(stepIndex);
        for (var i = 0; i < x.Length; i++)
        {
            double sample = x[i];
            double output = modelOutput[i];
            var x0 = prediction switch
            {
                PredictionType.Epsilon => sample - (sigma * output),
                PredictionType.Sample => output,
                _ => (output * vOut) + (sample * vIn),
            };
            if (!predictedX0.IsEmpty)
            {
                predictedX0[i] = (float)x0;
            }

            var next = sample + ((sample - x0) / sigma * dt);
            if (noisy)
            {
                next += up * noise[i];
            }

            x[i] = (float)next;
        }
    }
}
