using System.Collections.Concurrent;
using GenService.Inference.Batching;
using GenService.Inference.Repository;
using GenService.Inference.Tensors;
using GenService.Testing;

namespace GenService.Api.Tests.Infrastructure;

/// <summary>
/// A graph's ONNX session pool behind a gate (installed with <c>ModelRepository.WrapExecutor</c> before a load): each
/// batch counts as entered, then waits until the test lets it through. A test awaits <see cref="WhenEntered"/> to act
/// at the exact moment a batch is inside ONNX Runtime (a request in flight in the batcher, a loop mid-step).
/// </summary>
internal sealed class GatedExecutor(IBatchExecutor inner) : IBatchExecutor
{
    private readonly SemaphoreSlim _gate = new(0);
    private readonly AwaitableCount _entered = new();
    private long _rows;

    /// <summary>
    /// Loads a new version of each of <paramref name="names"/> whose graphs run behind gates; returns the gates by
    /// "&lt;model&gt;.&lt;role&gt;". Requests already on the old versions are not held.
    /// </summary>
    public static async Task<IReadOnlyDictionary<string, GatedExecutor>> LoadGatedAsync(ModelRepository models, CancellationToken cancellationToken, params string[] names)
    {
        var gates = new ConcurrentDictionary<string, GatedExecutor>();
        models.WrapExecutor = (graph, inner) => gates[graph] = new GatedExecutor(inner);
        try
        {
            foreach (string name in names)
            {
                Assert.Equal(ModelState.Ready, (await models.LoadAsync(name, cancellationToken)).State);
            }
        }
        finally
        {
            models.WrapExecutor = null;
        }

        return gates;
    }

    /// <summary>Completes once <paramref name="calls"/> batches have reached the executor (held ones included).</summary>
    public Task WhenEntered(int calls) => _entered.WhenReached(calls);

    /// <summary>Rows of every batch that reached the executor (the largest first dimension of its inputs).</summary>
    public long Rows => Interlocked.Read(ref _rows);

    /// <summary>Lets <paramref name="calls"/> more batches through.</summary>
    public void Release(int calls) => _gate.Release(calls);

    /// <summary>Lets every batch through from now on, the held ones included.</summary>
    public void Open() => _gate.Release(1 << 20);

    public async ValueTask<IReadOnlyDictionary<string, Tensor>> ExecuteAsync(
        IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, IReadOnlyDictionary<string, Tensor>? outputBuffers, CancellationToken cancellationToken)
    {
        Interlocked.Add(ref _rows, inputs.Values.Max(t => t.Shape.Length > 0 ? t.Shape[0] : 1));
        _entered.Increment();
        await _gate.WaitAsync(cancellationToken);
        return await inner.ExecuteAsync(inputs, outputNames, outputBuffers, cancellationToken);
    }

    public void Dispose()
    {
        inner.Dispose();
        _gate.Dispose();
    }
}
