using GenService.Inference.Tensors;

namespace GenService.Inference.Runtime;

/// <summary>One input or output of an ONNX graph, as the graph declares it.</summary>
/// <param name="Name">The ONNX name.</param>
/// <param name="Canonical">The contract's canonical name (model.json mapping), or null if unmapped.</param>
/// <param name="ElementType">Element type declared by the graph.</param>
/// <param name="Dims">Declared dims; -1 where dynamic (dim 0 is always the batch).</param>
public sealed record TensorSpec(string Name, string? Canonical, TensorElementType ElementType, long[] Dims)
{
    /// <summary>
    /// Whether dim 0 is the batch (dynamic). An input that is not, a timestep exported as a scalar or as [1], is shared
    /// by every row of a call: the batcher merges only requests that give it the same value.
    /// </summary>
    public bool Batched => Dims.Length > 0 && Dims[0] < 0;

    /// <summary>
    /// The values an index input may hold (a class label, a token id), from the manifest; null when any value is
    /// allowed. An index outside the embedding makes ONNX Runtime fail the whole call, every merged request with it,
    /// so the batcher refuses such a request before queueing it (<see cref="Batching.InferenceRequestValidator"/>).
    /// </summary>
    public IndexRange? Values { get; init; }

    /// <summary>
    /// The graph takes this input as float16: it moves as FP32 and is cast at the session boundary, where a value
    /// beyond ±65504 becomes infinity. The v2 reader holds such inputs to FP16's range.
    /// </summary>
    public bool Float16 { get; init; }
}

/// <summary>The allowed values of an index input: <paramref name="Min"/>..<paramref name="Max"/> inclusive.</summary>
/// <param name="Min">Smallest allowed value.</param>
/// <param name="Max">Largest allowed value.</param>
/// <param name="What">What the values are, for messages: "class labels of model 'digits-gan' (conditioning.num_classes 10)".</param>
public sealed record IndexRange(long Min, long Max, string What);

/// <summary>The inputs and outputs of one graph.</summary>
public sealed record GraphSignature(IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs)
{
    /// <summary>ONNX input name for a canonical name (e.g. "latent"), or null if the model does not map it.</summary>
    public string? InputName(string canonical) => Inputs.FirstOrDefault(i => i.Canonical == canonical)?.Name;

    /// <summary>ONNX output name for a canonical name (e.g. "sample"), or null if the model does not map it.</summary>
    public string? OutputName(string canonical) => Outputs.FirstOrDefault(o => o.Canonical == canonical)?.Name;
}

/// <summary>A request to one graph: tensors keyed by ONNX input name, all with the same dim 0.</summary>
public sealed class InferenceRequest
{
    public required IReadOnlyDictionary<string, Tensor> Inputs { get; init; }

    /// <summary>ONNX output names wanted; null means all outputs.</summary>
    public IReadOnlyList<string>? Outputs { get; init; }

    /// <summary>Absolute deadline; null uses the server default.</summary>
    public DateTimeOffset? Deadline { get; init; }

    /// <summary>
    /// The caller has batched already (an iteration loop sends each iteration as one request): the batch
    /// holding these rows leaves at once instead of waiting up to max_queue_delay_ms for company. Rows of other
    /// requests already queued with a compatible shape still ride along, up to max_batch_size; two such requests are
    /// never merged into one run (a loop that splits an iteration over the graph's sessions sends its parts
    /// together, to run at once).
    /// </summary>
    public bool DispatchImmediately { get; init; }

    /// <summary>
    /// Pre-allocated outputs, keyed by ONNX output name, each of exactly the shape the graph will return: when this
    /// request's rows run as a batch of their own (a <see cref="DispatchImmediately"/> call usually does), ONNX Runtime
    /// writes those outputs straight into these tensors and the result returns them: no output is allocated or copied.
    /// Otherwise (merged with other requests, or a runner without the feature) the result holds new tensors, so a
    /// caller always reads <see cref="InferenceResult.Outputs"/>. Buffers may be longer than their shape (pooled).
    /// </summary>
    public IReadOnlyDictionary<string, Tensor>? OutputBuffers { get; init; }
}

/// <summary>The rows of one request, split back out of whatever batches computed them.</summary>
public sealed class InferenceResult
{
    public required IReadOnlyDictionary<string, Tensor> Outputs { get; init; }

    /// <summary>Time from enqueue until the first batch holding this request's rows started.</summary>
    public TimeSpan QueueTime { get; init; }

    /// <summary>Model time of the batches that held this request's rows (summed over split chunks).</summary>
    public TimeSpan ComputeTime { get; init; }

    /// <summary>The largest batch (rows) any of this request's rows ran in.</summary>
    public int BatchSize { get; init; }
}

/// <summary>
/// A loaded graph behind its dynamic batcher and session pool. Thread-safe; the unit every family
/// endpoint and the v2 infer route call. Inputs and outputs are keyed by ONNX names; use
/// <see cref="GraphSignature.InputName"/> to translate canonical names.
/// </summary>
public interface IGraphRunner
{
    string ModelName { get; }

    string Role { get; }

    /// <summary>The KServe v2 name: "&lt;model&gt;.&lt;role&gt;".</summary>
    string V2Name { get; }

    GraphSignature Signature { get; }

    int MaxBatchSize { get; }

    /// <summary>Calls that can run at once (the graph's sessions, <c>instances</c>); 1 unless the runner says more.</summary>
    int Concurrency => 1;

    /// <summary>
    /// Queue the request's rows for batching; requests larger than the max batch are split.
    /// Throws <see cref="QueueFullException"/> at once when the queue is full,
    /// <see cref="DeadlineExceededException"/> past the deadline, <see cref="OperationCanceledException"/>
    /// if <paramref name="cancellationToken"/> fires (its rows leave the queue and are never computed).
    /// </summary>
    ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken);
}
