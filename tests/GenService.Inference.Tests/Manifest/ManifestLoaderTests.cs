using GenService.Inference.Manifest;
using GenService.Sampling.Diffusion;

namespace GenService.Inference.Tests.Manifest;

public sealed class ManifestLoaderTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "genservice-manifests", Guid.NewGuid().ToString("N"), "models");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path.GetDirectoryName(_root)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private const string Gan = """
        {
          "name": "g1", "family": "gan", "version": "3", "description": "d",
          "output": { "kind": "image", "shape": [1, 8, 8], "range": [-1, 1] },
          "conditioning": { "num_classes": 2, "labels": ["a", "b"], "null_class": 2 },
          "latent_shape": [16],
          "graphs": { "generator": { "file": "g.onnx", "inputs": { "latent": "z", "class_label": "y" }, "outputs": { "sample": "x" } } },
          "batching": { "max_batch_size": 32, "max_queue_delay_ms": 1.5, "max_queue_size": 100 },
          "instances": 2,
          "card": { "licence": "MIT" }
        }
        """;

    private ModelManifest Load(string json, string folder = "g1", params (string File, string Text)[] extra)
    {
        string dir = Path.Combine(_root, folder);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "model.json"), json);
        foreach ((string file, string text) in extra)
        {
            File.WriteAllText(Path.Combine(dir, file), text);
        }

        return ManifestLoader.Load(dir);
    }

    private string Fails(string json, string folder = "g1")
    {
        ManifestException ex = Assert.Throws<ManifestException>(() => Load(json, folder));
        Assert.StartsWith($"models/{folder}/model.json: ", ex.Message, StringComparison.Ordinal);
        return ex.Message;
    }

    [Fact]
    public void A_valid_manifest_parses_every_field()
    {
        ModelManifest m = Load(Gan);
        Assert.Equal("g1", m.Name);
        Assert.Equal(ModelFamily.Gan, m.Family);
        Assert.Equal("3", m.Version);
        Assert.Equal([1, 8, 8], m.Output.Shape);
        Assert.Equal([-1f, 1f], m.Output.Range!);
        Assert.Equal(2, m.Conditioning!.NumClasses);
        Assert.Equal(2, m.Conditioning.NullClass);
        Assert.Equal([16], m.LatentShape!);
        Assert.Equal("z", m.Graphs["generator"].Inputs["latent"]);
        Assert.Equal("x", m.Graphs["generator"].Outputs["sample"]);
        Assert.Equal(32, m.Batching.MaxBatchSize);
        Assert.Equal(1.5, m.Batching.MaxQueueDelayMs);
        Assert.Equal(2, m.Instances);
        Assert.Equal("MIT", m.Card!.Value.GetProperty("licence").GetString());
        Assert.Equal(Path.Combine(_root, "g1"), m.Directory);
    }

    [Fact]
    public void Batching_and_instances_default_when_absent()
    {
        ModelManifest m = Load(Gan.Replace("\"batching\": { \"max_batch_size\": 32, \"max_queue_delay_ms\": 1.5, \"max_queue_size\": 100 },", "", StringComparison.Ordinal)
            .Replace("\"instances\": 2,", "", StringComparison.Ordinal));
        Assert.Equal(64, m.Batching.MaxBatchSize);
        Assert.Equal(2, m.Batching.MaxQueueDelayMs);
        Assert.Equal(1024, m.Batching.MaxQueueSize);
        Assert.Equal(1, m.Instances);
    }

    private const string Diffusion = """
        {
          "name": "d1", "family": "diffusion",
          "output": { "kind": "image", "shape": [3, 4, 4], "range": [-1, 1] },
          "graphs": { "denoiser": { "file": "u.onnx", "inputs": { "sample": "x", "timestep": "t" }, "outputs": { "prediction": "eps" } } },
          "scheduler": SCHED
        }
        """;

    [Fact]
    public void A_named_diffusers_scheduler_file_is_resolved_ignoring_unknown_keys()
    {
        const string config = """
            { "_class_name": "DDIMScheduler", "_diffusers_version": "0.30.0", "num_train_timesteps": 500,
              "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.00085, "beta_end": 0.012,
              "prediction_type": "v_prediction", "clip_sample": true, "clip_sample_range": 2.5,
              "timestep_spacing": "trailing", "steps_offset": 1, "set_alpha_to_one": false,
              "trained_betas": null, "thresholding": false, "variance_type": "fixed_small" }
            """;
        ModelManifest m = Load(Diffusion.Replace("SCHED", "\"scheduler_config.json\"", StringComparison.Ordinal), "d1", ("scheduler_config.json", config));
        SchedulerConfig s = m.Scheduler!;
        Assert.Equal(500, s.NumTrainTimesteps);
        Assert.Equal(BetaSchedule.SquaredcosCapV2, s.BetaSchedule);
        Assert.Equal(0.00085, s.BetaStart);
        Assert.Equal(0.012, s.BetaEnd);
        Assert.Equal(PredictionType.VPrediction, s.PredictionType);
        Assert.True(s.ClipSample);
        Assert.Equal(2.5, s.ClipSampleRange);
        Assert.Equal(TimestepSpacing.Trailing, s.TimestepSpacing);
        Assert.Equal(1, s.StepsOffset);
        Assert.False(s.SetAlphaToOne);
        Assert.False(s.SkipPrkSteps);
    }

    [Fact]
    public void Stable_diffusion_1_pndm_scheduler_file_sets_skip_prk_steps()
    {
        // CompVis/stable-diffusion-v1-4 scheduler/scheduler_config.json; skip_prk_steps is read by the snake_case naming.
        const string config = """
            { "_class_name": "PNDMScheduler", "_diffusers_version": "0.7.0.dev0", "beta_end": 0.012,
              "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
              "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false }
            """;
        SchedulerConfig s = Load(Diffusion.Replace("SCHED", "\"scheduler_config.json\"", StringComparison.Ordinal), "d1", ("scheduler_config.json", config)).Scheduler!;
        Assert.True(s.SkipPrkSteps);
        Assert.Equal(BetaSchedule.ScaledLinear, s.BetaSchedule);
        Assert.Equal(1, s.StepsOffset);
        Assert.False(s.SetAlphaToOne);
    }

    [Theory]
    [InlineData("linear", "epsilon", "leading", BetaSchedule.Linear, PredictionType.Epsilon, TimestepSpacing.Leading)]
    [InlineData("scaled_linear", "sample", "linspace", BetaSchedule.ScaledLinear, PredictionType.Sample, TimestepSpacing.Linspace)]
    public void An_inline_scheduler_object_parses_the_diffusers_enum_strings(string beta, string prediction, string spacing,
        BetaSchedule eb, PredictionType ep, TimestepSpacing es)
    {
        string sched = $$"""{ "beta_schedule": "{{beta}}", "prediction_type": "{{prediction}}", "timestep_spacing": "{{spacing}}" }""";
        SchedulerConfig s = Load(Diffusion.Replace("SCHED", sched, StringComparison.Ordinal), "d1").Scheduler!;
        Assert.Equal(eb, s.BetaSchedule);
        Assert.Equal(ep, s.PredictionType);
        Assert.Equal(es, s.TimestepSpacing);
        Assert.Equal(1000, s.NumTrainTimesteps);
        Assert.True(s.SetAlphaToOne);
    }

    [Fact]
    public void A_bad_scheduler_enum_names_the_field()
    {
        string msg = Fails(Diffusion.Replace("SCHED", """{ "beta_schedule": "cosine" }""", StringComparison.Ordinal), "d1");
        Assert.Contains("scheduler.beta_schedule", msg, StringComparison.Ordinal);
        Assert.Contains("squaredcos_cap_v2", msg, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_scheduler_file_is_reported()
    {
        string msg = Fails(Diffusion.Replace("SCHED", "\"nope.json\"", StringComparison.Ordinal), "d1");
        Assert.Contains("scheduler: file 'nope.json' not found", msg, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"name\": \"g1\"", "\"name\": \"G1\"", "name: 'G1' must match")]
    [InlineData("\"family\": \"gan\"", "\"family\": \"gann\"", "family: 'gann' is not a family; allowed: gan, vae, flow, diffusion, ar.")]
    [InlineData("\"kind\": \"image\"", "\"kind\": \"picture\"", "output.kind: 'picture' is not allowed; allowed: image, text, tensor.")]
    [InlineData("\"shape\": [1, 8, 8]", "\"shape\": [2, 8, 8]", "output.shape: an image is CHW with C = 1 or 3")]
    [InlineData("\"shape\": [1, 8, 8]", "\"shape\": [1, 0, 8]", "output.shape: [1,0,8] must be a non-empty list of positive sizes.")]
    [InlineData("\"range\": [-1, 1]", "\"range\": [1, 1]", "output.range: an image needs [black, white]")]
    [InlineData("\"latent_shape\": [16],", "", "latent_shape: required for a gan model")]
    [InlineData("\"generator\":", "\"decoder\":", "graphs: a gan model needs the role 'generator'.")]
    [InlineData("\"latent\": \"z\"", "\"foo\": \"z\"", "graphs.generator.inputs: unknown canonical name 'foo' for role generator; allowed: latent, class_label")]
    [InlineData("\"sample\": \"x\"", "\"image\": \"x\"", "graphs.generator.outputs: unknown canonical name 'image' for role generator; allowed: sample")]
    [InlineData("\"max_batch_size\": 32", "\"max_batch_size\": 0", "batching.max_batch_size: must be >= 1 (got 0).")]
    [InlineData("\"max_queue_size\": 100", "\"max_queue_size\": -1", "batching.max_queue_size: must be >= 1 (got -1).")]
    [InlineData("\"instances\": 2", "\"instances\": 0", "instances: must be >= 1 (got 0).")]
    [InlineData("\"labels\": [\"a\", \"b\"]", "\"labels\": [\"a\"]", "conditioning.labels: has 1 labels but num_classes is 2.")]
    [InlineData("\"instances\": 2", "\"instances\": \"two\"", "instances: ")]
    [InlineData("\"file\": \"g.onnx\"", "\"file\": \"../g.onnx\"", "graphs.generator.file: '../g.onnx' must be a file name inside the model folder.")]
    public void Contract_violations_name_the_file_and_the_field(string find, string replace, string expected)
    {
        string json = Gan.Replace(find, replace, StringComparison.Ordinal);
        Assert.NotEqual(Gan, json);
        string msg = Fails(json);
        Assert.Contains(expected, msg, StringComparison.Ordinal);
    }

    [Fact]
    public void The_name_must_equal_the_folder()
    {
        string msg = Fails(Gan, "other");
        Assert.Contains("name: 'g1' must equal the folder name 'other'.", msg, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_json_is_reported_with_the_file()
    {
        string msg = Fails("{ \"name\": \"g1\", ");
        Assert.Contains("not valid JSON", msg, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_model_json_is_reported()
    {
        string dir = Path.Combine(_root, "empty");
        Directory.CreateDirectory(dir);
        ManifestException ex = Assert.Throws<ManifestException>(() => ManifestLoader.Load(dir));
        Assert.Equal("models/empty/model.json: file not found.", ex.Message);
    }

    private const string Ar = """
        {
          "name": "a1", "family": "ar",
          "output": { "kind": "image", "shape": [1, 4, 4], "range": [0, 1] },
          "graphs": { "decoder": { "file": "d.onnx",
            "inputs": { "input_ids": "ids", "attention_mask": "mask", "past_key_values.0.key": "pk", "past_key_values.0.value": "pv" },
            "outputs": { "logits": "l", "present.0.key": "k", "present.0.value": "v" } } },
          "tokens": { "vocab_size": 20, "bos_token_id": 17, "max_length": 17, "image_levels": 17 }
        }
        """;

    [Fact]
    public void An_ar_manifest_with_kv_cache_names_parses()
    {
        ModelManifest m = Load(Ar, "a1");
        Assert.Equal(20, m.Tokens!.VocabSize);
        Assert.Equal(17, m.Tokens.ImageLevels);
        Assert.Equal("pk", m.Graphs["decoder"].Inputs["past_key_values.0.key"]);
    }

    [Theory]
    [InlineData("\"tokens\": { \"vocab_size\": 20, \"bos_token_id\": 17, \"max_length\": 17, \"image_levels\": 17 }", "\"card\": {}", "tokens: required for an ar model")]
    [InlineData("\"image_levels\": 17", "\"image_levels\": 1", "tokens.image_levels: an image ar model needs image_levels >= 2.")]
    [InlineData("\"bos_token_id\": 17", "\"bos_token_id\": 20", "tokens.bos_token_id: 20 must lie in 0..19.")]
    [InlineData("\"past_key_values.0.key\": \"pk\"", "\"past_key_values.x.key\": \"pk\"", "unknown canonical name 'past_key_values.x.key' for role decoder; allowed: input_ids, attention_mask, position_ids, past_key_values.N.key/value")]
    [InlineData("\"input_ids\": \"ids\", ", "", "graphs.decoder.inputs: the required canonical name 'input_ids' is not mapped for role decoder.")]
    public void Ar_contract_violations_name_the_field(string find, string replace, string expected)
    {
        string json = Ar.Replace(find, replace, StringComparison.Ordinal);
        Assert.NotEqual(Ar, json);
        string msg = Fails(json, "a1");
        Assert.Contains(expected, msg, StringComparison.Ordinal);
    }

    [Fact]
    public void An_image_output_may_not_leave_out_its_shape()
    {
        string msg = Fails(Gan.Replace("\"shape\": [1, 8, 8], ", "", StringComparison.Ordinal));
        Assert.Contains("output.shape: [] must be a non-empty list of positive sizes.", msg, StringComparison.Ordinal);
    }

    [Fact]
    public void A_text_output_may_leave_out_its_shape()
    {
        string json = Ar.Replace("\"kind\": \"image\", \"shape\": [1, 4, 4], \"range\": [0, 1]", "\"kind\": \"text\"", StringComparison.Ordinal)
            .Replace(", \"image_levels\": 17", "", StringComparison.Ordinal);
        Assert.NotEqual(Ar, json);
        ModelManifest m = Load(json, "a1");
        Assert.Equal("text", m.Output.Kind);
        Assert.Empty(m.Output.Shape);
    }

    [Fact]
    public void The_committed_test_models_all_parse()
    {
        foreach (string dir in Directory.EnumerateDirectories(TestModelFolder.Source))
        {
            ModelManifest m = ManifestLoader.Load(dir);
            Assert.Equal(Path.GetFileName(dir), m.Name);
        }

        Assert.Equal(TimestepSpacing.Trailing, ManifestLoader.Load(Path.Combine(TestModelFolder.Source, "tiny-diffusion")).Scheduler!.TimestepSpacing);
    }
}
