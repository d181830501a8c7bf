namespace GenService.Sampling.Diffusion;

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022) as diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++",
/// solver_order 2, solver_type "midpoint", lower_order_final, final_sigmas_type "zero". In the data-prediction
/// form, with alpha = 1/sqrt(sigma^2+1), s = sigma alpha, lambda = ln(alpha / s) and h = lambda_next - lambda_i:
/// <code>
///   first order (first step, last step):  x' = (s_next / s_i) x - alpha_next (e^-h - 1) m_i
///   second order:  r = (lambda_i - lambda_prev) / h,  D1 = (m_i - m_prev) / r
///                  x' = (s_next / s_i) x - alpha_next (e^-h - 1) m_i - 0.5 alpha_next (e^-h - 1) D1
/// </code>
/// m = the x0 prediction (no clip_sample: diffusers' DPM-Solver has only dynamic thresholding). The last step
/// lands on sigma 0 and returns m. The previous m lives in the per-sample state.
/// </summary>
internal sealed class DpmSolverPPSampler : DiffusionSamplerBase
{
    private readonly double[] _sigmas;

    public DpmSolverPPSampler(NoiseSchedule schedule, double[] timesteps)
        : base(schedule, timesteps)
    {
        _sigmas = new double[timesteps.Length + 1];
        for (var i = 0; i < timesteps.Length; i++)
        {
            _sigmas[i] = schedule.SigmaAt(timesteps[i]);
        }
    }

    public override SamplerKind Kind => SamplerKind.DpmSolverPP;

    /// <summary>Sigma per step plus the final 0.</summary>
    public IReadOnlyList<double> Sigmas => _sigmas;

    protected override bool KeepsHistory => true;

    public override bool NeedsNoise(int stepIndex) => false;

    protected override (double Signal, double Noise) NoisingCoefficients(int stepIndex)
    {
        var (alpha, sigma) = AlphaSigma(_sigmas[stepIndex]);
        return (alpha, sigma);
    }

    protected override void StepCore(SamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0)
    {
        var n = Timesteps.Count;
        var (alphaI, sigmaI) = AlphaSigma(_sigmas[stepIndex]);
        var previous = state.PreviousX0!;
        var prediction = Prediction;
        var sigmaNext = _sigmas[stepIndex + 1];
        // final_sigmas_type "zero" makes the last step first order; the first step of a run has no history.
        var firstOrder = state.StepsTaken < 1 || stepIndex == n - 1;
        double a = 0, b = 0, c = 0;
        var identity = false;
        if (sigmaNext == 0)
        {
            // alpha_next = 1, s_next = 0, e^-h = 0: x' = m.
            b = 1;
        }
        else
        {
            var (alphaNext, sNext) = AlphaSigma(sigmaNext);
            var lambdaNext = Math.Log(alphaNext) - Math.Log(sNext);
            var lambdaI = Math.Log(alphaI) - Math.Log(sigmaI);
            var h = lambdaNext - lambdaI;
            if (h == 0)
            {
                // A repeated timestep (leading spacing with N + 1 > T): diffusers divides 0 by 0 here; the
                // step is the identity it is in the first-order limit.
                identity = true;
            }
            else
            {
                a = sNext / sigmaI;
                var phi = -alphaNext * (Math.Exp(-h) - 1.0);
                b = phi;
                if (!firstOrder)
                {
                    var (alphaPrev, sPrev) = AlphaSigma(_sigmas[stepIndex - 1]);
                    var r = (lambdaI - (Math.Log(alphaPrev) - Math.Log(sPrev))) / h;
                    // x' = a x + phi m + 0.5 phi (m - m_prev) / r
                    c = 0.5 * phi / r;
                }
            }
        }

        for (var i = 0; i < x.Length; i++)
        {
            double output = modelOutput[i];
            double sample = x[i];
            var m = prediction switch
            {
                PredictionType.Epsilon => (sample - (sigmaI * output)) / alphaI,
                PredictionType.Sample => output,
                _ => (alphaI * sample) - (sigmaI * output),
            };
            if (!predictedX0.IsEmpty)
            {
                predictedX0[i] = (float)m;
            }

            if (!identity)
            {
                var next = (a * sample) + (b * m);
                if (c != 0)
                {
                    next += c * (m - previous[i]);
                }

                x[i] = (float)next;
            }

            previous[i] = (float)m;
        }
    }

    private static (double Alpha, double Sigma) AlphaSigma(double sigma)
    {
        var alpha = 1.0 / Math.Sqrt((sigma * sigma) + 1);
        return (alpha, sigma * alpha);
    }
}
