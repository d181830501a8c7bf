using System.Text.Json;
using GenService.Inference.Manifest;
using GenService.Sampling.Diffusion;

namespace GenService.Api.Models;

/// <summary>GET /v1/models.</summary>
internal sealed record ModelListResponse(IReadOnlyList<ModelSummary> Models);

/// <summary>One model as GET /v1/models lists it (docs/http-api.md, "Models").</summary>
internal record ModelSummary
{
    public required string Name { get; init; }

    /// <summary>gan, vae, flow, diffusion or ar; null only when the manifest itself could not be read.</summary>
    public string? Family { get; init; }

    public string? Version { get; init; }

    /// <summary>True when requests to the model are served now.</summary>
    public required bool Ready { get; init; }

    /// <summary>loading, ready, failed or unloaded.</summary>
    public required string State { get; init; }

    public string? Description { get; init; }

    public OutputSpec? Output { get; init; }

    public ConditioningSpec? Conditioning { get; init; }

    public int[]? LatentShape { get; init; }

    /// <summary>The routes that apply to this model, e.g. "POST /v1/vae/digits-vae/encode" (only where an encoder exists).</summary>
    public required IReadOnlyList<string> Endpoints { get; init; }

    /// <summary>The KServe v2 names of its graphs ("&lt;model&gt;.&lt;role&gt;").</summary>
    public required IReadOnlyList<string> V2Models { get; init; }
}

/// <summary>GET /v1/models/{name}: the summary plus card, scheduler/tokens, batching and the load error.</summary>
internal sealed record ModelDetail : ModelSummary
{
    public JsonElement? Card { get; init; }

    public SchedulerConfig? Scheduler { get; init; }

    public TokensSpec? Tokens { get; init; }

    public LikelihoodSpec? Likelihood { get; init; }

    public BatchingSpec? Batching { get; init; }

    public int? Instances { get; init; }

    /// <summary>A text-to-image pipeline: what was derived from its export folder (null for other models).</summary>
    public TextToImageDetail? Pipeline { get; init; }

    /// <summary>Why the model is not ready, for a person to act on; null when it is.</summary>
    public string? Error { get; init; }

    public DateTimeOffset? LoadedAt { get; init; }
}

/// <summary>What GenService derived from a text-to-image export folder (model_index.json and the parts' config.json files).</summary>
internal sealed record TextToImageDetail
{
    /// <summary>model_index.json's _class_name.</summary>
    public required string PipelineClass { get; init; }

    /// <summary>scheduler_config.json's _class_name; <see cref="DefaultSampler"/> is the sampler that runs it.</summary>
    public required string SchedulerClass { get; init; }

    public required string DefaultSampler { get; init; }

    public required double DefaultGuidanceScale { get; init; }

    /// <summary>Default image [height, width] in pixels: the UNet's sample_size x the VAE factor.</summary>
    public required int[] DefaultSize { get; init; }

    /// <summary>height and width must be multiples of this: VAE factor x the UNet's downsampling.</summary>
    public required int SizeStep { get; init; }

    public required int VaeScaleFactor { get; init; }

    /// <summary>Latents are decoded as latents / scaling_factor.</summary>
    public required double ScalingFactor { get; init; }

    /// <summary>Prompt length in tokens (padded or truncated to it).</summary>
    public required int MaxTokens { get; init; }

    /// <summary>Whether img2img (`init`) is available: the folder has a vae_encoder.</summary>
    public required bool ImageToImage { get; init; }

    /// <summary>Each part's graph file and its size on disk (external data included).</summary>
    public required IReadOnlyDictionary<string, PipelinePart> Parts { get; init; }
}

/// <summary>One graph of a pipeline: its file in the folder and bytes on disk.</summary>
internal sealed record PipelinePart(string File, long Bytes);
