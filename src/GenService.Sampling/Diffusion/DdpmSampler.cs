namespace GenService.Sampling.Diffusion;

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020) as diffusers' DDPMScheduler with variance_type "fixed_small":
/// x_{t'} = c0 * x0 + ct * x_t + sqrt(var) * z, where t' = t - T // N (diffusers' previous_timestep, even for
/// trailing/linspace spacing where t' is not the next listed timestep), the posterior mean coefficients
/// c0 = sqrt(acp_t') beta_t / (1 - acp_t), ct = sqrt(alpha_t) (1 - acp_t') / (1 - acp_t) with
/// alpha_t = acp_t / acp_t', beta_t = 1 - alpha_t, and var = (1 - acp_t') / (1 - acp_t) beta_t (no noise at t = 0).
/// </summary>
internal sealed class DdpmSampler(NoiseSchedule schedule, double[] timesteps) : DiffusionSamplerBase(schedule, timesteps)
{
    public override SamplerKind Kind => SamplerKind.Ddpm;

    public override bool NeedsNoise(int stepIndex) => Timesteps[stepIndex] > 0;

    protected override void StepCore(SamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0)
    {
        var config = Schedule.Config;
        var t = (int)Timesteps[stepIndex];
        var prevT = t - (config.NumTrainTimesteps / Timesteps.Count);
        var acp = Schedule.AlphasCumprod[t];
        var acpPrev = prevT >= 0 ? Schedule.AlphasCumprod[prevT] : 1.0; // DDPM ignores set_alpha_to_one
        var betaProd = 1 - acp;
        var betaProdPrev = 1 - acpPrev;
        var currentAlpha = acp / acpPrev;
        var currentBeta = 1 - currentAlpha;
        var c0 = Math.Sqrt(acpPrev) * currentBeta / betaProd;
        var ct = Math.Sqrt(currentAlpha) * betaProdPrev / betaProd;
        var std = t > 0 ? Math.Sqrt(Math.Max(betaProdPrev / betaProd * currentBeta, 1e-20)) : 0.0;
        var sqrtA = Math.Sqrt(acp);
        var sqrtB = Math.Sqrt(betaProd);
        var clip = config.ClipSample;
        var range = config.ClipSampleRange;
        var prediction = Prediction;
        for (var i = 0; i < x.Length; i++)
        {
            var (x0, _) = Split(prediction, modelOutput[i], x[i], sqrtA, sqrtB);
            if (clip)
            {
                x0 = Math.Clamp(x0, -range, range);
            }

            if (!predictedX0.IsEmpty)
            {
                predictedX0[i] = (float)x0;
            }

            var next = (c0 * x0) + (ct * x[i]);
            if (std > 0)
            {
                next += std * noise[i];
            }

            x[i] = (float)next;
        }
    }
}
