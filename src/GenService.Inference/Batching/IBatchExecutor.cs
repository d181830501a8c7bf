using GenService.Inference.Tensors;

namespace GenService.Inference.Batching;

/// <summary>
/// Runs one already-assembled batch. The ONNX Runtime session pool implements it; tests use a fake.
/// The batcher never calls it more than its concurrency at once.
/// </summary>
internal interface IBatchExecutor : IDisposable
{
    /// <summary>
    /// Runs the graph on <paramref name="inputs"/> (ONNX names, shared dim 0) and returns the wanted outputs; where
    /// <paramref name="outputBuffers"/> holds every wanted output, the graph writes into those and returns them.
    /// </summary>
    ValueTask<IReadOnlyDictionary<string, Tensor>> ExecuteAsync(
        IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, IReadOnlyDictionary<string, Tensor>? outputBuffers, CancellationToken cancellationToken);
}

/// <summary>Per-graph batching settings (from model.json "batching" and "instances", plus the server default deadline).</summary>
internal sealed record BatcherSettings(int MaxBatchSize, TimeSpan MaxQueueDelay, int MaxQueueSize, int Concurrency, TimeSpan DefaultDeadline);
