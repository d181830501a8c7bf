using System.Diagnostics;
using GenService.Inference.Callers;
using GenService.Inference.Hosting;
using GenService.Inference.Metrics;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace GenService.Inference.Batching;

/// <summary>
/// The dynamic batcher of one graph: concurrent requests are queued, concatenated along dimension 0
/// and run together; each request gets back exactly its own rows.
/// <code>
///  InferAsync ──validate──► split into chunks of ≤ max_batch_size rows
///      │                      │  (rows counted against max_queue_size; full ⇒ QueueFullException at once)
///      │                      ▼
///      │             ┌─────────── queue (FIFO, LinkedList) ────────────┐
///      │  cancel /   │ [A:0-3] [B:0-1] [C:0-63] [C:64-99] [D:0-1] ...  │ ◄── chunks leave the queue when the
///      │  deadline ─►│                                                 │     caller cancels or the deadline
///      │  timers     └──────────────────────┬──────────────────────────┘     passes: never computed
///      │                                    │ scheduling loop (one async loop, no thread):
///      │                                    │  1. wait for a free slot (≤ instances batches at once)
///      │                                    │  2. wait until the head's compatible rows fill a batch, or
///      │                                    │     max_queue_delay after the head was queued (TimeProvider),
///      │                                    │     or one of them asks to be dispatched immediately
///      │                                    │  3. take FIFO chunks whose non-batch shapes equal the head's
///      │                                    ▼
///      │                      concat ─► IBatchExecutor (ONNX session pool) ─► split rows back
///      ▼                                                                         │
///  Task&lt;InferenceResult&gt; ◄──── all chunks of the request delivered, in order ◄────┘
/// </code>
/// Why hand-written rather than a Channel: requests must leave the middle of the queue when cancelled,
/// batches must only mix equal non-batch shapes (AR sequences of different lengths), and the fill
/// decision needs to look ahead at the queued rows; a linked list under one lock does all three in O(1)
/// per request. Completion sources run continuations asynchronously so no caller code runs under the lock.
/// </summary>
internal sealed partial class DynamicBatcher : IGraphRunner, IAsyncDisposable
{
    private readonly IBatchExecutor _executor;
    private readonly BatcherSettings _settings;
    private readonly TimeProvider _time;
    private readonly GenServiceMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly InferenceRequestValidator _validator;
    private readonly IDisposable? _depthRegistration;

    private readonly Lock _lock = new();
    private readonly LinkedList<RequestChunk> _queue = new();
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;

    private int _queuedRows;
    private TaskCompletionSource? _signal;

    // Work not yet finished: accepted requests plus running batches. Sessions are disposed only at zero.
    private int _busy;
    private long _activity;
    private TaskCompletionSource? _idle;
    private bool _closed;
    private string _closedReason = "it was unloaded";
    private double _ewmaBatchSeconds = 0.01;

    public DynamicBatcher(string modelName, string role, GraphSignature signature, IBatchExecutor executor,
        BatcherSettings settings, TimeProvider time, GenServiceMetrics? metrics, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.MaxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.MaxQueueSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.Concurrency, 1);
        ModelName = modelName;
        Role = role;
        V2Name = $"{modelName}.{role}";
        Signature = signature;
        _executor = executor;
        _settings = settings;
        _time = time;
        _metrics = metrics;
        _logger = logger ?? NullLogger.Instance;
        _validator = new InferenceRequestValidator(V2Name, signature);
        _slots = new SemaphoreSlim(settings.Concurrency, settings.Concurrency);
        _depthRegistration = metrics?.RegisterQueue(modelName, role, () => Volatile.Read(ref _queuedRows));
        _loop = Task.Run(RunLoopAsync);
    }

    public string ModelName { get; }

    public string Role { get; }

    public string V2Name { get; }

    public GraphSignature Signature { get; }

    public int MaxBatchSize => _settings.MaxBatchSize;

    /// <inheritdoc/>
    public int Concurrency => _settings.Concurrency;

    /// <summary>Rows waiting in the queue now.</summary>
    public int QueuedRows => Volatile.Read(ref _queuedRows);

    /// <summary>The batcher's clock, which its <see cref="PendingRequest"/>s measure their queue time with.</summary>
    internal TimeProvider Time => _time;

    /// <summary>Where a <see cref="PendingRequest"/> records that its deadline passed or its caller cancelled.</summary>
    internal GenServiceMetrics? Metrics => _metrics;

    public ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        Tensor[] ordered = _validator.ValidateInputs(request, out int rows);
        IReadOnlyList<string> wanted = _validator.ValidateOutputs(request);
        if (rows > _settings.MaxQueueSize)
        {
            throw new RequestValidationException("inputs", $"The request has {rows} rows but the queue of '{V2Name}' holds at most {_settings.MaxQueueSize}; send fewer rows per request.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        DateTimeOffset now = _time.GetUtcNow();

        // The caller's own deadline (X-Request-Timeout-Ms, RequestDeadline) can only shorten the configured one.
        DateTimeOffset deadline = request.Deadline ?? RequestDeadline.Earliest(now + _settings.DefaultDeadline);
        TimeSpan untilDeadline = deadline - now;
        if (untilDeadline <= TimeSpan.Zero)
        {
            _metrics?.RecordRejected(ModelName, Role, "deadline");
            throw new DeadlineExceededException(V2Name, TimeSpan.Zero);
        }

        var pending = new PendingRequest(this, request, ordered, rows, wanted, _time.GetTimestamp(), untilDeadline);
        lock (_lock)
        {
            if (_closed)
            {
                throw new ModelNotReadyException(ModelName, $"this version of the model was closed because {_closedReason}; fetch the model again.");
            }

            if (_queuedRows + rows > _settings.MaxQueueSize)
            {
                _metrics?.RecordRejected(ModelName, Role, "queue_full");
                throw new QueueFullException(V2Name, _settings.MaxQueueSize, RetryAfterLocked());
            }

            foreach (RequestChunk chunk in pending.Chunks)
            {
                _queue.AddLast(chunk.Node);
            }

            _queuedRows += rows;
            _busy++;
            _activity++;
            _signal?.TrySetResult();
            _signal = null;
        }

        // Registered after queueing: if they fire at once they find the chunks and remove them.
        pending.DeadlineTimer = _time.CreateTimer(static s => ((PendingRequest)s!).OnDeadline(), pending, untilDeadline, Timeout.InfiniteTimeSpan);
        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.UnsafeRegister(static (s, ct) => ((PendingRequest)s!).OnCancelled(ct), pending);
        }

        if (pending.IsDone)
        {
            pending.ReleaseHooks();
        }

        return new ValueTask<InferenceResult>(pending.Completion.Task);
    }

    /// <summary>
    /// Waits until nothing is queued or running and the batcher has stayed idle for <paramref name="grace"/>,
    /// then closes it (new requests get <see cref="ModelNotReadyException"/>) and disposes the executor.
    /// </summary>
    public async Task DrainAndCloseAsync(TimeSpan grace, string reason, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task idle;
            long seen;
            lock (_lock)
            {
                if (_busy == 0)
                {
                    idle = Task.CompletedTask;
                }
                else
                {
                    _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    idle = _idle.Task;
                }

                seen = _activity;
            }

            await idle.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (grace > TimeSpan.Zero)
            {
                await Task.Delay(grace, _time, cancellationToken).ConfigureAwait(false);
            }

            lock (_lock)
            {
                if (_busy == 0 && _activity == seen)
                {
                    _closed = true;
                    _closedReason = reason;
                    break;
                }
            }
        }

        await StopAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// What a model-wide drain waits on: a task that completes when nothing is queued or running, and the activity
    /// count to compare with <see cref="IsQuietSince"/> after the idle grace.
    /// </summary>
    internal (Task Idle, long Activity) IdleSignal()
    {
        lock (_lock)
        {
            if (_busy == 0)
            {
                return (Task.CompletedTask, _activity);
            }

            _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return (_idle.Task, _activity);
        }
    }

    /// <summary>Nothing is queued or running and no request arrived since <paramref name="activity"/> was read.</summary>
    internal bool IsQuietSince(long activity)
    {
        lock (_lock)
        {
            return _busy == 0 && _activity == activity;
        }
    }

    /// <summary>Closes (new requests get <see cref="ModelNotReadyException"/>) and disposes the executor once running batches end.</summary>
    internal Task CloseAsync(string reason)
    {
        lock (_lock)
        {
            if (!_closed)
            {
                _closed = true;
                _closedReason = reason;
            }
        }

        return StopAsync();
    }

    /// <summary>Closes at once: queued requests fail with <see cref="ModelNotReadyException"/>; running batches finish first.</summary>
    public async ValueTask DisposeAsync()
    {
        List<PendingRequest> orphans = [];
        lock (_lock)
        {
            if (!_closed)
            {
                _closed = true;
                _closedReason = "it was disposed";
            }

            foreach (RequestChunk c in _queue)
            {
                if (!orphans.Contains(c.Owner))
                {
                    orphans.Add(c.Owner);
                }
            }
        }

        foreach (PendingRequest p in orphans)
        {
            p.Fail(new ModelNotReadyException(ModelName, "the model was unloaded while the request waited."), removeQueued: true);
        }

        await StopAsync().ConfigureAwait(false);
    }

    private async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The loop ends by cancellation.
        }

        // Running batches hold slots; taking every slot waits for them to finish.
        for (int i = 0; i < _settings.Concurrency; i++)
        {
            await _slots.WaitAsync().ConfigureAwait(false);
        }

        _depthRegistration?.Dispose();
        _executor.Dispose();
    }

    private TimeSpan RetryAfterLocked()
    {
        // Batches ahead of a new request, spread over the sessions, at the recent batch time.
        double batches = Math.Ceiling((double)_queuedRows / _settings.MaxBatchSize);
        double seconds = batches * _ewmaBatchSeconds / _settings.Concurrency;
        return TimeSpan.FromSeconds(Math.Clamp(seconds, 1, 60));
    }

    private async Task RunLoopAsync()
    {
        CancellationToken stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            await _slots.WaitAsync(stopping).ConfigureAwait(false);
            List<RequestChunk>? batch = null;
            int rows = 0;
            try
            {
                (batch, rows) = await NextBatchAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _slots.Release();
                throw;
            }

            List<RequestChunk> taken = batch;
            int takenRows = rows;
            _ = Task.Run(() => RunBatchAsync(taken, takenRows), CancellationToken.None);
        }
    }

    /// <summary>Waits (holding a free slot) until a batch is due, and takes it out of the queue.</summary>
    private async Task<(List<RequestChunk> Batch, int Rows)> NextBatchAsync(CancellationToken stopping)
    {
        List<RequestChunk>? batch = null;
        int rows = 0;
        while (batch is null)
        {
            Task signal;
            TimeSpan? dueIn;
            long evaluatedAt = _time.GetTimestamp();
            lock (_lock)
            {
                if (TryTakeBatchLocked(out batch, out rows, out dueIn))
                {
                    _busy++;
                    break;
                }

                _signal ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                signal = _signal.Task;
            }

            if (dueIn is null)
            {
                await signal.WaitAsync(stopping).ConfigureAwait(false);
            }
            else
            {
                // Whichever comes first: more rows (maybe a full batch) or the head's delay running out.
                using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                Task delay = Task.Delay(dueIn.Value, _time, delayCts.Token);

                // If the clock passed the due time while the timer was armed (a test clock jumping), the
                // timer would wait a whole delay more: re-evaluate instead.
                if (_time.GetElapsedTime(evaluatedAt) < dueIn.Value)
                {
                    await Task.WhenAny(signal, delay).ConfigureAwait(false);
                }

                await delayCts.CancelAsync().ConfigureAwait(false);
                stopping.ThrowIfCancellationRequested();
            }
        }

        return (batch, rows);
    }

    private bool TryTakeBatchLocked(out List<RequestChunk> batch, out int rows, out TimeSpan? dueIn)
    {
        batch = null!;
        rows = 0;
        dueIn = null;
        LinkedListNode<RequestChunk>? first = _queue.First;
        if (first is null)
        {
            return false;
        }

        RequestChunk head = first.Value;
        int max = _settings.MaxBatchSize;
        TimeSpan waited = _time.GetElapsedTime(head.Owner.EnqueuedAt);
        if (waited < _settings.MaxQueueDelay)
        {
            int compatibleRows = 0;
            bool now = false;
            for (LinkedListNode<RequestChunk>? n = first; n is not null && compatibleRows < max; n = n.Next)
            {
                if (Compatible(head.Owner, n.Value.Owner))
                {
                    compatibleRows += n.Value.Rows;
                    now |= n.Value.Owner.Request.DispatchImmediately;
                }
            }

            if (compatibleRows < max && !now)
            {
                dueIn = _settings.MaxQueueDelay - waited;
                return false;
            }
        }

        // A batch holds at most one caller-made batch (a DispatchImmediately request): an iteration loop that splits an
        // iteration over the graph's sessions sends its parts together, and merging them here would undo the split.
        PendingRequest? premade = null;
        batch = [];
        for (LinkedListNode<RequestChunk>? n = first; n is not null;)
        {
            LinkedListNode<RequestChunk>? next = n.Next;
            RequestChunk c = n.Value;
            bool another = c.Owner.Request.DispatchImmediately && premade is not null && !ReferenceEquals(premade, c.Owner);
            if (!another && Compatible(head.Owner, c.Owner))
            {
                if (c.Owner.Request.DispatchImmediately)
                {
                    premade = c.Owner;
                }

                if (rows + c.Rows > max)
                {
                    break;
                }

                _queue.Remove(n);
                _queuedRows -= c.Rows;
                rows += c.Rows;
                batch.Add(c);
            }

            n = next;
        }

        return true;
    }

    /// <summary>
    /// Same non-batch shape for every input (dtypes are fixed by the signature), and the same value in each input that
    /// is shared by the whole call (a scalar timestep: rows at different timesteps cannot share such a call).
    /// </summary>
    private bool Compatible(PendingRequest a, PendingRequest b)
    {
        if (ReferenceEquals(a, b))
        {
            return true;
        }

        IReadOnlyList<TensorSpec> specs = Signature.Inputs;
        for (int i = 0; i < a.Inputs.Length; i++)
        {
            if (!specs[i].Batched)
            {
                if (!BatchTensors.SameValues(a.Inputs[i], b.Inputs[i]))
                {
                    return false;
                }
            }
            else if (!a.Inputs[i].Shape.AsSpan(1).SequenceEqual(b.Inputs[i].Shape.AsSpan(1)))
            {
                return false;
            }
        }

        return true;
    }

    private async Task RunBatchAsync(List<RequestChunk> batch, int rows)
    {
        try
        {
            long start = _time.GetTimestamp();
            foreach (RequestChunk c in batch)
            {
                if (c.Owner.MarkStarted(start, out TimeSpan queued))
                {
                    _metrics?.RecordQueueWait(ModelName, Role, queued);
                }
            }

            IReadOnlyDictionary<string, Tensor> inputs = BatchTensors.Assemble(batch, rows, Signature.Inputs);
            IReadOnlyList<string> outputs = BatchTensors.UnionOutputs(batch, _validator.AllOutputs);
            bool whole = batch.Count == 1 && batch[0].Rows == batch[0].Owner.Rows;
            IReadOnlyDictionary<string, Tensor> result;
            try
            {
                // A request alone in its batch gets its outputs written into its own buffers, if it brought any.
                IReadOnlyDictionary<string, Tensor>? buffers = whole ? batch[0].Owner.Request.OutputBuffers : null;
                result = await _executor.ExecuteAsync(inputs, outputs, buffers, CancellationToken.None).ConfigureAwait(false);
                foreach (string name in outputs)
                {
                    if (!result.TryGetValue(name, out Tensor? t) || t.Shape.Length == 0 || t.Shape[0] != rows)
                    {
                        throw new InvalidOperationException($"Graph '{V2Name}' returned output '{name}' without {rows} rows along dimension 0.");
                    }
                }
            }
            catch (Exception ex)
            {
                // Find the request(s) the call failed on, so that the others still complete (DynamicBatcher.Isolation.cs).
                await IsolateAsync(batch, rows, ex).ConfigureAwait(false);
                return;
            }

            TimeSpan compute = _time.GetElapsedTime(start);
            _metrics?.RecordCompute(ModelName, Role, compute);
            _metrics?.RecordBatchSize(ModelName, Role, rows);
            lock (_lock)
            {
                _ewmaBatchSeconds = (0.8 * _ewmaBatchSeconds) + (0.2 * compute.TotalSeconds);
            }

            int offset = 0;
            foreach (RequestChunk c in batch)
            {
                c.Owner.Deliver(c, result, offset, rows, compute, whole);
                offset += c.Rows;
            }
        }
        finally
        {
            _slots.Release();
            ReleaseBusy();
        }
    }

    /// <summary>
    /// Takes those of <paramref name="chunks"/> that are still queued out of the queue (a request cancelled, past its
    /// deadline or failed). Returns whether any was still there.
    /// </summary>
    internal bool RemoveQueued(RequestChunk[] chunks)
    {
        lock (_lock)
        {
            bool any = false;
            foreach (RequestChunk c in chunks)
            {
                if (c.Node.List is not null)
                {
                    _queue.Remove(c.Node);
                    _queuedRows -= c.Rows;
                    any = true;
                }
            }

            return any;
        }
    }

    /// <summary>One accepted request or running batch has finished; at zero, wakes <see cref="DrainAndCloseAsync"/>.</summary>
    internal void ReleaseBusy()
    {
        TaskCompletionSource? idle = null;
        lock (_lock)
        {
            _busy--;
            Debug.Assert(_busy >= 0, "busy count went negative");
            if (_busy == 0 && _idle is not null)
            {
                idle = _idle;
                _idle = null;
            }
        }

        idle?.TrySetResult();
    }
}
