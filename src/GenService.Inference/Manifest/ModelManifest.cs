using System.Text.Json;
using System.Text.Json.Serialization;
using GenService.Sampling.Diffusion;

namespace GenService.Inference.Manifest;

/// <summary>Model families (docs/model-contract.md). The lower-case name is the route segment.</summary>
public enum ModelFamily
{
    Gan,
    Vae,
    Flow,
    Diffusion,
    Ar,
}

/// <summary>
/// A parsed, validated <c>model.json</c> (docs/model-contract.md). JSON names are snake_case.
/// Parsing and validation live in ManifestLoader; this type is plain data.
/// </summary>
public sealed record ModelManifest
{
    public required string Name { get; init; }

    public required ModelFamily Family { get; init; }

    public string Version { get; init; } = "1";

    public string? Description { get; init; }

    public required OutputSpec Output { get; init; }

    public ConditioningSpec? Conditioning { get; init; }

    /// <summary>gan, vae: per-sample latent shape; flow: equals output.shape; diffusion: output.shape.</summary>
    public int[]? LatentShape { get; init; }

    /// <summary>Role (generator, decoder, encoder, inverse, forward, denoiser) -> graph.</summary>
    public required IReadOnlyDictionary<string, GraphSpec> Graphs { get; init; }

    /// <summary>Diffusion only: resolved scheduler (inline object or a named diffusers file).</summary>
    public SchedulerConfig? Scheduler { get; init; }

    /// <summary>AR only.</summary>
    public TokensSpec? Tokens { get; init; }

    /// <summary>
    /// Diffusion only: a latent text-to-image pipeline (an export folder with <c>model_index.json</c>), derived by
    /// <see cref="DiffusersFolder"/>. Null for a pixel-space denoiser described by model.json.
    /// </summary>
    [JsonIgnore]
    public TextToImageSpec? TextToImage { get; init; }

    /// <summary>Flow only, optional: discrete bits/dim.</summary>
    public LikelihoodSpec? Likelihood { get; init; }

    public BatchingSpec Batching { get; init; } = new();

    /// <summary>Sessions in the pool for each graph.</summary>
    public int Instances { get; init; } = 1;

    /// <summary>Free-form model card (training data, metrics, licence), passed through as JSON.</summary>
    public JsonElement? Card { get; init; }

    /// <summary>The folder the manifest was read from (absolute).</summary>
    [JsonIgnore]
    public string Directory { get; init; } = "";

    /// <summary>Elements per sample: product of output.shape.</summary>
    [JsonIgnore]
    public int SampleElements => Output.Shape.Aggregate(1, (a, b) => a * b);
}

public sealed record OutputSpec
{
    /// <summary>image | text | tensor.</summary>
    public required string Kind { get; init; }

    /// <summary>Per-sample shape; CHW for images (C = 1 or 3). Text models may leave it out (their length is tokens.max_length).</summary>
    public int[] Shape { get; init; } = [];

    /// <summary>Image value range: [black, white].</summary>
    public float[]? Range { get; init; }
}

public sealed record ConditioningSpec
{
    public required int NumClasses { get; init; }

    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>The "no class" label; enables classifier-free guidance.</summary>
    public int? NullClass { get; init; }
}

public sealed record GraphSpec
{
    public required string File { get; init; }

    /// <summary>Canonical name -> ONNX input name.</summary>
    public IReadOnlyDictionary<string, string> Inputs { get; init; } = new Dictionary<string, string>();

    /// <summary>Canonical name -> ONNX output name.</summary>
    public IReadOnlyDictionary<string, string> Outputs { get; init; } = new Dictionary<string, string>();
}

public sealed record TokensSpec
{
    public required int VocabSize { get; init; }

    public int? BosTokenId { get; init; }

    public int? EosTokenId { get; init; }

    public int? ClassStartTokenOffset { get; init; }

    /// <summary>Longest sequence the decoder accepts, start token included.</summary>
    public required int MaxLength { get; init; }

    public IReadOnlyList<string>? Vocabulary { get; init; }

    /// <summary>A Hugging Face tokenizer file (relative to the model folder) instead of a vocabulary.</summary>
    public string? Tokenizer { get; init; }

    /// <summary>Image AR: token k is pixel level k of image_levels, spread over output.range.</summary>
    public int? ImageLevels { get; init; }
}

/// <summary>
/// What a Stable-Diffusion-class export folder says about its pipeline (docs/model-contract.md, "Export folders"):
/// read from model_index.json and the config.json files, never from a hand-written manifest.
/// <see cref="ModelManifest.LatentShape"/> is the default latent [C, h, w] and <see cref="ModelManifest.Output"/>
/// the default image [3, H, W], with H = h * <see cref="VaeScaleFactor"/>.
/// </summary>
public sealed record TextToImageSpec
{
    /// <summary>model_index.json's <c>_class_name</c> (e.g. StableDiffusionPipeline).</summary>
    public required string PipelineClass { get; init; }

    /// <summary>The scheduler's <c>_class_name</c> in scheduler/scheduler_config.json (e.g. PNDMScheduler).</summary>
    public required string SchedulerClass { get; init; }

    /// <summary>The wire name of the sampler that class names (pndm, ddim, ...): the request default.</summary>
    public required string DefaultSampler { get; init; }

    /// <summary>Latent channels (the UNet's in_channels).</summary>
    public required int LatentChannels { get; init; }

    /// <summary>Pixels per latent cell: 2^(len(vae block_out_channels) - 1).</summary>
    public required int VaeScaleFactor { get; init; }

    /// <summary>
    /// The UNet's downsampling, 2^(len(unet block_out_channels) - 1): latent sizes are multiples of it, so image sizes
    /// are multiples of VaeScaleFactor x UNetScaleFactor.
    /// </summary>
    public required int UNetScaleFactor { get; init; }

    /// <summary>Latents are decoded as latents / ScalingFactor (vae config <c>scaling_factor</c>, 0.18215 when absent).</summary>
    public required double ScalingFactor { get; init; }

    /// <summary>The tokenizer folder (absolute).</summary>
    public required string TokenizerDirectory { get; init; }

    /// <summary>Token sequence length the text encoder sees (tokenizer_config.json's model_max_length, capped by the text encoder's max_position_embeddings).</summary>
    public required int MaxTokens { get; init; }

    /// <summary>Width of the text encoder's hidden states (its hidden_size; the UNet's cross_attention_dim).</summary>
    public required int HiddenSize { get; init; }

    /// <summary>Sizes of each part's ONNX files in bytes (external data included), by role.</summary>
    public required IReadOnlyDictionary<string, long> PartBytes { get; init; }
}

public sealed record LikelihoodSpec
{
    public double BinWidth { get; init; }
}

public sealed record BatchingSpec
{
    public int MaxBatchSize { get; init; } = 64;

    public double MaxQueueDelayMs { get; init; } = 2;

    public int MaxQueueSize { get; init; } = 1024;
}
