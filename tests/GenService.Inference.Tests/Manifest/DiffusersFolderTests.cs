using GenService.Inference.Manifest;

namespace GenService.Inference.Tests.Manifest;

/// <summary>
/// The manifest derived from a text-to-image export folder (the tiny Optimum-layout folders of
/// tests/GenService.Generation.Tests/TestModels/txt2img, copied to a temp folder before any edit).
/// </summary>
public sealed class DiffusersFolderTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "genservice-tests", Guid.NewGuid().ToString("N"));

    private static string Exports
    {
        get
        {
            for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "GenService.sln")))
                {
                    return Path.Combine(dir.FullName, "tests", "GenService.Generation.Tests", "TestModels", "txt2img");
                }
            }

            throw new InvalidOperationException("GenService.sln not found.");
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private string CopyOf(string variant, string name = "sd")
    {
        string to = Path.Combine(_root, name);
        Copy(Path.Combine(Exports, variant), to);
        return to;

        static void Copy(string from, string to)
        {
            Directory.CreateDirectory(to);
            foreach (string f in Directory.GetFiles(from))
            {
                File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
            }

            foreach (string d in Directory.GetDirectories(from))
            {
                Copy(d, Path.Combine(to, Path.GetFileName(d)));
            }
        }
    }

    [Fact]
    public void The_manifest_is_derived_from_model_index_and_the_config_files()
    {
        string dir = CopyOf("base");
        Assert.True(ManifestLoader.IsModelFolder(dir));
        ModelManifest m = ManifestLoader.LoadFolder(dir);

        Assert.Equal("sd", m.Name);
        Assert.Equal(ModelFamily.Diffusion, m.Family);
        Assert.Equal(["denoiser", "text_encoder", "vae_decoder", "vae_encoder"], m.Graphs.Keys.Order());
        Assert.Equal("unet/model.onnx", m.Graphs["denoiser"].File);
        Assert.Equal("out_sample", m.Graphs["denoiser"].Outputs["prediction"]);
        // unet sample_size 4 latent cells x VAE factor 2 (two vae blocks) = 8 pixels; 4 latent channels.
        Assert.Equal([3, 8, 8], m.Output.Shape);
        Assert.Equal([4, 4, 4], m.LatentShape!);
        TextToImageSpec p = m.TextToImage!;
        Assert.Equal("PNDMScheduler", p.SchedulerClass);
        Assert.Equal("pndm", p.DefaultSampler);
        Assert.Equal(2, p.VaeScaleFactor);
        Assert.Equal(2, p.UNetScaleFactor);
        Assert.Equal(0.5, p.ScalingFactor);
        Assert.Equal(8, p.MaxTokens);
        Assert.Equal(16, p.HiddenSize);
        Assert.True(p.PartBytes["denoiser"] > 0);
        Assert.True(m.Scheduler!.SkipPrkSteps);
        Assert.Equal(Sampling.Diffusion.BetaSchedule.ScaledLinear, m.Scheduler.BetaSchedule);
    }

    [Fact]
    public void Without_a_scaling_factor_the_vae_decodes_with_stable_diffusions_0_18215()
        => Assert.Equal(DiffusersFolder.DefaultScalingFactor, ManifestLoader.LoadFolder(CopyOf("timestep-batch")).TextToImage!.ScalingFactor);

    [Fact]
    public void A_model_json_beside_may_override_a_few_fields_and_names_any_other_it_refuses()
    {
        string dir = CopyOf("base");
        File.WriteAllText(Path.Combine(dir, "model.json"), """{"description": "tiny", "batching": {"max_batch_size": 8}, "instances": 2}""");
        ModelManifest m = ManifestLoader.LoadFolder(dir);
        Assert.Equal("tiny", m.Description);
        Assert.Equal(8, m.Batching.MaxBatchSize);
        Assert.Equal(2, m.Instances);
        Assert.NotNull(m.TextToImage);

        File.WriteAllText(Path.Combine(dir, "model.json"), """{"family": "gan"}""");
        var e = Assert.Throws<ManifestException>(() => ManifestLoader.LoadFolder(dir));
        Assert.Contains("sd/model.json: family:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stable_diffusion_xl_is_refused_by_name()
    {
        string dir = CopyOf("base");
        File.WriteAllText(Path.Combine(dir, "model_index.json"), """{"_class_name": "StableDiffusionXLPipeline", "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]}""");
        var e = Assert.Throws<ManifestException>(() => ManifestLoader.LoadFolder(dir));
        Assert.Contains("model_index.json: _class_name", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tokenizer", "sd/tokenizer/")]
    [InlineData("scheduler", "sd/scheduler/scheduler_config.json")]
    [InlineData("text_encoder", "sd/text_encoder/model.onnx")]
    public void A_missing_part_is_named(string part, string named)
    {
        string dir = CopyOf("base");
        Directory.Delete(Path.Combine(dir, part), recursive: true);
        var e = Assert.Throws<ManifestException>(() => ManifestLoader.LoadFolder(dir));
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_config_value_of_the_wrong_type_names_the_file_and_key()
    {
        string dir = CopyOf("base");
        string path = Path.Combine(dir, "vae_decoder", "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"scaling_factor\": 0.5", "\"scaling_factor\": \"half\"", StringComparison.Ordinal));
        var e = Assert.Throws<ManifestException>(() => ManifestLoader.LoadFolder(dir));
        Assert.Contains("sd/vae_decoder/config.json: scaling_factor", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hand_written_model_json_cannot_claim_pipeline_roles()
    {
        string json = """
            {"name": "x", "family": "diffusion", "output": {"kind": "image", "shape": [1, 8, 8], "range": [-1, 1]},
             "graphs": {"denoiser": {"file": "d.onnx", "inputs": {"sample": "s", "timestep": "t"}, "outputs": {"prediction": "p"}},
                        "text_encoder": {"file": "t.onnx", "inputs": {"input_ids": "i"}, "outputs": {"hidden_states": "h"}}}}
            """;
        var e = Assert.Throws<ManifestException>(() => ManifestLoader.Parse(json, Path.Combine(_root, "x"), "models/x/model.json"));
        Assert.Contains("graphs.text_encoder", e.Message, StringComparison.Ordinal);
        Assert.Contains("model_index.json", e.Message, StringComparison.Ordinal);
    }
}
