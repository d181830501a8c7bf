namespace GenService.Sampling.Diffusion;

/// <summary>
/// PNDM (Liu et al. 2022) as diffusers' PNDMScheduler, the scheduler Stable Diffusion 1.x ships with. Every update is
/// the paper's transfer (formula 9, DDIM with eta 0) from t to t' with a combined noise estimate e:
/// <code>
///   x' = sqrt(acp_t' / acp_t) x - (acp_t' - acp_t) e / (acp_t sqrt(1 - acp_t') + sqrt(acp_t (1 - acp_t) acp_t'))
/// </code>
/// (acp_t' = final_alpha_cumprod below 0; v_prediction turns the combined output into e = sqrt(acp_t) v + sqrt(1 - acp_t) x).
/// With T // N as the stride, timesteps t_0 &lt; .. &lt; t_{N-1} as DDIM lists them, and the counter c of this
/// sample's steps:
/// <list type="bullet">
/// <item>PLMS (<c>skip_prk_steps</c> true): timesteps [t_{N-1}, t_{N-2}, t_{N-2}, t_{N-3}, .., t_0], N + 1 evaluations
/// (just [t_0] for N = 1). c = 0: e = e0, from t to t - T//N, keeping x. c = 1: the same step again from the kept x
/// with e = (e0 + e1) / 2 (the given timestep is the target, t + T//N the source; e1 is not kept). Then the
/// Adams-Bashforth combinations of the kept outputs: (3 e_1 - e_2) / 2, (23 e_1 - 16 e_2 + 5 e_3) / 12, then
/// (55 e_1 - 59 e_2 + 37 e_3 - 9 e_4) / 24 (e_1 the newest), each from t to t - T//N.</item>
/// <item>PRK warm-up (<c>skip_prk_steps</c> false, diffusers' default; N &gt;= 4): first 12 evaluations, three
/// Runge-Kutta steps over the four noisiest timesteps with midpoints h = T // N // 2 below them, all transferred from
/// the x and timestep at the start of each Runge-Kutta step, e = e1/6 + e2/3 + e3/3 + e4/6 on the fourth, then PLMS
/// from t_{N-4} down: N + 9 evaluations.</item>
/// </list>
/// The counter starts at the sample's first step, not at step 0, exactly as a freshly set diffusers scheduler does in
/// img2img (start = N - floor(N strength) of the longer list), including the odd c = 1 step that follows.
/// prediction_type sample and clip_sample do not exist in diffusers' PNDM: the first is refused, the second ignored.
/// The predicted x0 reported is the one the combined e implies at the transfer's source: (x - sqrt(1 - acp_t) e) / sqrt(acp_t).
/// </summary>
internal sealed class PndmSampler : DiffusionSamplerBase
{
    /// <summary>diffusers' PRK phase: 3 Runge-Kutta steps of 4 evaluations.</summary>
    internal const int PrkEvaluations = 12;

    private readonly bool _prk;
    private readonly int _stride;
    private readonly int _halfStride;

    private PndmSampler(NoiseSchedule schedule, double[] timesteps, double[] inference, int steps, bool prk)
        : base(schedule, timesteps, inference)
    {
        _prk = prk;
        _stride = schedule.NumTrainTimesteps / steps; // T // num_inference_steps
        _halfStride = _stride / 2;
    }

    public override SamplerKind Kind => SamplerKind.Pndm;

    /// <summary>Whether the 12 Runge-Kutta warm-up evaluations run (scheduler config <c>skip_prk_steps</c> false).</summary>
    public bool RungeKuttaWarmUp => _prk;

    /// <summary>The sampler for N steps, with diffusers' set_timesteps: the DDIM timesteps, then PNDM's PRK and PLMS lists.</summary>
    /// <exception cref="ArgumentException">prediction_type sample (ParamName "sampler"), or N &lt; 4 with the PRK warm-up ("steps").</exception>
    public static PndmSampler Create(NoiseSchedule schedule, int steps, TimestepSpacing spacing)
    {
        var config = schedule.Config;
        if (config.PredictionType == PredictionType.Sample)
        {
            throw new ArgumentException("The pndm sampler needs a model that predicts epsilon or v_prediction (as diffusers' PNDMScheduler); this model's scheduler.prediction_type is sample. Use ddim, ddpm, dpm_solver_pp, euler or euler_ancestral.", "sampler");
        }

        var prk = !config.SkipPrkSteps;
        if (prk && steps < 4)
        {
            throw new ArgumentOutOfRangeException("steps", steps, $"The pndm sampler's Runge-Kutta warm-up (the model's scheduler.skip_prk_steps is false) spans the 4 noisiest timesteps, so steps must be >= 4; got {steps}.");
        }

        // Descending, as DDIMScheduler lists them; diffusers' PNDM keeps the same values ascending (_timesteps).
        var inference = TimestepSchedules.Ddim(schedule.NumTrainTimesteps, steps, spacing, config.StepsOffset);
        var n = inference.Length; // N, or N + 1 with a last timestep -1 that DiffusionSamplers.Create refuses

        double[] timesteps;
        if (!prk)
        {
            // concat(_ts[:-1], _ts[-2:-1], _ts[-1:])[::-1]: t_{N-2} twice; for N = 1 _ts[-2:-1] is empty.
            timesteps = new double[n == 1 ? 1 : n + 1];
            timesteps[0] = inference[0];
            for (var i = 1; i < n; i++)
            {
                timesteps[i + 1] = inference[i];
            }

            if (n > 1)
            {
                timesteps[1] = inference[1];
            }
        }
        else
        {
            // prk = (_ts[-4:].repeat(2) + tile([0, h], 4))[:-1].repeat(2)[1:-1][::-1]
            //     = [t3, t2+h, t2+h, t2, t2, t1+h, t1+h, t1, t1, t0+h, t0+h, t0] over the 4 noisiest (t3 the noisiest),
            // then plms = _ts[:-3][::-1], which starts at t0 again.
            var h = schedule.NumTrainTimesteps / steps / 2;
            timesteps = new double[PrkEvaluations + n - 3];
            for (var k = 0; k < 3; k++)
            {
                var from = inference[k];
                var to = inference[k + 1];
                timesteps[4 * k] = from;
                timesteps[(4 * k) + 1] = to + h;
                timesteps[(4 * k) + 2] = to + h;
                timesteps[(4 * k) + 3] = to;
            }

            Array.Copy(inference, 3, timesteps, PrkEvaluations, n - 3);
        }

        return new PndmSampler(schedule, timesteps, inference, steps, prk);
    }

    public override bool NeedsNoise(int stepIndex) => false;

    protected override SamplerState NewState(int elements) => new PndmState(elements, _prk);

    protected override bool IsOwnState(SamplerState state) => state is PndmState p && (!_prk || p.RungeKuttaSum is not null);

    protected override void StepCore(SamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0)
    {
        var s = (PndmState)state;
        var counter = s.StepsTaken;
        var given = (int)Timesteps[stepIndex];
        if (_prk && counter < PrkEvaluations)
        {
            RungeKuttaStep(s, counter, given, modelOutput, x, predictedX0);
        }
        else
        {
            LinearMultistepStep(s, counter, given, modelOutput, x, predictedX0);
        }
    }

    /// <summary>diffusers' step_prk.</summary>
    private void RungeKuttaStep(PndmState s, int counter, int given, ReadOnlySpan<float> modelOutput, Span<float> x, Span<float> predictedX0)
    {
        var prev = given - (counter % 2 == 1 ? 0 : _halfStride);
        var t = (int)Timesteps[counter / 4 * 4];
        var sum = s.RungeKuttaSum!;
        var phase = counter % 4;
        if (phase == 0)
        {
            // The sum is 0 here (fresh, or reset by the previous phase 3), so diffusers' += is an assignment.
            for (var i = 0; i < sum.Length; i++)
            {
                sum[i] = (float)(1.0 / 6 * modelOutput[i]);
            }

            s.Push(modelOutput);
            x.CopyTo(s.CurrentSample);
        }
        else if (phase is 1 or 2)
        {
            for (var i = 0; i < sum.Length; i++)
            {
                sum[i] = (float)(sum[i] + (1.0 / 3 * modelOutput[i]));
            }
        }

        // Phase 3 uses sum + e/6 and leaves the sum at 0; phases 0-2 transfer with the raw output.
        var mix = phase == 3 ? new Mix(1.0 / 6, 1.0, 0, 0, 0) : new Mix(1, 0, 0, 0, 0);
        var (sampleCoeff, epsCoeff, sqrtA, sqrtB) = Transfer(t, prev);
        var v = Prediction == PredictionType.VPrediction;
        var current = s.CurrentSample;
        for (var i = 0; i < x.Length; i++)
        {
            double sample = current[i];
            var e = (mix.Output * modelOutput[i]) + (mix.Sum * sum[i]);
            if (v)
            {
                e = (sqrtA * e) + (sqrtB * sample);
            }

            if (!predictedX0.IsEmpty)
            {
                predictedX0[i] = (float)((sample - (sqrtB * e)) / sqrtA);
            }

            x[i] = (float)((sampleCoeff * sample) - (epsCoeff * e));
        }

        if (phase == 3)
        {
            Array.Clear(sum);
        }
    }

    /// <summary>diffusers' step_plms.</summary>
    private void LinearMultistepStep(PndmState s, int counter, int given, ReadOnlySpan<float> modelOutput, Span<float> x, Span<float> predictedX0)
    {
        int t = given, prev = given - _stride;
        if (counter != 1)
        {
            s.Push(modelOutput);
        }
        else
        {
            prev = given;
            t = given + _stride;
        }

        // e = w_out * output + sum_k w_k * ets[-1-k]; the source sample is x, or the kept one on the c = 1 redo.
        Mix mix;
        var fromKept = false;
        if (s.EtsCount == 1 && counter == 0)
        {
            mix = new Mix(1, 0, 0, 0, 0);
            x.CopyTo(s.CurrentSample);
        }
        else if (s.EtsCount == 1 && counter == 1)
        {
            mix = new Mix(0.5, 0.5, 0, 0, 0);
            fromKept = true;
        }
        else if (s.EtsCount == 2)
        {
            mix = new Mix(0, 3.0 / 2, -1.0 / 2, 0, 0);
        }
        else if (s.EtsCount == 3)
        {
            mix = new Mix(0, 23.0 / 12, -16.0 / 12, 5.0 / 12, 0);
        }
        else
        {
            mix = new Mix(0, 55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24);
        }

        ReadOnlySpan<float> e1 = s.Ets(0), e2 = s.Ets(1), e3 = s.Ets(2), e4 = s.Ets(3);
        var (sampleCoeff, epsCoeff, sqrtA, sqrtB) = Transfer(t, prev);
        var v = Prediction == PredictionType.VPrediction;
        var kept = s.CurrentSample;
        for (var i = 0; i < x.Length; i++)
        {
            double sample = fromKept ? kept[i] : x[i];
            var e = (mix.Output * modelOutput[i]) + (mix.Sum * e1[i]);
            if (mix.W2 != 0)
            {
                e += mix.W2 * e2[i];
            }

            if (mix.W3 != 0)
            {
                e += mix.W3 * e3[i];
            }

            if (mix.W4 != 0)
            {
                e += mix.W4 * e4[i];
            }

            if (v)
            {
                e = (sqrtA * e) + (sqrtB * sample);
            }

            if (!predictedX0.IsEmpty)
            {
                predictedX0[i] = (float)((sample - (sqrtB * e)) / sqrtA);
            }

            x[i] = (float)((sampleCoeff * sample) - (epsCoeff * e));
        }
    }

    /// <summary>_get_prev_sample's coefficients from t to t' (t' &lt; 0: final_alpha_cumprod), and sqrt(acp_t), sqrt(1 - acp_t).</summary>
    private (double SampleCoeff, double EpsCoeff, double SqrtA, double SqrtB) Transfer(int t, int prev)
    {
        var acp = Schedule.AlphasCumprod[t];
        var acpPrev = prev >= 0 ? Schedule.AlphasCumprod[prev] : Schedule.FinalAlphaCumprod;
        var betaProd = 1 - acp;
        var betaProdPrev = 1 - acpPrev;
        var denominator = (acp * Math.Sqrt(betaProdPrev)) + Math.Sqrt(acp * betaProd * acpPrev);
        return (Math.Sqrt(acpPrev / acp), (acpPrev - acp) / denominator, Math.Sqrt(acp), Math.Sqrt(betaProd));
    }

    /// <summary>Weights of a combined noise estimate: the current output, then the first slot (ets[-1] in PLMS, the Runge-Kutta sum in PRK), ets[-2..-4].</summary>
    private readonly record struct Mix(double Output, double Sum, double W2, double W3, double W4);
}

/// <summary>
/// diffusers' PNDM running values for one sample: the last (up to) 4 model outputs (ets), the sample kept for the
/// c = 1 redo and each Runge-Kutta step (cur_sample), the Runge-Kutta sum (cur_model_output, PRK only). The counter is
/// <see cref="SamplerState.StepsTaken"/>. Allocated once (4 + 1 or 4 + 2 buffers of the sample's size).
/// </summary>
internal sealed class PndmState : SamplerState
{
    private readonly float[][] _ets;
    private int _next;

    public PndmState(int elements, bool rungeKutta)
        : base(elements, keepsHistory: false)
    {
        _ets = [new float[elements], new float[elements], new float[elements], new float[elements]];
        CurrentSample = new float[elements];
        RungeKuttaSum = rungeKutta ? new float[elements] : null;
    }

    /// <summary>Model outputs kept, 0..4 (diffusers keeps ets[-3:] plus the new one).</summary>
    public int EtsCount { get; private set; }

    public float[] CurrentSample { get; }

    public float[]? RungeKuttaSum { get; }

    /// <summary>ets[-1 - back] (0 = the newest); empty when fewer are kept.</summary>
    public ReadOnlySpan<float> Ets(int back) => back < EtsCount ? _ets[(_next - 1 - back + 8) % 4] : default;

    public void Push(ReadOnlySpan<float> output)
    {
        output.CopyTo(_ets[_next]);
        _next = (_next + 1) % 4;
        EtsCount = Math.Min(EtsCount + 1, 4);
    }
}
