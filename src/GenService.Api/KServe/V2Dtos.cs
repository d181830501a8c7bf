using System.Text.Json;

namespace GenService.Api.KServe;

// The KServe v2 / Open Inference Protocol REST shapes (JSON names are snake_case, as the protocol's are).
// The infer request and response are parsed and written by hand (V2InferRequestReader, V2InferResponseWriter);
// their records here describe them for Swagger and for clients such as the benchmark.

/// <summary>GET /v2.</summary>
internal sealed record V2ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

/// <summary>GET /v2/health/live.</summary>
internal sealed record V2Live(bool Live);

/// <summary>
/// GET /v2/health/ready: ready; when not, which models the startup load pass is still loading, or why
/// (<c>"reason": "the server is shutting down"</c>).
/// </summary>
internal sealed record V2Ready(bool Ready, IReadOnlyList<string>? Loading = null, string? Reason = null);

/// <summary>GET /v2/models/{name}/ready.</summary>
internal sealed record V2ModelReady(string Name, bool Ready);

/// <summary>One input or output in model metadata: shape has -1 where the dim is dynamic (dim 0, the batch).</summary>
internal sealed record V2TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>GET /v2/models/{name}.</summary>
internal sealed record V2ModelMetadata(
    string Name,
    IReadOnlyList<string> Versions,
    string Platform,
    IReadOnlyList<V2TensorMetadata> Inputs,
    IReadOnlyList<V2TensorMetadata> Outputs);

/// <summary>One tensor of an infer request or response. <c>data</c> is flat (C order) or nested to the shape.</summary>
internal sealed record V2Tensor(string Name, IReadOnlyList<long> Shape, string Datatype, JsonElement Data, JsonElement? Parameters = null);

/// <summary>An output asked for by name; without an <c>outputs</c> list every output is returned.</summary>
internal sealed record V2RequestedOutput(string Name, JsonElement? Parameters = null);

/// <summary>POST /v2/models/{name}/infer body. <c>parameters</c> are accepted and ignored.</summary>
internal sealed record V2InferRequest(
    IReadOnlyList<V2Tensor> Inputs,
    string? Id = null,
    IReadOnlyList<V2RequestedOutput>? Outputs = null,
    JsonElement? Parameters = null);

/// <summary>Server-side timings of one infer call, in <c>parameters</c> of the response.</summary>
internal sealed record V2InferTimings(double QueueMs, double ComputeMs, int BatchSize);

/// <summary>POST /v2/models/{name}/infer response.</summary>
internal sealed record V2InferResponse(
    string ModelName,
    string ModelVersion,
    string? Id,
    IReadOnlyList<V2Tensor> Outputs,
    V2InferTimings? Parameters = null);

/// <summary>Every /v2 error: <c>{"error": "..."}</c>.</summary>
internal sealed record V2Error(string Error);

/// <summary>POST /v2/repository/index body (optional): <c>ready</c> true lists only ready models.</summary>
internal sealed record V2RepositoryIndexRequest(bool? Ready = null);

/// <summary>One entry of the repository index (state: READY, LOADING, UNAVAILABLE, as Triton names them).</summary>
internal sealed record V2RepositoryModel(string Name, string? Version, string State, string? Reason);
