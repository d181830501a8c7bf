using System.Runtime.CompilerServices;
using System.Threading.Channels;
using GenService.Inference;
using GenService.Inference.Callers;
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

    /// <summary>The request's place in its caller's waiting queue (guarded by the loop's lock).</summary>
    public LinkedListNode<IterationRequest<TItem, TEvent>>? Node { get; set; }

    /// <summary>Who asked (<see cref="CallerContext.Current"/> when it was submitted): its turn in fair admission.</summary>
    public string Caller { get; set; } = CallerContext.Anonymous;

    /// <summary>How long it may take from submission (the loop's deadline, or the caller's shorter one).</summary>
    public TimeSpan Deadline { get; set; }

    /// <summary>Ends the request with <see cref="DeadlineExceededException"/> when its deadline passes.</summary>
    public ITimer? DeadlineTimer { get; set; }

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
/// requests per caller, fair admission per item under a cap on rows per iteration, deadlines, cancellation, closing.
/// <code>
///  RunRequestAsync(r) ──► waiting (one FIFO per caller) ──admit items round-robin while rows ≤ cap──► active items
///                              ▲ cancel / reader leaves / deadline: out at once                         │
///   loop (one async task while there is work; exits when idle):                                        ▼
///     1. drop done items and every item of an ended request; admit one item of the head request of the caller
///        whose turn it is, that caller to the back of the turns, and again, until the next item does not fit
///     2. RunIterationAsync(active items): the family's graph call(s) and per-item advance (subclass)
/// </code>
/// Why per item: a large request can be partly admitted next to running work, and a finished item frees its rows at
/// once. Why round-robin across callers (<see cref="CallerQueues{T}"/>): one caller's backlog must not hold back another
/// caller's request; the bound is that with k callers waiting, a caller's next item is among the next k items admitted
/// once rows free up, whatever the others have queued (admitted items run to the end: there is no preemption). Why the
/// turn is never skipped when its item does not fit: a wide item (a guided sample's two rows) is never starved by a
/// stream of narrow ones. Within one caller, requests keep FIFO order.
/// Every request has a deadline from submission (<see cref="Deadline"/>, or the caller's shorter
/// <see cref="RequestDeadline"/>): when it passes the request fails with <see cref="DeadlineExceededException"/> and its
/// items leave before the next iteration.
/// </summary>
internal abstract class IterationLoop<TRequest, TItem, TEvent> : IIterationLoop
    where TRequest : IterationRequest<TItem, TEvent>
    where TItem : class
    where TEvent : class
{
    // Admission wait enters a request's queue_ms through InferenceTimings, which sums InferenceResults.
    private static readonly Dictionary<string, Tensor> NoOutputs = [];

    private readonly Lock _lock = new();
    private readonly CallerQueues<IterationRequest<TItem, TEvent>> _waiting;
    private readonly List<TItem> _active = [];
    private readonly HashSet<TRequest> _requests = [];
    private readonly TaskCompletionSource _closedForGood = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly int _maxQueuedItems;
    private int _activeRows;
    private bool _looping;
    private Exception? _closed;
    private long _rowsComputed;
    private long _iterations;

    protected IterationLoop(string modelName, int rowCap, int maxQueuedItems, TimeProvider time, GenerationTelemetry telemetry)
    {
        ModelName = modelName;
        RowCap = rowCap;
        _maxQueuedItems = maxQueuedItems;
        Time = time;
        _waiting = new(time);
        Telemetry = telemetry;
    }

    /// <summary>The configured default of <see cref="Deadline"/>: <c>GenService:DefaultDeadlineMs</c>'s default.</summary>
    public static readonly TimeSpan DefaultDeadline = TimeSpan.FromMilliseconds(30000);

    /// <summary>
    /// How long a request may take from submission to its result (queueing and every iteration); a caller may ask for
    /// less (<see cref="RequestDeadline"/>), never more.
    /// </summary>
    public TimeSpan Deadline { get; init; } = DefaultDeadline;

    /// <summary>
    /// Load shedding: a request whose caller's own waiting items would take longer than this fraction of its deadline
    /// to be admitted (at the rate that caller is being served, <see cref="CallerQueues{T}.EstimatedWait"/>) is refused
    /// at once with 429 and Retry-After instead of timing out later; the rest of the deadline is for computing it.
    /// 0 turns it off (<c>GenService:{Diffusion,Ar}:ShedWaitFraction</c>).
    /// </summary>
    public double ShedWaitFraction { get; init; } = LoopOptions.DefaultShedWaitFraction;

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

    /// <summary>Items (samples, sequences) of waiting requests not yet admitted.</summary>
    public int WaitingItems
    {
        get
        {
            lock (_lock)
            {
                return _waiting.WaitingItems;
            }
        }
    }

    protected TimeProvider Time { get; }

    /// <summary>Network evaluations, cancellations and rejections (genservice.network.evaluations, .cancelled, .rejected).</summary>
    protected GenerationTelemetry Telemetry { get; }

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

    /// <summary>A request failed alone after its iteration's call was re-run apart, while others computed: count and log it.</summary>
    protected abstract void OnIsolated(string reason, int computed);

    /// <summary>
    /// Ends the requests of a failed call that also failed when re-run alone (<see cref="IterationIsolation"/>): when
    /// <paramref name="computed"/> other parts succeeded, each is blamed (400, <see cref="OnIsolated"/>); when none did,
    /// nothing shows the model can compute the call, so each keeps <paramref name="original"/> (500, logged once).
    /// </summary>
    protected void EndFailedAlone(List<(TRequest Owner, Exception Error)> failed, int computed, Exception original, int rows)
    {
        if (computed == 0)
        {
            LogIterationFailed(rows, failed.Count, original);
        }

        foreach ((TRequest owner, Exception alone) in failed)
        {
            if (computed > 0)
            {
                InputNotComputableException blame = InputNotComputableException.For(Graph.V2Name, alone);
                OnIsolated(blame.Reason, computed);
                Finish(owner, blame);
            }
            else
            {
                Finish(owner, original);
            }
        }
    }

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
        // Who asks and by when, read from the submitting request's async context.
        DateTimeOffset now = Time.GetUtcNow();
        request.Caller = CallerContext.Current;
        request.Deadline = RequestDeadline.Earliest(now + Deadline) - now;
        if (request.Deadline <= TimeSpan.Zero)
        {
            Telemetry.Rejected(ModelName, Graph.Role, "deadline");
            throw new DeadlineExceededException($"{Graph.V2Name} (iteration loop)", TimeSpan.Zero);
        }

        bool start = false;
        lock (_lock)
        {
            if (_closed is not null)
            {
                throw _closed is ModelNotReadyException ? new ModelNotReadyException(ModelName, "this version of the model was closed; fetch the model again.") : _closed;
            }

            int count = request.Items.Length;
            if (_waiting.WaitingItems + count > _maxQueuedItems && _waiting.WaitingItems > 0)
            {
                Telemetry.Rejected(ModelName, Graph.Role, "queue_full");
                throw new QueueFullException($"{Graph.V2Name} (iteration loop)", _maxQueuedItems, TimeSpan.FromSeconds(1));
            }

            if (ShedWaitFraction > 0 && _waiting.EstimatedWait(request.Caller) is { } wait && wait > request.Deadline * ShedWaitFraction)
            {
                Telemetry.Rejected(ModelName, Graph.Role, "backlog");
                throw new CallerBacklogException($"{Graph.V2Name} (iteration loop)", wait, request.Deadline, wait - (request.Deadline * ShedWaitFraction));
            }

            request.Node = _waiting.Enqueue(request.Caller, request, count);
            _requests.Add(request);
            if (!_looping)
            {
                _looping = true;
                start = true;
            }
        }

        // Armed after queueing: if it fires at once it finds the request and ends it.
        request.DeadlineTimer = Time.CreateTimer(static s =>
        {
            var (self, r) = ((IterationLoop<TRequest, TItem, TEvent>, TRequest))s!;
            self.OnDeadline(r);
        }, (this, request), request.Deadline, Timeout.InfiniteTimeSpan);
        if (request.Ended)
        {
            request.DeadlineTimer.Dispose();
        }

        if (start)
        {
            // A fresh loop per busy period: no thread or task is kept while the model is idle. Started without the
            // submitting request's async context, whose caller and deadline are that request's, not the loop's.
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(RunLoopAsync);
            }
        }
    }

    /// <summary>The request's deadline passed: it fails with 504 and its items leave before the next iteration.</summary>
    private void OnDeadline(TRequest request)
    {
        // The stopped-early log line (GenerationTelemetry.Ended, with this reason) says what it computed.
        if (Finish(request, new DeadlineExceededException(Graph.V2Name, request.Deadline)))
        {
            Telemetry.Rejected(ModelName, Graph.Role, "deadline");
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
            // Once per request: Finish ends it once, whichever of the caller, the deadline or a failure comes first.
            Telemetry.Cancelled(ModelName, Graph.Role);
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
                _waiting.Remove(request.Caller, request.Node, request.Items.Length - request.Admitted);
            }

            _requests.Remove(request);
        }

        request.DeadlineTimer?.Dispose();

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

    /// <summary>
    /// Fair admission, one item per turn round-robin across callers (FIFO within a caller), while the rows fit the cap;
    /// the caller whose turn it is is never skipped.
    /// </summary>
    private void AdmitLocked(long now)
    {
        while (_waiting.Next is { } next)
        {
            var r = (TRequest)next;
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
            _waiting.Served(requestDone: r.Admitted == r.Items.Length, now);
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
