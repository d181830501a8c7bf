namespace GenService.Sampling.Diffusion;

/// <summary>
/// DDIM (Song et al. 2021) as diffusers' DDIMScheduler: with t' = t - T // N (acp_t' = final_alpha_cumprod below 0),
/// sigma = eta sqrt((1 - acp_t') / (1 - acp_t) (1 - acp_t / acp_t')),
/// x_{t'} = sqrt(acp_t') x0 + sqrt(1 - acp_t' - sigma^2) eps + sigma z. clip_sample clips x0 only; eps is the
/// unclipped one (diffusers' use_clipped_model_output = false).
/// </summary>
internal sealed class DdimSampler(NoiseSchedule schedule, double[] timesteps, double eta) : DiffusionSamplerBase(schedule, timesteps)
{
    public override SamplerKind Kind => SamplerKind.Ddim;

    public double Eta { get; } = eta;

    public override bool NeedsNoise(int stepIndex) => Eta > 0;

    protected override void StepCore(SamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0)
    {
        var config = Schedule.Config;
        var t = (int)Timesteps[stepIndex];
        var prevT = t - (config.NumTrainTimesteps / Timesteps.Count);
        var acp = Schedule.AlphasCumprod[t];
        var acpPrev = prevT >= 0 ? Schedule.AlphasCumprod[prevT] : Schedule.FinalAlphaCumprod;
        var betaProd = 1 - acp;
        var variance = (1 - acpPrev) / betaProd * (1 - (acp / acpPrev));
        var std = Eta * Math.Sqrt(variance);
        var sqrtAPrev = Math.Sqrt(acpPrev);
        // Clamped at 0: with eta = 1 and t' < 0 rounding can make the radicand a hair negative.
        var direction = Math.Sqrt(Math.Max(1 - acpPrev - (std * std), 0));
        var sqrtA = Math.Sqrt(acp);
        var sqrtB = Math.Sqrt(betaProd);
        var clip = config.ClipSample;
        var range = config.ClipSampleRange;
        var prediction = Prediction;
        var noisy = Eta > 0;
        for (var i = 0; i < x.Length; i++)
        {
            var (x0, eps) = Split(prediction, modelOutput[i], x[i], sqrtA, sqrtB);
            if (clip)
            {
                x0 = Math.Clamp(x0, -range, range);
            }

            if (!predictedX0.IsEmpty)
            {
                predictedX0[i] = (float)x0;
            }

            var next = (sqrtAPrev * x0) + (direction * eps);
            if (noisy)
            {
                next += std * noise[i];
            }

            x[i] = (float)next;
        }
    }
}
