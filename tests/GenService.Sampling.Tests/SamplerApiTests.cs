using GenService.Sampling.Diffusion;
using GenService.Sampling.Random;

namespace GenService.Sampling.Tests;

public sealed class SamplerApiTests
{
    private static readonly SchedulerConfig Config = new();

    public static TheoryData<SamplerKind> Kinds() => new(Enum.GetValues<SamplerKind>());

    [Theory]
    [InlineData(0, 0.0, "steps")]
    [InlineData(1001, 0.0, "steps")]
    [InlineData(10, -0.1, "eta")]
    [InlineData(10, 1.5, "eta")]
    public void Bad_requests_name_the_field(int steps, double eta, string field)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.Ddim, steps, Eta: eta)));
        Assert.Equal(field, ex.ParamName);
        Assert.Contains(field, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Steps_offset_beyond_the_last_timestep_is_refused()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => DiffusionSamplers.Create(Config with { StepsOffset = 1 }, new SamplerSettings(SamplerKind.Ddim, 1000)));
        Assert.Equal("steps", ex.ParamName);
    }

    [Theory]
    [InlineData(SamplerKind.DpmSolverPP, 1000, TimestepSpacing.Leading, false)] // stride T // (N + 1) = 0
    [InlineData(SamplerKind.DpmSolverPP, 600, TimestepSpacing.Leading, true)]   // stride 1: 0..600, distinct
    [InlineData(SamplerKind.DpmSolverPP, 1000, TimestepSpacing.Trailing, true)]
    [InlineData(SamplerKind.DpmSolverPP, 1000, TimestepSpacing.Linspace, false)] // linspace(0, 999, 1001).round() repeats
    [InlineData(SamplerKind.Ddim, 1000, TimestepSpacing.Leading, true)]
    [InlineData(SamplerKind.Euler, 1000, TimestepSpacing.Linspace, true)]
    public void Schedules_that_repeat_timesteps_are_refused(SamplerKind kind, int steps, TimestepSpacing spacing, bool accepted)
    {
        if (accepted)
        {
            var sampler = DiffusionSamplers.Create(Config, new SamplerSettings(kind, steps, spacing));
            Assert.Equal(steps, sampler.Timesteps.Distinct().Count());
            return;
        }

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => DiffusionSamplers.Create(Config, new SamplerSettings(kind, steps, spacing)));
        Assert.Equal("steps", ex.ParamName);
        Assert.Contains("trailing", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Rows_step_independently_so_batching_changes_nothing(SamplerKind kind)
    {
        // Two samples stepped interleaved (as an iteration loop would) equal each stepped alone.
        var sampler = DiffusionSamplers.Create(Config, new SamplerSettings(kind, 12, Eta: 0.7));
        float[] Run(ulong sample, Action<int>? between)
        {
            const int n = 24;
            var x = new float[n];
            new NoiseStream(9, sample).FillNormal(x);
            for (var i = 0; i < n; i++)
            {
                x[i] *= (float)sampler.InitNoiseSigma;
            }

            var stepNoise = new NoiseStream(9, sample, NoiseStreamIds.DiffusionStepNoise);
            var state = sampler.CreateState(n);
            var input = new float[n];
            var output = new float[n];
            var noise = new float[n];
            for (var s = 0; s < sampler.Timesteps.Count; s++)
            {
                sampler.ScaleModelInput(x, s, input);
                DiffusionReferenceTests.Denoiser(input, sampler.Timesteps[s], output);
                if (sampler.NeedsNoise(s))
                {
                    stepNoise.FillNormal(noise);
                }

                sampler.Step(state, output, s, x, noise, default);
                between?.Invoke(s);
            }

            return x;
        }

        var alone = Run(1, null);
        float[]? other = null;
        var interleaved = Run(1, s =>
        {
            if (s == 0)
            {
                other = Run(2, null); // a whole other request runs through the same sampler meanwhile
            }
        });
        Assert.Equal(alone, interleaved);
        Assert.NotEqual(alone, other);
    }

    [Fact]
    public void Steps_out_of_order_are_refused()
    {
        var sampler = DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.DpmSolverPP, 5));
        var state = sampler.CreateState(2);
        var x = new float[2];
        sampler.Step(state, new float[2], 0, x, default, default);
        Assert.Throws<InvalidOperationException>(() => sampler.Step(state, new float[2], 2, x, default, default));
        Assert.Throws<ArgumentException>(() => sampler.Step(state, new float[3], 1, x, default, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Step(sampler.CreateState(2), new float[2], 5, x, default, default));
    }

    [Fact]
    public void Stochastic_samplers_demand_noise_where_they_use_it()
    {
        var ddpm = DiffusionSamplers.Create(Config with { TimestepSpacing = TimestepSpacing.Leading }, new SamplerSettings(SamplerKind.Ddpm, 4));
        Assert.Equal([750.0, 500, 250, 0], ddpm.Timesteps);
        Assert.Equal([true, true, true, false], Enumerable.Range(0, 4).Select(ddpm.NeedsNoise));
        var ancestral = DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.EulerAncestral, 4));
        Assert.Equal([true, true, true, false], Enumerable.Range(0, 4).Select(ancestral.NeedsNoise));
        Assert.False(DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.Ddim, 4)).NeedsNoise(0));
        Assert.True(DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.Ddim, 4, Eta: 0.1)).NeedsNoise(0));
        Assert.Throws<ArgumentException>(() => ddpm.Step(ddpm.CreateState(3), new float[3], 0, new float[3], default, default));
    }

    [Fact]
    public void Predicted_x0_is_reported_and_a_perfect_model_lands_on_it()
    {
        // With a model that predicts the true noise of x_t = sqrt(acp) x0 + sqrt(1 - acp) eps, DDIM recovers x0 exactly.
        var sampler = DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.Ddim, 10, TimestepSpacing.Trailing));
        SamplerAssertions.PerfectNoiseModelLandsOnTheCleanSample(sampler, finalTolerance: 1e-3);
    }

    [Fact]
    public void Img2img_strength_follows_diffusers()
    {
        var sampler = DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.Euler, 10));
        Assert.Equal(0, sampler.StartStepForStrength(1.0));
        Assert.Equal(7, sampler.StartStepForStrength(0.3));
        Assert.Equal(3, sampler.StartStepForStrength(0.75)); // floor(7.5) = 7 steps run
        Assert.Equal(10, sampler.StartStepForStrength(0.0));
        Assert.Equal("strength", Assert.Throws<ArgumentOutOfRangeException>(() => sampler.StartStepForStrength(1.1)).ParamName);
        float[] init = [0.1f, 0.2f];
        var xt = new float[2];
        sampler.AddNoise(init, [5f, 5f], 10, xt);
        Assert.Equal(init, xt);
    }

    [Fact]
    public void Guidance_extrapolates_from_uncond_to_cond()
    {
        float[] uncond = [1, 2, 3];
        float[] cond = [2, 2, 1];
        var output = new float[3];
        Guidance.Apply(uncond, cond, 3f, output);
        Assert.Equal([4f, 2f, -3f], output);
        Guidance.Apply(uncond, cond, 1f, output);
        Assert.Equal(cond, output);
        Guidance.Apply(uncond, cond, 0f, uncond); // output may alias an input
        Assert.Equal([1f, 2f, 3f], uncond);
        Assert.Equal("guidance_scale", Assert.Throws<ArgumentOutOfRangeException>(() => Guidance.ValidateScale(-1)).ParamName);
    }

    [Fact]
    public void Schedules_match_diffusers_reference_numbers()
    {
        // diffusers DDPMScheduler() alphas_cumprod[999] = 4.0358e-05 (float32); the cosine schedule caps betas at 0.999.
        var linear = new NoiseSchedule(Config);
        Assert.Equal(4.0358e-05, linear.AlphasCumprod[999], 1e-8);
        Assert.Equal(0.0001, linear.Betas[0], 1e-12);
        var cosine = new NoiseSchedule(Config with { BetaSchedule = BetaSchedule.SquaredcosCapV2 });
        Assert.Equal(0.999, cosine.Betas[999], 1e-12);
        Assert.Equal(0.35, new NoiseSchedule(Config with { SetAlphaToOne = false, BetaSchedule = BetaSchedule.Linear, BetaStart = 0.65, BetaEnd = 0.9 }).FinalAlphaCumprod, 1e-12);
        Assert.Equal("num_train_timesteps", Assert.Throws<ArgumentOutOfRangeException>(() => new NoiseSchedule(Config with { NumTrainTimesteps = 1 })).ParamName);
    }

    [Fact]
    public void Stepping_allocates_nothing()
    {
        var sampler = DiffusionSamplers.Create(Config, new SamplerSettings(SamplerKind.DpmSolverPP, 50));
        var state = sampler.CreateState(64);
        var x = new float[64];
        var output = new float[64];
        sampler.Step(state, output, 0, x, default, default); // warm up
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var s = 1; s < 50; s++)
        {
            sampler.ScaleModelInput(x, s, output);
            sampler.Step(state, output, s, x, default, default);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
