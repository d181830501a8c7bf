using System.Runtime.CompilerServices;
using System.Threading.Channels;
using GenService.Inference;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Generation.Loops;

/// <summary>
/// A request inside an <see cref="IterationLoop{TRequest, TItem, TEvent}"/>: its items (diffusion samples, AR
/// sequences), how many are admitted, its event stream and timings.
/// </summary>
internal abstract class IterationRequest<TItem, TEvent>
    where TItem : class
    where TEvent : class
{
    private bool _ended;

    protected IterationRequest(TItem[] items, long submittedAt, bool stream)
    {
        Items = items;
        SubmittedAt = submittedAt;
        Stream = stream;
    }

    /// <summary>The request's items, admitted in this order.</summary>
    public TItem[] Items { get; }

    public long SubmittedAt { get; }

    /// <summary>Whether the caller reads per-step events (SSE), or only the result.</summary>
    public bool Stream { get; }

    /// <summary>The request's place in the waiting queue (guarded by the loop's lock).</summary>
    public LinkedListNode<IterationRequest<TItem, TEvent>>? Node { get; set; }

    // Unbounded: events are small, and the loop must never wait on a slow reader.
    public Channel<TEvent> Events { get; } = Channel.CreateUnbounded<TEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });

    public InferenceTimings Timings { get; } = new();

    /// <summary>Items admitted so far (guarded by the loop's lock).</summary>
    public int Admitted { get; set; }

    /// <summary>Completed, failed or cancelled (guarded by the loop's lock; read without it by the loop).</summary>
    public bool Ended
    {
        get => Volatile.Read(ref _ended);
        set => Volatile.Write(ref _ended, value);
    }

    /// <summary>The result was written: a reader leaving now is not a cancellation.</summary>
    public abstract bool Completed { get; }
}

/// <summary>
/// The part of iteration-level batching that does not depend on the family: one loop per graph, a FIFO queue of
/// requests, admission per item under a cap on rows per iteration, cancellation, and closing.
/// <code>
///  RunRequestAsync(r) ──► waiting (FIFO, per request) ──admit items while rows ≤ cap──► active items
///                              ▲ cancel / reader leaves: out at once                        │
///   loop (one async task while there is work; exits when idle):                            ▼
///     1. drop done items and every item of an ended request; admit FIFO (per item, never skipping the head)
///     2. RunIterationAsync(active items): the family's graph call(s) and per-item advance (subclass)
/// </code>
/// Why per item: a large request can be partly admitted next to running work, and a finished item frees its rows at
/// once. Why FIFO without skipping: a large head request is never starved by a stream of small ones.
/// </summary>
internal abstract class IterationLoop<TRequest, TItem, TEvent> : IIterationLoop
    where TRequest : IterationRequest<TItem, TEvent>
    where TItem : class
    where TEvent : class
{
    // Admission wait enters a request's queue_ms through InferenceTimings, which sums InferenceResults.
    private static readonly Dictionary<string, Tensor> NoOutputs = [];

    private readonly Lock _lock = new();
    private readonly LinkedList<IterationRequest<TItem, TEvent>> _waiting = new();
    private readonly List<TItem> _active = [];
    private readonly HashSet<TRequest> _requests = [];
    private readonly TaskCompletionSource _closedForGood = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly int _maxQueuedItems;
    private int _activeRows;
    private int _queuedItems;
    private bool _looping;
    private Exception? _closed;
    private long _rowsComputed;
    private long _iterations;

    protected IterationLoop(string modelName, int rowCap, int maxQueuedItems, TimeProvider time)
    {
        ModelName = modelName;
        RowCap = rowCap;
        _maxQueuedItems = maxQueuedItems;
        Time = time;
    }

    public abstract IGraphRunner Graph { get; }

    public string ModelName { get; }

    /// <summary>Most rows per iteration (an iteration always takes the head item, even one wider than the cap).</summary>
    public int RowCap { get; }

    /// <summary>Graph rows computed so far (tests: a cancelled request stops adding to it).</summary>
    public long RowsComputed => Interlocked.Read(ref _rowsComputed);

    /// <summary>Iterations run so far.</summary>
    public long Iterations => Interlocked.Read(ref _iterations);

    /// <summary>Requests admitted or waiting now.</summary>
    public int ActiveRequests
    {
        get
        {
            lock (_lock)
            {
                return _requests.Count;
            }
        }
    }

    protected TimeProvider Time { get; }

    /// <summary>Cancelled when the loop is disposed: graph calls in flight end.</summary>
    protected CancellationTokenSource Stopping { get; } = new();

    /// <summary>Called once when the loop closes for good (the registry forgets the loop).</summary>
    protected Action? OnClosed { get; set; }

    /// <summary>Completes once the loop has closed for good and <see cref="OnClosed"/> has run (tests await it).</summary>
    internal Task WhenClosed => _closedForGood.Task;

    /// <summary>Rows an item takes in a call (a guided diffusion sample: 2).</summary>
    protected abstract int RowsOf(TItem item);

    /// <summary>The item needs no more iterations.</summary>
    protected abstract bool IsDone(TItem item);

    protected abstract TRequest OwnerOf(TItem item);

    /// <summary>
    /// One iteration over <paramref name="batch"/> (<paramref name="rows"/> rows): graph call(s), then advance every
    /// item and complete finished requests (<see cref="Finish"/>). Failures go to <see cref="OnIterationFailed"/>.
    /// </summary>
    protected abstract Task RunIterationAsync(List<TItem> batch, int rows, long started);

    protected abstract void LogClosed(string reason);

    protected abstract void LogCancelled(TRequest request);

    protected abstract void LogIterationFailed(int rows, int requests, Exception exception);

    /// <summary>
    /// Called once per request when it ends, from whichever thread ended it: <paramref name="error"/> is null when it
    /// completed, else why it was cancelled or failed. Families record the request's network evaluations here.
    /// </summary>
    protected abstract void OnEnded(TRequest request, Exception? error);

    /// <summary>
    /// Queues the request and streams its events until the result; leaving the enumeration early, or cancelling,
    /// drops its items before the next iteration.
    /// </summary>
    protected async IAsyncEnumerable<TEvent> RunRequestAsync(TRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Submit(request);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static (state, ct) =>
            {
                var (self, r) = ((IterationLoop<TRequest, TItem, TEvent>, TRequest))state!;
                self.Cancel(r, new OperationCanceledException(ct));
            },
            (this, request));
        try
        {
            await foreach (TEvent e in request.Events.Reader.ReadAllAsync(cancellationToken))
            {
                yield return e;
            }
        }
        finally
        {
            // The consumer left (finished, failed, cancelled or simply stopped reading): stop computing for it.
            Cancel(request, new OperationCanceledException("The caller stopped reading the events."));
        }
    }

    private void Submit(TRequest request)
    {
        bool start = false;
        lock (_lock)
        {
            if (_closed is not null)
            {
                throw _closed is ModelNotReadyException ? new ModelNotReadyException(ModelName, "this version of the model was closed; fetch the model again.") : _closed;
            }

            int count = request.Items.Length;
            if (_queuedItems + count > _maxQueuedItems && _queuedItems > 0)
            {
                throw new QueueFullException($"{Graph.V2Name} (iteration loop)", _maxQueuedItems, TimeSpan.FromSeconds(1));
            }

            request.Node = _waiting.AddLast(request);
            _requests.Add(request);
            _queuedItems += count;
            if (!_looping)
            {
                _looping = true;
                start = true;
            }
        }

        if (start)
        {
            // A fresh loop per busy period: no thread or task is kept while the model is idle.
            _ = Task.Run(RunLoopAsync);
        }
    }

    private void Cancel(TRequest request, Exception reason)
    {
        // A reader that leaves right after reading the result is not a cancellation.
        if (request.Completed)
        {
            Finish(request, error: null);
            return;
        }

        if (Finish(request, reason))
        {
            LogCancelled(request);
        }
    }

    /// <summary>
    /// Ends a request once: out of the queue, its items dropped at the next iteration, <see cref="OnEnded"/> recorded,
    /// then <paramref name="result"/> (a completed request's last event) written and its events completed, in that
    /// order, so that a caller holding the result sees its request's metrics already recorded. False if already ended.
    /// </summary>
    protected bool Finish(TRequest request, Exception? error, TEvent? result = null)
    {
        lock (_lock)
        {
            if (request.Ended)
            {
                return false;
            }

            request.Ended = true;
            if (request.Node?.List is not null)
            {
                _waiting.Remove(request.Node);
                _queuedItems -= request.Items.Length - request.Admitted;
            }

            _requests.Remove(request);
        }

        OnEnded(request, error);
        if (result is not null)
        {
            request.Events.Writer.TryWrite(result);
        }

        if (error is null)
        {
            request.Events.Writer.TryComplete();
        }
        else
        {
            request.Events.Writer.TryComplete(error);
        }

        return true;
    }

    /// <summary>Counts an iteration that computed <paramref name="rows"/> rows.</summary>
    protected void Counted(int rows)
    {
        Interlocked.Add(ref _rowsComputed, rows);
        Interlocked.Increment(ref _iterations);
    }

    /// <summary>
    /// A graph call failed: if the model version is gone (unloaded, replaced, shutting down) nothing on this loop can
    /// run any more, so it closes; otherwise the requests of the failed iteration fail and the loop goes on.
    /// </summary>
    protected void OnIterationFailed(Exception e, IReadOnlyCollection<TRequest> touched, int rows)
    {
        LogIterationFailed(rows, touched.Count, e);
        if (e is ModelNotReadyException || Stopping.IsCancellationRequested)
        {
            CloseWith(e is OperationCanceledException ? new ModelNotReadyException(ModelName, "the server is shutting down.") : e);
            return;
        }

        foreach (TRequest r in touched)
        {
            Finish(r, e);
        }
    }

    private async Task RunLoopAsync()
    {
        var batch = new List<TItem>();
        try
        {
            while (true)
            {
                long started = Time.GetTimestamp();
                int rows;
                lock (_lock)
                {
                    DropEndedLocked();
                    AdmitLocked(started);
                    if (_active.Count == 0)
                    {
                        _looping = false;
                        return;
                    }

                    batch.Clear();
                    batch.AddRange(_active);
                    rows = _activeRows;
                }

                await RunIterationAsync(batch, rows, started);
            }
        }
        catch (Exception e)
        {
            // Never leave callers hanging: a failure of the loop itself fails everything it holds.
            CloseWith(e);
        }
    }

    private void DropEndedLocked()
    {
        _active.RemoveAll(s => IsDone(s) || OwnerOf(s).Ended);
        int rows = 0;
        foreach (TItem s in _active)
        {
            rows += RowsOf(s);
        }

        _activeRows = rows;
    }

    /// <summary>FIFO admission, per item, while the rows fit the cap; the head is never skipped.</summary>
    private void AdmitLocked(long now)
    {
        while (_waiting.First is { } node)
        {
            var r = (TRequest)node.Value;
            while (r.Admitted < r.Items.Length)
            {
                TItem s = r.Items[r.Admitted];

                // An empty iteration always takes the head, so a guided sample still runs with a cap of 1.
                if (_activeRows > 0 && _activeRows + RowsOf(s) > RowCap)
                {
                    return;
                }

                if (r.Admitted == 0)
                {
                    r.Timings.Add(new InferenceResult { Outputs = NoOutputs, QueueTime = Time.GetElapsedTime(r.SubmittedAt, now) });
                }

                _active.Add(s);
                _activeRows += RowsOf(s);
                r.Admitted++;
                _queuedItems--;
            }

            _waiting.RemoveFirst();
        }
    }

    protected void CloseWith(Exception reason)
    {
        List<TRequest> all;
        lock (_lock)
        {
            _closed ??= reason;
            _looping = false;
            all = [.. _requests];
        }

        foreach (TRequest r in all)
        {
            Finish(r, reason);
        }

        LogClosed(reason.Message);
        OnClosed?.Invoke();
        _closedForGood.TrySetResult();
    }

    /// <summary>Stops the loop; waiting and running requests fail with <see cref="ModelNotReadyException"/>.</summary>
    public void Dispose()
    {
        bool running;
        lock (_lock)
        {
            running = _looping;
        }

        Stopping.Cancel();
        if (!running)
        {
            CloseWith(new ModelNotReadyException(ModelName, "the server is shutting down."));
        }
    }
}
