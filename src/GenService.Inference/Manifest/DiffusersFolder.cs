using System.Text.Json;
using System.Text.Json.Nodes;

namespace GenService.Inference.Manifest;

/// <summary>
/// Derives the manifest of a Stable-Diffusion-class export folder as Hugging Face Optimum (<c>optimum-cli export
/// onnx</c>) and diffusers' or Olive's ONNX scripts write it, so such a folder is served as it comes
/// (docs/model-contract.md, "Export folders"):
/// <code>
///   model_index.json                   the pipeline class and its parts
///   text_encoder/model.onnx, config.json   input_ids -> last_hidden_state      (role text_encoder)
///   unet/model.onnx, config.json           sample, timestep, encoder_hidden_states -> out_sample (role denoiser)
///   vae_decoder/model.onnx, config.json    latent_sample -> sample              (role vae_decoder)
///   vae_encoder/model.onnx, config.json    sample -> latent_parameters | latent_sample (optional, role vae_encoder)
///   tokenizer/                             CLIP BPE: vocab.json + merges.txt or tokenizer.json; tokenizer_config.json
///   scheduler/scheduler_config.json        the diffusers scheduler (its _class_name is the default sampler)
/// </code>
/// Only names and sizes are read here; dtypes and shapes (int32 or int64 ids, a scalar, [1] or [batch] timestep,
/// float16) are read from each graph when it loads. A <c>model.json</c> beside <c>model_index.json</c> may set
/// description, version, batching, instances and card. Every error names the file and the field.
/// </summary>
public static class DiffusersFolder
{
    public const string IndexFile = "model_index.json";

    /// <summary>The vae config's scaling_factor when it has none (Stable Diffusion 1.x's).</summary>
    public const double DefaultScalingFactor = 0.18215;

    private static readonly string[] OverridableKeys = ["description", "version", "batching", "instances", "card"];

    /// <summary>diffusers scheduler classes and the sampler (request field <c>sampler</c>) that runs each.</summary>
    private static readonly Dictionary<string, string> SamplerByScheduler = new(StringComparer.Ordinal)
    {
        ["PNDMScheduler"] = "pndm",
        ["DDIMScheduler"] = "ddim",
        ["DDPMScheduler"] = "ddpm",
        ["DPMSolverMultistepScheduler"] = "dpm_solver_pp",
        ["EulerDiscreteScheduler"] = "euler",
        ["EulerAncestralDiscreteScheduler"] = "euler_ancestral",
    };

    /// <summary>Whether <paramref name="directory"/> is an export folder (it holds model_index.json).</summary>
    public static bool IsExportFolder(string directory) => File.Exists(Path.Combine(directory, IndexFile));

    /// <summary>Derives and validates the manifest of an export folder.</summary>
    /// <exception cref="ManifestException">A part is missing or a file breaks what the exporters write.</exception>
    public static ModelManifest Load(string directory)
    {
        string full = Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar);
        string name = Path.GetFileName(full);
        JsonObject index = ReadObject(full, IndexFile, required: true)!;
        string pipelineClass = (index["_class_name"] as JsonValue)?.TryGetValue(out string? c) == true ? c : "StableDiffusionPipeline";
        if (pipelineClass.Contains("XL", StringComparison.Ordinal) || index.ContainsKey("text_encoder_2"))
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, IndexFile)}: _class_name: '{pipelineClass}' is a Stable Diffusion XL pipeline (two text encoders, added time conditioning), which GenService does not serve; Stable Diffusion 1.x/2.x-class pipelines are served.");
        }

        foreach (string part in new[] { "text_encoder", "unet", "vae_decoder" })
        {
            RequireFile(full, $"{part}/model.onnx", $"the {part} graph of the pipeline");
        }

        string tokenizerDir = Path.Combine(full, "tokenizer");
        if (!Directory.Exists(tokenizerDir))
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, "tokenizer/")}: folder not found (the pipeline's CLIP tokenizer: vocab.json + merges.txt, or tokenizer.json).");
        }

        RequireFile(full, "scheduler/scheduler_config.json", "the pipeline's diffusers scheduler");
        bool hasEncoder = File.Exists(Path.Combine(full, "vae_encoder", "model.onnx"));

        JsonObject unet = ReadObject(full, "unet/config.json", required: false) ?? [];
        JsonObject vae = ReadObject(full, "vae_decoder/config.json", required: false) ?? [];
        JsonObject text = ReadObject(full, "text_encoder/config.json", required: false) ?? [];
        JsonObject tokenizerConfig = ReadObject(full, "tokenizer/tokenizer_config.json", required: false) ?? [];

        int latentChannels = Int(unet, full, "unet/config.json", "in_channels", Int(vae, full, "vae_decoder/config.json", "latent_channels", 4));
        (int sampleH, int sampleW) = SampleSize(unet, full);
        int[] blocks = IntArray(vae, full, "vae_decoder/config.json", "block_out_channels") ?? [128, 256, 512, 512];
        if (blocks.Length is < 1 or > 8)
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, "vae_decoder/config.json")}: block_out_channels: {blocks.Length} blocks; the VAE factor 2^(blocks - 1) needs 1..8.");
        }

        int factor = 1 << (blocks.Length - 1);
        int[] unetBlocks = IntArray(unet, full, "unet/config.json", "block_out_channels") ?? [320, 640, 1280, 1280];
        if (unetBlocks.Length is < 1 or > 8)
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, "unet/config.json")}: block_out_channels: {unetBlocks.Length} blocks; need 1..8.");
        }

        double scaling = Number(vae, full, "vae_decoder/config.json", "scaling_factor", DefaultScalingFactor);
        if (!(scaling > 0) || !double.IsFinite(scaling))
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, "vae_decoder/config.json")}: scaling_factor: must be a positive number (got {scaling}).");
        }

        int imageChannels = Int(vae, full, "vae_decoder/config.json", "out_channels", 3);
        if (imageChannels is not (1 or 3))
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, "vae_decoder/config.json")}: out_channels: {imageChannels}; an image has 1 or 3 channels.");
        }

        int hidden = Int(text, full, "text_encoder/config.json", "hidden_size", Int(unet, full, "unet/config.json", "cross_attention_dim", -1));
        int positions = Int(text, full, "text_encoder/config.json", "max_position_embeddings", int.MaxValue);
        // Tokenizers without a set length write a huge model_max_length (1e30): the text encoder's positions bound it.
        double maxLength = Number(tokenizerConfig, full, "tokenizer/tokenizer_config.json", "model_max_length", 77);
        int maxTokens = (int)Math.Min(Math.Min(maxLength, positions), 4096);
        if (maxTokens < 2)
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, "tokenizer/tokenizer_config.json")}: model_max_length: {maxLength}; a prompt needs at least the start and end tokens (2).");
        }

        JsonObject schedulerNode = ReadObject(full, "scheduler/scheduler_config.json", required: true)!;
        string schedulerClass = (schedulerNode["_class_name"] as JsonValue)?.TryGetValue(out string? sc) == true ? sc : "PNDMScheduler";
        // A scheduler GenService does not implement (LMS, Heun, ...) still serves, with ddim as its default sampler.
        string defaultSampler = SamplerByScheduler.GetValueOrDefault(schedulerClass, "ddim");
        var scheduler = ManifestLoader.ParseScheduler(schedulerNode, full, ManifestLoader.DisplayPath(full, "scheduler/scheduler_config.json"));

        var graphs = new Dictionary<string, GraphSpec>(StringComparer.Ordinal)
        {
            ["denoiser"] = new()
            {
                File = "unet/model.onnx",
                Inputs = new Dictionary<string, string> { ["sample"] = "sample", ["timestep"] = "timestep", ["encoder_hidden_states"] = "encoder_hidden_states" },
                Outputs = new Dictionary<string, string> { ["prediction"] = "out_sample" },
            },
            ["text_encoder"] = new()
            {
                File = "text_encoder/model.onnx",
                Inputs = new Dictionary<string, string> { ["input_ids"] = "input_ids" },
                Outputs = new Dictionary<string, string> { ["hidden_states"] = "last_hidden_state" },
            },
            ["vae_decoder"] = new()
            {
                File = "vae_decoder/model.onnx",
                Inputs = new Dictionary<string, string> { ["latent"] = "latent_sample" },
                Outputs = new Dictionary<string, string> { ["sample"] = "sample" },
            },
        };
        if (hasEncoder)
        {
            graphs["vae_encoder"] = new()
            {
                File = "vae_encoder/model.onnx",
                Inputs = new Dictionary<string, string> { ["sample"] = "sample" },
                Outputs = new Dictionary<string, string> { ["latent_parameters"] = "latent_parameters", ["latent_sample"] = "latent_sample" },
            };
        }

        var pipeline = new TextToImageSpec
        {
            PipelineClass = pipelineClass,
            SchedulerClass = schedulerClass,
            DefaultSampler = defaultSampler,
            LatentChannels = latentChannels,
            VaeScaleFactor = factor,
            UNetScaleFactor = 1 << (unetBlocks.Length - 1),
            ScalingFactor = scaling,
            TokenizerDirectory = tokenizerDir,
            MaxTokens = maxTokens,
            HiddenSize = hidden,
            PartBytes = graphs.ToDictionary(g => g.Key, g => PartBytes(Path.Combine(full, Path.GetDirectoryName(g.Value.File)!)), StringComparer.Ordinal),
        };
        var manifest = new ModelManifest
        {
            Name = name,
            Family = ModelFamily.Diffusion,
            Description = $"text-to-image: a {pipelineClass} export ({schedulerClass}, {sampleW * factor}x{sampleH * factor} pixels by default)",
            Output = new OutputSpec { Kind = "image", Shape = [imageChannels, sampleH * factor, sampleW * factor], Range = [-1f, 1f] },
            LatentShape = [latentChannels, sampleH, sampleW],
            Graphs = graphs,
            Scheduler = scheduler,
            TextToImage = pipeline,
            Directory = full,
        };
        manifest = ApplyOverrides(manifest, full);
        ManifestLoader.Validate(manifest, ManifestLoader.DisplayPath(full, IndexFile), name);
        return manifest;
    }

    /// <summary>The fields a model.json beside model_index.json may set; anything else is refused with a message.</summary>
    private static ModelManifest ApplyOverrides(ModelManifest manifest, string full)
    {
        JsonObject? overrides = ReadObject(full, ManifestLoader.FileName, required: false);
        if (overrides is null)
        {
            return manifest;
        }

        string display = ManifestLoader.DisplayPath(full, ManifestLoader.FileName);
        foreach ((string key, JsonNode? _) in overrides)
        {
            if (!OverridableKeys.Contains(key))
            {
                throw new ManifestException($"{display}: {key}: beside {IndexFile} a model.json may set only {string.Join(", ", OverridableKeys)}; the rest is read from the export folder.");
            }
        }

        try
        {
            return manifest with
            {
                Description = overrides["description"]?.GetValue<string>() ?? manifest.Description,
                Version = overrides["version"]?.GetValue<string>() ?? manifest.Version,
                Batching = overrides["batching"]?.Deserialize<BatchingSpec>(ManifestLoader.JsonOptions) ?? manifest.Batching,
                Instances = overrides["instances"]?.GetValue<int>() ?? manifest.Instances,
                Card = overrides["card"] is { } card ? JsonSerializer.Deserialize<JsonElement>(card.ToJsonString()) : manifest.Card,
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ManifestException($"{display}: {e.Message}", e);
        }
    }

    private static (int H, int W) SampleSize(JsonObject unet, string full)
    {
        const string file = "unet/config.json";
        JsonNode? node = unet["sample_size"];
        if (node is JsonArray pair)
        {
            int[] hw = IntArray(unet, full, file, "sample_size")!;
            return hw.Length == 2 && hw[0] > 0 && hw[1] > 0
                ? (hw[0], hw[1])
                : throw new ManifestException($"{ManifestLoader.DisplayPath(full, file)}: sample_size: [{string.Join(",", hw)}]; need a positive size or [height, width].");
        }

        int size = Int(unet, full, file, "sample_size", 64);
        return size > 0 ? (size, size) : throw new ManifestException($"{ManifestLoader.DisplayPath(full, file)}: sample_size: {size}; must be positive.");
    }

    /// <summary>Bytes of a part's folder: the graph and its external data.</summary>
    private static long PartBytes(string folder)
        => Directory.Exists(folder) ? new DirectoryInfo(folder).EnumerateFiles().Where(f => f.Name != "config.json").Sum(f => f.Length) : 0;

    private static void RequireFile(string full, string relative, string what)
    {
        if (!File.Exists(Path.Combine(full, relative)))
        {
            throw new ManifestException($"{ManifestLoader.DisplayPath(full, relative)}: file not found ({what}; an export folder with {IndexFile} needs text_encoder/, unet/, vae_decoder/, tokenizer/ and scheduler/).");
        }
    }

    private static JsonObject? ReadObject(string full, string relative, bool required)
    {
        string path = Path.Combine(full, relative);
        string display = ManifestLoader.DisplayPath(full, relative);
        if (!File.Exists(path))
        {
            return required ? throw new ManifestException($"{display}: file not found.") : null;
        }

        try
        {
            return JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new ManifestException($"{display}: the top level must be a JSON object.");
        }
        catch (JsonException e)
        {
            throw new ManifestException($"{display}: not valid JSON: {e.Message}", e);
        }
    }

    private static int Int(JsonObject obj, string full, string file, string key, int fallback)
    {
        double value = Number(obj, full, file, key, fallback);
        return value == Math.Floor(value) && value is >= int.MinValue and <= int.MaxValue
            ? (int)value
            : throw new ManifestException($"{ManifestLoader.DisplayPath(full, file)}: {key}: {value} must be a whole number.");
    }

    private static double Number(JsonObject obj, string full, string file, string key, double fallback)
    {
        JsonNode? node = obj[key];
        if (node is null)
        {
            return fallback;
        }

        return node is JsonValue v && v.TryGetValue(out double d)
            ? d
            : throw new ManifestException($"{ManifestLoader.DisplayPath(full, file)}: {key}: must be a number (got {node.ToJsonString()}).");
    }

    private static int[]? IntArray(JsonObject obj, string full, string file, string key)
    {
        if (obj[key] is not { } node)
        {
            return null;
        }

        if (node is JsonArray array && array.All(e => e is JsonValue v && v.TryGetValue(out int _)))
        {
            return [.. array.Select(e => e!.GetValue<int>())];
        }

        throw new ManifestException($"{ManifestLoader.DisplayPath(full, file)}: {key}: must be a list of whole numbers (got {node.ToJsonString()}).");
    }
}
