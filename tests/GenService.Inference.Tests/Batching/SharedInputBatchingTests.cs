using System.Collections.Concurrent;
using GenService.Inference.Batching;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Inference.Tests.Batching;

/// <summary>
/// A graph input without a batch dimension (a UNet timestep exported as a scalar, as current Optimum does) is one
/// value for the whole call: the batcher merges only requests that give it the same value, and passes it unchanged.
/// </summary>
public sealed class SharedInputBatchingTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly ObservedTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ShiftExecutor _executor = new();
    private DynamicBatcher _batcher = null!;

    public ValueTask InitializeAsync()
    {
        var signature = new GraphSignature(
            [new TensorSpec("x", "sample", TensorElementType.Float32, [-1, 2]), new TensorSpec("t", "timestep", TensorElementType.Float32, [])],
            [new TensorSpec("y", "prediction", TensorElementType.Float32, [-1, 2])]);
        var settings = new BatcherSettings(8, TimeSpan.FromMilliseconds(10), 64, 1, TimeSpan.FromSeconds(30));
        _batcher = new DynamicBatcher("m", "denoiser", signature, _executor, settings, _time, metrics: null);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync() => _batcher.DisposeAsync();

    private static InferenceRequest Request(float x, float t, long[]? timestepShape = null) => new()
    {
        Inputs = new Dictionary<string, Tensor>
        {
            ["x"] = Tensor.FromFloats([x, x + 0.5f], 1, 2),
            ["t"] = new Tensor(TensorElementType.Float32, timestepShape ?? [], new[] { t }),
        },
    };

    [Fact]
    public async Task Requests_with_different_shared_values_never_share_a_call()
    {
        Task waiting = _time.WhenTimerArmed(due => due == TimeSpan.FromMilliseconds(10) && _batcher.QueuedRows == 4);
        (float X, float T)[] asks = [(1, 10), (2, 20), (3, 10), (4, 20)];
        Task<InferenceResult>[] tasks = [.. asks.Select(a => _batcher.InferAsync(Request(a.X, a.T), Ct).AsTask())];
        await waiting;
        _time.Advance(TimeSpan.FromMilliseconds(10));
        InferenceResult[] results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10), Ct);

        // Each answer is its own x + its own t; t = 10 rows went together, t = 20 rows together.
        for (int i = 0; i < asks.Length; i++)
        {
            Assert.Equal([asks[i].X + asks[i].T, asks[i].X + 0.5f + asks[i].T], results[i].Outputs["y"].AsFloats());
        }

        Assert.Equal([(2, 10f), (2, 20f)], _executor.Calls.OrderBy(c => c.T));
    }

    [Fact]
    public async Task A_shared_input_of_the_wrong_shape_is_a_validation_error()
    {
        var e = await Assert.ThrowsAsync<RequestValidationException>(() => _batcher.InferAsync(Request(1, 10, timestepShape: [1]), Ct).AsTask());
        Assert.Equal("inputs.t", e.Field);
        Assert.Contains("one value for the whole call", e.Message, StringComparison.Ordinal);
    }

    /// <summary>y = x + t, recording each call's rows and shared t.</summary>
    private sealed class ShiftExecutor : IBatchExecutor
    {
        public ConcurrentQueue<(int Rows, float T)> Calls { get; } = new();

        public ValueTask<IReadOnlyDictionary<string, Tensor>> ExecuteAsync(
            IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, IReadOnlyDictionary<string, Tensor>? outputBuffers, CancellationToken cancellationToken)
        {
            Tensor x = inputs["x"];
            Tensor t = inputs["t"];
            Assert.Empty(t.Shape);
            float shift = ((float[])t.Data)[0];
            Calls.Enqueue((x.Rows, shift));
            float[] y = [.. x.AsFloats().Select(v => v + shift)];
            return ValueTask.FromResult<IReadOnlyDictionary<string, Tensor>>(new Dictionary<string, Tensor> { ["y"] = Tensor.FromFloats(y, x.Shape) });
        }

        public void Dispose()
        {
        }
    }
}
