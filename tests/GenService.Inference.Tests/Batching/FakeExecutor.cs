using System.Collections.Concurrent;
using GenService.Inference.Batching;
using GenService.Inference.Tensors;
using GenService.Testing;

namespace GenService.Inference.Tests.Batching;

/// <summary>
/// A row-wise fake graph: y[r, j] = 2 * x[r, j] + sum_j x[r, :] + 1. It records every batch it sees and
/// can be held (gate) to keep batches running while a test queues more work; <see cref="WhenEntered"/> lets the
/// test wait for the exact batch to start instead of polling <see cref="Batches"/>.
/// </summary>
internal sealed class FakeExecutor : IBatchExecutor
{
    private readonly Lock _lock = new();
    private readonly AwaitableCount _entered = new();
    private TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _running;

    public FakeExecutor(bool held = false)
    {
        if (!held)
        {
            _gate.SetResult();
        }
    }

    public ConcurrentQueue<Tensor> Batches { get; } = new();

    public int MaxConcurrent { get; private set; }

    public int Running => Volatile.Read(ref _running);

    public bool Disposed { get; private set; }

    public Exception? Throw { get; set; }

    /// <summary>
    /// A marked value: any call holding it in its input fails (as ONNX Runtime fails a whole call on one bad row),
    /// with a multi-line message like the runtime's (a reason line, then details that must not reach a client).
    /// </summary>
    public float? Poison { get; set; }

    /// <summary>Batches whose output was written into a caller's buffer.</summary>
    public int InPlaceBatches { get; private set; }

    public void Release() => _gate.TrySetResult();

    /// <summary>Completes once <paramref name="batches"/> batches have started (held ones included).</summary>
    public Task WhenEntered(int batches) => _entered.WhenReached(batches);

    public void Hold()
    {
        lock (_lock)
        {
            if (_gate.Task.IsCompleted)
            {
                _gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Every row value the executor has computed, in batch order.</summary>
    public IEnumerable<float> AllFirstColumns => Batches.SelectMany(b => Rows(b).Select(r => r[0]));

    public int TotalRows => Batches.Sum(b => b.Rows);

    public async ValueTask<IReadOnlyDictionary<string, Tensor>> ExecuteAsync(
        IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, IReadOnlyDictionary<string, Tensor>? outputBuffers, CancellationToken cancellationToken)
    {
        Tensor x = inputs["x"];
        Batches.Enqueue(x);
        int now = Interlocked.Increment(ref _running);
        lock (_lock)
        {
            MaxConcurrent = Math.Max(MaxConcurrent, now);
        }

        _entered.Increment();

        try
        {
            Task gate;
            lock (_lock)
            {
                gate = _gate.Task;
            }

            await gate.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
            if (Throw is { } ex)
            {
                throw ex;
            }

            if (Poison is { } poison && x.FloatSpan.Contains(poison))
            {
                throw new InvalidOperationException($"[ErrorCode:RuntimeException] Gather: indices element out of data bounds, idx={poison}\n   at Microsoft.ML.OnnxRuntime.NativeApiStatus.VerifySuccess(IntPtr nativeStatus)");
            }

            Tensor y = Compute(x);
            if (outputBuffers?.GetValueOrDefault("y") is { } buffer)
            {
                // What ONNX Runtime does with a pre-allocated output: write into it, return it.
                y.FloatSpan.CopyTo(buffer.FloatSpan);
                InPlaceBatches++;
                return new Dictionary<string, Tensor> { ["y"] = buffer };
            }

            return new Dictionary<string, Tensor> { ["y"] = y };
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }
    }

    /// <summary>The reference: the same function applied to one request alone.</summary>
    public static Tensor Compute(Tensor x)
    {
        ReadOnlySpan<float> data = x.FloatSpan;
        int width = (int)(x.Shape.Length > 1 ? x.Shape[1] : 1);
        float[] y = new float[data.Length];
        for (int r = 0; r < x.Rows; r++)
        {
            float sum = 0;
            for (int j = 0; j < width; j++)
            {
                sum += data[(r * width) + j];
            }

            for (int j = 0; j < width; j++)
            {
                y[(r * width) + j] = (2 * data[(r * width) + j]) + sum + 1;
            }
        }

        return new Tensor(TensorElementType.Float32, (long[])x.Shape.Clone(), y);
    }

    public static IEnumerable<float[]> Rows(Tensor t)
    {
        float[] d = t.AsFloats();
        int width = (int)(t.Shape.Length > 1 ? t.Shape[1] : 1);
        for (int r = 0; r < t.Rows; r++)
        {
            yield return d.AsSpan(r * width, width).ToArray();
        }
    }

    public void Dispose() => Disposed = true;
}
