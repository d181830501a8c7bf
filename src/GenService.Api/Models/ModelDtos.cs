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

    /// <summary>Why the model is not ready, for a person to act on; null when it is.</summary>
    public string? Error { get; init; }

    public DateTimeOffset? LoadedAt { get; init; }
}
