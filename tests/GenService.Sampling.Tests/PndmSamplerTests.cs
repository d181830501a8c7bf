using GenService.Sampling.Diffusion;

namespace GenService.Sampling.Tests;

/// <summary>
/// The pndm sampler's timesteps, img2img starts, per-sample state and refusals (its final samples are checked against
/// diffusers in DiffusionReferenceTests). Timestep values are diffusers' PNDMScheduler.set_timesteps for the
/// configurations named (e.g. Stable Diffusion 1.x: leading spacing, steps_offset 1: 981, 961, 961, 941, ...).
/// </summary>
public sealed class PndmSamplerTests
{
    /// <summary>CompVis/stable-diffusion-v1-x scheduler/scheduler_config.json (PNDMScheduler).</summary>
    private static readonly SchedulerConfig StableDiffusion1 = new()
    {
        NumTrainTimesteps = 1000,
        BetaSchedule = BetaSchedule.ScaledLinear,
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        SetAlphaToOne = false,
        SkipPrkSteps = true,
        StepsOffset = 1,
    };

    private static readonly SchedulerConfig Default = new();

    private static IDiffusionSampler Pndm(SchedulerConfig config, int steps, TimestepSpacing? spacing = null) =>
        DiffusionSamplers.Create(config, new SamplerSettings(SamplerKind.Pndm, steps, spacing));

    [Fact]
    public void Stable_diffusion_1_at_50_steps_repeats_the_second_timestep_for_51_evaluations()
    {
        var sampler = Pndm(StableDiffusion1, 50);
        Assert.Equal(51, sampler.Timesteps.Count);
        Assert.Equal(51, sampler.NetworkEvaluations);
        Assert.Equal([981.0, 961, 961, 941, 921, 901], sampler.Timesteps.Take(6));
        Assert.Equal([81.0, 61, 41, 21, 1], sampler.Timesteps.TakeLast(5));

        // Below the repeat, one timestep per stride T // N = 20, down to 1 + steps_offset - 1.
        for (var i = 3; i < 51; i++)
        {
            Assert.Equal(20, sampler.Timesteps[i - 1] - sampler.Timesteps[i]);
        }

        Assert.Equal(1.0, sampler.InitNoiseSigma);
        Assert.All(Enumerable.Range(0, 51), i => Assert.False(sampler.NeedsNoise(i)));
    }

    [Theory]
    [InlineData(1, new[] { 1.0 })] // _ts[-2:-1] is empty for one step: a single evaluation
    [InlineData(2, new[] { 501.0, 1, 1 })]
    [InlineData(3, new[] { 667.0, 334, 334, 1 })]
    public void Few_steps_follow_diffusers_slicing(int steps, double[] expected)
    {
        Assert.Equal(expected, Pndm(StableDiffusion1, steps).Timesteps);
    }

    [Theory]
    [InlineData(TimestepSpacing.Trailing, new[] { 999.0, 799, 799, 599, 399, 199 })]
    [InlineData(TimestepSpacing.Linspace, new[] { 999.0, 749, 749, 500, 250, 0 })] // round(linspace(0, 999, 5)): 249.75 -> 250, 499.5 -> 500 (half to even), 749.25 -> 749
    public void Other_spacings_use_the_ddim_timesteps(TimestepSpacing spacing, double[] expected)
    {
        Assert.Equal(expected, Pndm(StableDiffusion1, 5, spacing).Timesteps);
    }

    [Fact]
    public void The_runge_kutta_warm_up_adds_midpoints_over_the_four_noisiest_timesteps()
    {
        // diffusers' default (skip_prk_steps false), N = 10, leading: _ts = 0, 100, .., 900 and h = T // N // 2 = 50.
        var sampler = Pndm(Default, 10);
        Assert.Equal(
            [900.0, 850, 850, 800, 800, 750, 750, 700, 700, 650, 650, 600, 600, 500, 400, 300, 200, 100, 0],
            sampler.Timesteps);
        Assert.Equal(19, sampler.NetworkEvaluations); // N + 9
        Assert.Equal(13, Pndm(Default, 4).NetworkEvaluations);
    }

    [Theory]
    [InlineData(true, 1.0, 0)]
    [InlineData(true, 0.95, 1)]  // floor(9.5) = 9 of N = 10: starts on the first t_{N-2}
    [InlineData(true, 0.75, 3)]
    [InlineData(true, 0.3, 7)]
    [InlineData(true, 0.0, 10)]  // still one entry left (t_0): diffusers runs it
    [InlineData(false, 1.0, 0)]
    [InlineData(false, 0.75, 3)]
    [InlineData(false, 0.0, 10)]
    public void Img2img_starts_from_n_not_from_the_longer_list(bool skipPrk, double strength, int start)
    {
        var sampler = Pndm(Default with { SkipPrkSteps = skipPrk }, 10);
        Assert.Equal(start, sampler.StartStepForStrength(strength));
        Assert.True(start < sampler.Timesteps.Count);

        // add_noise at timesteps[t_start]: sqrt(acp_t) x0 + sqrt(1 - acp_t) z.
        var acp = new NoiseSchedule(Default).AlphasCumprod[(int)sampler.Timesteps[start]];
        float[] x0 = [0.5f, -1f];
        float[] z = [2f, 0.25f];
        var xt = new float[2];
        sampler.AddNoise(x0, z, start, xt);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal((Math.Sqrt(acp) * x0[i]) + (Math.Sqrt(1 - acp) * z[i]), xt[i], 1e-6);
        }
    }

    [Fact]
    public void One_step_at_strength_zero_leaves_nothing_to_run()
    {
        var sampler = Pndm(StableDiffusion1, 1);
        Assert.Single(sampler.Timesteps);
        Assert.Equal(1, sampler.StartStepForStrength(0.0));
        Assert.Equal(0, sampler.StartStepForStrength(1.0));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_perfect_noise_model_lands_on_the_clean_sample(bool skipPrk)
    {
        // Every PLMS combination and the Runge-Kutta average weigh constant outputs to 1, and each transfer is exact
        // for x_t = sqrt(acp_t) x0 + sqrt(1 - acp_t) eps, so a model that returns eps stays on that path.
        var sampler = Pndm(Default with { SkipPrkSteps = skipPrk }, 10);
        SamplerAssertions.PerfectNoiseModelLandsOnTheCleanSample(sampler, finalTolerance: 1e-4);
    }

    [Fact]
    public void Steps_of_a_state_come_in_order_and_each_sample_needs_its_own_state()
    {
        var sampler = Pndm(StableDiffusion1, 5);
        var state = sampler.CreateState(2);
        var x = new float[2];
        sampler.Step(state, [0.1f, 0.2f], 0, x, default, default);
        Assert.Throws<InvalidOperationException>(() => sampler.Step(state, new float[2], 2, x, default, default)); // skips the repeat
        sampler.Step(state, [0.1f, 0.2f], 1, x, default, default);
        Assert.Throws<InvalidOperationException>(() => sampler.Step(state, new float[2], 1, x, default, default)); // again

        // A state that has already run (its history and counter) cannot start another sample.
        Assert.Throws<InvalidOperationException>(() => sampler.Step(state, new float[2], 0, x, default, default));

        // Another sampler's state lacks PNDM's history; a PLMS state lacks the Runge-Kutta sum.
        var ddim = DiffusionSamplers.Create(StableDiffusion1, new SamplerSettings(SamplerKind.Ddim, 5));
        Assert.Equal("state", Assert.Throws<ArgumentException>(() => sampler.Step(ddim.CreateState(2), new float[2], 0, x, default, default)).ParamName);
        var prk = Pndm(Default, 5);
        Assert.Equal("state", Assert.Throws<ArgumentException>(() => prk.Step(sampler.CreateState(2), new float[2], 0, x, default, default)).ParamName);
        Assert.Throws<ArgumentException>(() => sampler.Step(sampler.CreateState(2), new float[3], 0, x, default, default));
    }

    [Fact]
    public void The_counter_starts_at_the_first_step_a_state_takes()
    {
        // img2img from step 1 (the first t_{N-2}) runs diffusers' counter 0 there, not the c = 1 redo: the same
        // numbers as a fresh scheduler fed [t_{N-2}, t_{N-2}, t_{N-3}, ..]. A second state started at step 0 and
        // stepped to step 1 takes the c = 1 redo instead, so the two must differ at step 1.
        var sampler = Pndm(StableDiffusion1, 10);
        float[] start = [0.3f, -0.7f];
        float[] output = [0.2f, 0.1f];

        var fromOne = (float[])start.Clone();
        sampler.Step(sampler.CreateState(2), output, 1, fromOne, default, default);

        var fromZero = (float[])start.Clone();
        var state = sampler.CreateState(2);
        sampler.Step(state, output, 0, fromZero, default, default);
        var afterZero = (float[])fromZero.Clone();
        sampler.Step(state, output, 1, fromZero, default, default);

        // Counter 0 at t_{N-2} = 801 transfers to 801 - 100 = 701 with the output as eps.
        var schedule = new NoiseSchedule(StableDiffusion1);
        double a = schedule.AlphasCumprod[801], ap = schedule.AlphasCumprod[701];
        for (var i = 0; i < 2; i++)
        {
            var x0 = (start[i] - (Math.Sqrt(1 - a) * output[i])) / Math.Sqrt(a);
            Assert.Equal((Math.Sqrt(ap) * x0) + (Math.Sqrt(1 - ap) * output[i]), fromOne[i], 1e-5);
        }

        // Counter 1 redoes 901 -> 801 from the kept start with (e0 + e1) / 2 = output: the same as step 0 did.
        Assert.Equal(afterZero, fromZero);
    }

    [Fact]
    public void Prediction_type_sample_is_refused_naming_the_sampler()
    {
        var ex = Assert.Throws<ArgumentException>(() => Pndm(StableDiffusion1 with { PredictionType = PredictionType.Sample }, 10));
        Assert.Equal("sampler", ex.ParamName);
        Assert.Contains("prediction_type is sample", ex.Message, StringComparison.Ordinal);
        Assert.Contains("pndm", ex.Message, StringComparison.Ordinal);
        Assert.Equal(11, Pndm(StableDiffusion1 with { PredictionType = PredictionType.VPrediction }, 10).NetworkEvaluations);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void The_runge_kutta_warm_up_needs_four_steps(int steps)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Pndm(Default, steps));
        Assert.Equal("steps", ex.ParamName);
        Assert.Contains("skip_prk_steps", ex.Message, StringComparison.Ordinal);
        Assert.Equal(steps == 1 ? 1 : steps + 1, Pndm(Default with { SkipPrkSteps = true }, steps).NetworkEvaluations);
    }

    [Fact]
    public void Trailing_steps_where_numpy_makes_a_timestep_minus_one_are_refused()
    {
        // np.arange(1000, 0, -1000 / 61) has 62 points; the last rounds to 0, timestep -1.
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Pndm(StableDiffusion1, 61, TimestepSpacing.Trailing));
        Assert.Equal("steps", ex.ParamName);
        Assert.Contains("timestep -1", ex.Message, StringComparison.Ordinal);
        Assert.Equal(61, Pndm(StableDiffusion1, 61, TimestepSpacing.Leading).Timesteps.Distinct().Count());
        Assert.Equal(60, Pndm(StableDiffusion1, 60, TimestepSpacing.Trailing).Timesteps.Distinct().Count());

        // The same list made ddim and ddpm index alphas_cumprod[-1]; euler clamps t = -1 to t = 0 (np.interp) and keeps it.
        foreach (var kind in new[] { SamplerKind.Ddim, SamplerKind.Ddpm })
        {
            Assert.Contains("timestep -1", Assert.Throws<ArgumentOutOfRangeException>(() => DiffusionSamplers.Create(StableDiffusion1, new SamplerSettings(kind, 61, TimestepSpacing.Trailing))).Message, StringComparison.Ordinal);
        }

        Assert.Equal(62, DiffusionSamplers.Create(StableDiffusion1, new SamplerSettings(SamplerKind.Euler, 61, TimestepSpacing.Trailing)).NetworkEvaluations);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Stepping_allocates_nothing(bool skipPrk)
    {
        var sampler = Pndm(Default with { SkipPrkSteps = skipPrk }, 20);
        var state = sampler.CreateState(64);
        var x = new float[64];
        var output = new float[64];
        var x0 = new float[64];
        sampler.Step(state, output, 0, x, default, x0); // warm up
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var s = 1; s < sampler.Timesteps.Count; s++)
        {
            sampler.ScaleModelInput(x, s, output);
            sampler.Step(state, output, s, x, default, x0);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
