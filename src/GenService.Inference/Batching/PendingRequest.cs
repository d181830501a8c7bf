using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Inference.Batching;

/// <summary>
/// One caller's request in a <see cref="DynamicBatcher"/> from enqueue to completion: its rows split into
/// <see cref="RequestChunk"/>s of at most max_batch_size, the outputs gathered as each chunk's batch returns, and
/// the race between delivery, cancellation, the deadline and failure, of which exactly one completes it.
/// </summary>
internal sealed class PendingRequest
{
    private readonly DynamicBatcher _batcher;
    private readonly Lock _gate = new();
    private readonly TimeSpan _deadline;
    private int _done;
    private int _remaining;
    private bool _started;
    private TimeSpan _queueTime;
    private TimeSpan _compute;
    private int _maxBatch;
    private Dictionary<string, Tensor>? _outputs;

    public PendingRequest(DynamicBatcher batcher, InferenceRequest request, Tensor[] inputs, int rows, IReadOnlyList<string> wanted, long enqueuedAt, TimeSpan deadline)
    {
        _batcher = batcher;
        Request = request;
        Inputs = inputs;
        Rows = rows;
        Wanted = wanted;
        EnqueuedAt = enqueuedAt;
        _deadline = deadline;
        int max = batcher.MaxBatchSize;
        int count = (rows + max - 1) / max;
        Chunks = new RequestChunk[count];
        for (int i = 0; i < count; i++)
        {
            Chunks[i] = new RequestChunk(this, i * max, Math.Min(max, rows - (i * max)));
        }

        _remaining = count;
    }

    public InferenceRequest Request { get; }

    public Tensor[] Inputs { get; }

    public int Rows { get; }

    public IReadOnlyList<string> Wanted { get; }

    public long EnqueuedAt { get; }

    public RequestChunk[] Chunks { get; }

    public TaskCompletionSource<InferenceResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ITimer? DeadlineTimer { get; set; }

    public CancellationTokenRegistration Registration { get; set; }

    public bool IsDone => Volatile.Read(ref _done) != 0;

    /// <summary>First batch start: records the queue time once.</summary>
    public bool MarkStarted(long startTimestamp, out TimeSpan queued)
    {
        lock (_gate)
        {
            queued = default;
            if (_started)
            {
                return false;
            }

            _started = true;
            _queueTime = _batcher.Time.GetElapsedTime(EnqueuedAt, startTimestamp);
            queued = _queueTime;
            return true;
        }
    }

    public void Deliver(RequestChunk chunk, IReadOnlyDictionary<string, Tensor> batchOutputs, int batchOffset, int batchRows, TimeSpan compute, bool whole)
    {
        InferenceResult? result = null;
        lock (_gate)
        {
            if (IsDone)
            {
                return;
            }

            _compute += compute;
            _maxBatch = Math.Max(_maxBatch, batchRows);
            if (whole)
            {
                _outputs = new Dictionary<string, Tensor>(Wanted.Count, StringComparer.Ordinal);
                foreach (string name in Wanted)
                {
                    _outputs[name] = batchOutputs[name];
                }
            }
            else
            {
                _outputs ??= new Dictionary<string, Tensor>(Wanted.Count, StringComparer.Ordinal);
                foreach (string name in Wanted)
                {
                    Tensor src = batchOutputs[name];
                    if (!_outputs.TryGetValue(name, out Tensor? dst))
                    {
                        dst = BatchTensors.Allocate(src, Rows);
                        _outputs[name] = dst;
                    }

                    BatchTensors.CopyRows(src, batchOffset, dst, chunk.Offset, chunk.Rows);
                }
            }

            if (--_remaining == 0)
            {
                result = new InferenceResult { Outputs = _outputs, QueueTime = _queueTime, ComputeTime = _compute, BatchSize = _maxBatch };
            }
        }

        if (result is not null && TryFinish())
        {
            Completion.TrySetResult(result);
        }
    }

    public void OnDeadline()
    {
        if (IsDone || !RemoveQueued(requireQueued: true))
        {
            // Every chunk already runs: the deadline only bounds the time spent waiting.
            return;
        }

        if (TryFinish())
        {
            _batcher.Metrics?.RecordRejected(_batcher.ModelName, _batcher.Role, "deadline");
            Completion.TrySetException(new DeadlineExceededException(_batcher.V2Name, _deadline));
        }
    }

    public void OnCancelled(CancellationToken token)
    {
        RemoveQueued(requireQueued: false);
        if (TryFinish())
        {
            _batcher.Metrics?.RecordCancelled(_batcher.ModelName, _batcher.Role);
            Completion.TrySetCanceled(token);
        }
    }

    public void Fail(Exception ex, bool removeQueued)
    {
        if (removeQueued)
        {
            RemoveQueued(requireQueued: false);
        }

        if (TryFinish())
        {
            Completion.TrySetException(ex);
        }
    }

    public void ReleaseHooks()
    {
        DeadlineTimer?.Dispose();
        Registration.Unregister();
    }

    /// <summary>Takes this request's chunks out of the queue. Returns whether any was still there.</summary>
    private bool RemoveQueued(bool requireQueued) => _batcher.RemoveQueued(Chunks) || !requireQueued;

    /// <summary>Exactly one of deliver / cancel / deadline / failure completes the request.</summary>
    private bool TryFinish()
    {
        if (Interlocked.Exchange(ref _done, 1) != 0)
        {
            return false;
        }

        ReleaseHooks();
        _batcher.ReleaseBusy();
        return true;
    }
}
