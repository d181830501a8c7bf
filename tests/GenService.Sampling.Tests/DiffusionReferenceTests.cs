using System.Text.Json;
using GenService.Sampling.Diffusion;

namespace GenService.Sampling.Tests;

/// <summary>
/// Every sampler x steps {1, 2, 5, 10, 50} x spacing x prediction type (plus DDIM eta, clip_sample, other beta
/// schedules, steps_offset, img2img; pndm: steps {1, 2, 3, 4, 5, 10, 50}, epsilon and v_prediction, with and without
/// the PRK warm-up, Stable Diffusion 1.x's scheduler) against Reference/make_reference.py, which transcribes diffusers'
/// schedulers in float64 numpy. Tolerance: max |x - ref| / (max |ref| + 1e-6) &lt;= 1e-4 on the final sample.
/// </summary>
public sealed class DiffusionReferenceTests
{
    private const double Tolerance = 1e-4;

    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        var i = 0;
        foreach (var c in Fixture.Load("diffusion.json").GetProperty("cases").EnumerateArray())
        {
            data.Add(i++, Describe(c));
        }

        return data;
    }

    /// <summary>The same stand-in network as make_reference.py's denoiser(x, t).</summary>
    internal static void Denoiser(ReadOnlySpan<float> x, double t, Span<float> output)
    {
        for (var j = 0; j < x.Length; j++)
        {
            output[j] = (float)((0.5 * Math.Tanh((0.9 * x[j]) + (0.001 * t))) + (0.1 * Math.Sin(x[j] + (0.05 * j))));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Final_sample_matches_reference(int index, string description)
    {
        var root = Fixture.Load("diffusion.json");
        var c = root.GetProperty("cases")[index];
        var latents = Fixture.Floats(root.GetProperty("latents"));
        var noiseBank = root.GetProperty("noise_bank").EnumerateArray().Select(Fixture.Floats).ToArray();
        // pndm lists some timesteps twice on purpose; its "schedule" is the N distinct ones behind them.
        var referenceTimesteps = Fixture.Doubles(c.TryGetProperty("schedule", out var schedule) ? schedule : c.GetProperty("timesteps"));
        if (referenceTimesteps.Zip(referenceTimesteps.Skip(1)).Any(p => p.Second >= p.First))
        {
            // The schedule repeats timesteps (too many steps for the spacing): refused, not sampled.
            var refused = Assert.Throws<ArgumentOutOfRangeException>(() => DiffusionSamplers.Create(ParseConfig(c.GetProperty("config")), ParseSettings(c)));
            Assert.Equal("steps", refused.ParamName);
            Assert.Contains("distinct timesteps", refused.Message, StringComparison.Ordinal);
            return;
        }

        var sampler = DiffusionSamplers.Create(ParseConfig(c.GetProperty("config")), ParseSettings(c));

        Assert.Equal(Fixture.Doubles(c.GetProperty("timesteps")), sampler.Timesteps.ToArray());
        Assert.Equal(c.GetProperty("init_noise_sigma").GetDouble(), sampler.InitNoiseSigma, 1e-9);
        Assert.Equal(sampler.Timesteps.Count, sampler.NetworkEvaluations);

        var n = latents.Length;
        var x = new float[n];
        var start = 0;
        if (c.GetProperty("strength").ValueKind == JsonValueKind.Null)
        {
            for (var i = 0; i < n; i++)
            {
                x[i] = (float)(latents[i] * sampler.InitNoiseSigma);
            }
        }
        else
        {
            start = sampler.StartStepForStrength(c.GetProperty("strength").GetDouble());
            Assert.Equal(c.GetProperty("start_step").GetInt32(), start);
            sampler.AddNoise(Fixture.Floats(root.GetProperty("init")), latents, start, x);
        }

        var state = sampler.CreateState(n);
        var input = new float[n];
        var output = new float[n];
        var x0 = new float[n];
        for (var i = start; i < sampler.Timesteps.Count; i++)
        {
            sampler.ScaleModelInput(x, i, input);
            Denoiser(input, sampler.Timesteps[i], output);
            sampler.Step(state, output, i, x, sampler.NeedsNoise(i) ? noiseBank[i] : default, x0);
            Assert.All(x0, v => Assert.True(float.IsFinite(v)));
        }

        var expected = Fixture.Doubles(c.GetProperty("expected"));
        var error = Fixture.RelativeError(x, expected);
        Assert.True(error <= Tolerance, $"{description}: relative error {error:E2} > {Tolerance:E0}");
    }

    [Fact]
    public void Fixture_covers_every_sampler_spacing_prediction_and_step_count()
    {
        var cases = Fixture.Load("diffusion.json").GetProperty("cases").EnumerateArray().ToList();
        foreach (var sampler in new[] { "ddpm", "ddim", "dpm_solver_pp", "euler", "euler_ancestral", "pndm" })
        {
            foreach (var spacing in new[] { "leading", "trailing", "linspace" })
            {
                // diffusers' PNDMScheduler has no "sample" prediction (refused: SamplerApiTests).
                foreach (var prediction in sampler == "pndm" ? ["epsilon", "v_prediction"] : new[] { "epsilon", "v_prediction", "sample" })
                {
                    foreach (var steps in sampler == "pndm" ? [1, 2, 3, 4, 5, 10, 50] : new[] { 1, 2, 5, 10, 50 })
                    {
                        Assert.Contains(cases, c => c.GetProperty("sampler").GetString() == sampler && c.GetProperty("steps").GetInt32() == steps
                            && c.GetProperty("config").GetProperty("timestep_spacing").GetString() == spacing
                            && c.GetProperty("config").GetProperty("prediction_type").GetString() == prediction);
                    }
                }
            }
        }

        // pndm: both forms (PRK from 4 steps), img2img in both, and Stable Diffusion 1.x's scheduler config.
        var pndm = cases.Where(c => c.GetProperty("sampler").GetString() == "pndm").ToList();
        foreach (var skip in new[] { true, false })
        {
            Assert.Contains(pndm, c => SkipPrk(c) == skip && c.GetProperty("steps").GetInt32() == 50);
            Assert.Contains(pndm, c => SkipPrk(c) == skip && c.GetProperty("strength").ValueKind != JsonValueKind.Null && c.GetProperty("start_step").GetInt32() == 1);
        }

        Assert.Contains(pndm, c => SkipPrk(c) && c.GetProperty("config").GetProperty("beta_schedule").GetString() == "scaled_linear"
            && c.GetProperty("config").GetProperty("steps_offset").GetInt32() == 1 && !c.GetProperty("config").GetProperty("set_alpha_to_one").GetBoolean()
            && c.GetProperty("steps").GetInt32() == 50 && c.GetProperty("strength").ValueKind == JsonValueKind.Null);
        static bool SkipPrk(JsonElement c) => c.GetProperty("config").GetProperty("skip_prk_steps").GetBoolean();
    }

    private static string Describe(JsonElement c)
    {
        var cfg = c.GetProperty("config");
        return $"{c.GetProperty("sampler").GetString()} N={c.GetProperty("steps").GetInt32()} {cfg.GetProperty("timestep_spacing").GetString()} "
            + $"{cfg.GetProperty("prediction_type").GetString()} {cfg.GetProperty("beta_schedule").GetString()} T={cfg.GetProperty("num_train_timesteps").GetInt32()} "
            + $"eta={c.GetProperty("eta").GetDouble()} clip={cfg.GetProperty("clip_sample").GetBoolean()} offset={cfg.GetProperty("steps_offset").GetInt32()} "
            + (cfg.TryGetProperty("skip_prk_steps", out var skip) ? $"skip_prk={skip.GetBoolean()} alpha1={cfg.GetProperty("set_alpha_to_one").GetBoolean()} " : "")
            + $"strength={(c.GetProperty("strength").ValueKind == JsonValueKind.Null ? "-" : c.GetProperty("strength").GetDouble().ToString())}";
    }

    internal static SchedulerConfig ParseConfig(JsonElement cfg) => new()
    {
        NumTrainTimesteps = cfg.GetProperty("num_train_timesteps").GetInt32(),
        BetaSchedule = cfg.GetProperty("beta_schedule").GetString() switch
        {
            "linear" => BetaSchedule.Linear,
            "scaled_linear" => BetaSchedule.ScaledLinear,
            _ => BetaSchedule.SquaredcosCapV2,
        },
        BetaStart = cfg.GetProperty("beta_start").GetDouble(),
        BetaEnd = cfg.GetProperty("beta_end").GetDouble(),
        PredictionType = cfg.GetProperty("prediction_type").GetString() switch
        {
            "epsilon" => PredictionType.Epsilon,
            "v_prediction" => PredictionType.VPrediction,
            _ => PredictionType.Sample,
        },
        ClipSample = cfg.GetProperty("clip_sample").GetBoolean(),
        ClipSampleRange = cfg.GetProperty("clip_sample_range").GetDouble(),
        TimestepSpacing = Enum.GetValues<TimestepSpacing>().Single(v => SamplerSettings.WireName(v) == cfg.GetProperty("timestep_spacing").GetString()),
        StepsOffset = cfg.GetProperty("steps_offset").GetInt32(),
        SetAlphaToOne = cfg.GetProperty("set_alpha_to_one").GetBoolean(),
        SkipPrkSteps = cfg.TryGetProperty("skip_prk_steps", out var skip) && skip.GetBoolean(),
    };

    private static SamplerSettings ParseSettings(JsonElement c) =>
        new(Enum.GetValues<SamplerKind>().Single(k => SamplerSettings.WireName(k) == c.GetProperty("sampler").GetString()), c.GetProperty("steps").GetInt32(), null, c.GetProperty("eta").GetDouble());
}
