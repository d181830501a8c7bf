using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using GenService.Api.Families.Common;
using GenService.Inference;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;

namespace GenService.Api.Families.Diffusion;

/// <summary>
/// Iteration-level batching for one diffusion denoiser (one loaded model version): every in-flight request
/// contributes its samples' current rows to ONE denoiser call per iteration, each row at its own timestep.
/// <code>
///  RunAsync(job) ──► waiting (FIFO, per request) ──admit samples while rows ≤ cap──► active samples
///                         ▲ cancel: leaves at once                                     │
///                         │                                         ┌──────────────────┘
///   loop (one async task while there is work; exits when idle):     ▼
///     1. drop samples of cancelled/failed requests; admit FIFO (per sample, never skipping the head)
///     2. one denoiser call: [x_a scaled, t_a, y_a] [x_b, t_b, y_b] [x_b, t_b, null] ... (guided = 2 rows)
///     3. advance every sample with its own sampler state and noise stream; progress per request when its
///        slowest sample completes a step; finished requests complete and leave, freeing rows
/// </code>
/// Why per sample and not per request: a 64-sample request can be partly admitted next to running work, and a
/// finished sample frees its rows at once. Why FIFO without skipping: a large head request is never starved by
/// a stream of small ones. Sample results do not depend on the company they keep: each sample's arithmetic and
/// noise stream are its own (<see cref="DiffusionSampleCursor"/>), only the rows around it change.
/// </summary>
internal sealed class DiffusionScheduler : IIterationScheduler
{
    // Admission wait enters a request's queue_ms through InferenceTimings, which sums InferenceResults.
    private static readonly Dictionary<string, Inference.Tensors.Tensor> NoOutputs = [];

    private readonly DenoiserBatch _batch;
    private readonly int _maxQueuedSamples;
    private readonly IterationSchedulerMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<DiffusionScheduler>? _onClosed;
    private readonly CancellationTokenSource _stopping = new();
    private readonly float[] _scratch;

    private readonly Lock _lock = new();
    private readonly LinkedList<ScheduledRequest> _waiting = new();
    private readonly List<DiffusionSampleCursor> _active = [];
    private readonly HashSet<ScheduledRequest> _requests = [];
    private int _activeRows;
    private int _queuedSamples;
    private bool _looping;
    private Exception? _closed;
    private long _rowsComputed;
    private long _iterations;

    public DiffusionScheduler(IGraphRunner denoiser, Inference.Manifest.ModelManifest manifest, int maxRowsPerIteration, int maxQueuedSamples,
        IterationSchedulerMetrics? metrics, TimeProvider time, ILogger logger, Action<DiffusionScheduler>? onClosed = null)
    {
        _batch = new DenoiserBatch(denoiser, manifest);
        RowCap = maxRowsPerIteration > 0 ? maxRowsPerIteration : denoiser.MaxBatchSize;
        _maxQueuedSamples = maxQueuedSamples;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _onClosed = onClosed;
        ModelName = manifest.Name;
        _scratch = new float[3 * manifest.SampleElements];
        Log.SchedulerStarted(_logger, denoiser.V2Name, RowCap);
    }

    public IGraphRunner Denoiser => _batch.Denoiser;

    IGraphRunner IIterationScheduler.Graph => Denoiser;

    public string ModelName { get; }

    /// <summary>Most rows per iteration (a lone guided sample may exceed a cap of 1).</summary>
    public int RowCap { get; }

    /// <summary>Denoiser rows computed so far (tests: a cancelled request stops adding to it).</summary>
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

    /// <summary>
    /// Runs the job inside the shared loop: <see cref="DiffusionStepDone"/> per step (once every sample of the job
    /// has made it; only when <paramref name="progress"/> is true), then <see cref="DiffusionCompleted"/>. Leaving
    /// the enumeration early, or cancelling, drops the job's samples before the next iteration.
    /// </summary>
    /// <param name="job">The validated request.</param>
    /// <param name="cancellationToken">The caller's token (RequestAborted).</param>
    /// <param name="progress">
    /// False when nobody reads the step events (the JSON answer): each event would wake the caller's task, one
    /// thread-pool hop per request per iteration, which on a busy CPU costs more than the denoiser call.
    /// </param>
    public async IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, [EnumeratorCancellation] CancellationToken cancellationToken, bool progress = true)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ScheduledRequest request = Submit(job, progress);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static (state, ct) => ((ScheduledRequest)state!).Owner.Cancel((ScheduledRequest)state!, new OperationCanceledException(ct)), request);
        try
        {
            await foreach (DiffusionEvent e in request.Events.Reader.ReadAllAsync(cancellationToken))
            {
                yield return e;
            }
        }
        finally
        {
            // The consumer left (finished, failed, cancelled or simply stopped enumerating): stop computing for it.
            Cancel(request, new OperationCanceledException("The caller stopped reading the diffusion events."));
        }
    }

    private ScheduledRequest Submit(DiffusionJob job, bool progress)
    {
        var request = new ScheduledRequest(this, job, _time.GetTimestamp(), progress);
        bool start = false;
        lock (_lock)
        {
            if (_closed is not null)
            {
                throw _closed is ModelNotReadyException ? new ModelNotReadyException(ModelName, "this version of the model was closed; fetch the model again.") : _closed;
            }

            if (_queuedSamples + job.Count > _maxQueuedSamples && _queuedSamples > 0)
            {
                throw new QueueFullException($"{Denoiser.V2Name} (diffusion scheduler)", _maxQueuedSamples, TimeSpan.FromSeconds(1));
            }

            _waiting.AddLast(request.Node);
            _requests.Add(request);
            _queuedSamples += job.Count;
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

        return request;
    }

    /// <summary>Removes the request (waiting or running) and ends its event stream with <paramref name="reason"/>.</summary>
    private void Cancel(ScheduledRequest request, Exception reason)
    {
        // A reader that leaves right after reading the result is not a cancellation.
        if (request.Finished)
        {
            Finish(request, error: null);
            return;
        }

        if (Finish(request, reason))
        {
            Log.RequestCancelled(_logger, Denoiser.V2Name, request.ReportedSteps, request.Job.StepsToRun);
        }
    }

    /// <summary>Ends a request once: out of the queue, its samples dropped at the next iteration. False if already ended.</summary>
    private bool Finish(ScheduledRequest request, Exception? error)
    {
        lock (_lock)
        {
            if (request.Ended)
            {
                return false;
            }

            request.Ended = true;
            if (request.Node.List is not null)
            {
                _waiting.Remove(request.Node);
                _queuedSamples -= request.Job.Count - request.Admitted;
            }

            _requests.Remove(request);
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

    private async Task RunLoopAsync()
    {
        var batch = new List<DiffusionSampleCursor>();
        var touched = new List<ScheduledRequest>();
        try
        {
            while (true)
            {
                long started = _time.GetTimestamp();
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

                await RunIterationAsync(batch, rows, touched, started);
            }
        }
        catch (Exception e)
        {
            // Never leave callers hanging: a failure of the loop itself fails everything it holds.
            CloseWith(e);
        }
    }

    private async Task RunIterationAsync(List<DiffusionSampleCursor> batch, int rows, List<ScheduledRequest> touched, long started)
    {
        InferenceResult result;
        try
        {
            // The iteration is the batch: it leaves the batcher at once instead of waiting max_queue_delay_ms for
            // company that cannot come (this loop is the denoiser's main caller and is waiting on this call).
            result = await Denoiser.InferAsync(_batch.Build(batch, rows, dispatchImmediately: true), _stopping.Token);
        }
        catch (Exception e)
        {
            CollectRequests(batch, touched);
            Log.IterationFailed(_logger, Denoiser.V2Name, rows, touched.Count, e);
            if (e is ModelNotReadyException || _stopping.IsCancellationRequested)
            {
                // The model version is gone (unloaded or replaced): nothing on this loop can run any more.
                CloseWith(e is OperationCanceledException ? new ModelNotReadyException(ModelName, "the server is shutting down.") : e);
                return;
            }

            foreach (ScheduledRequest r in touched)
            {
                Finish(r, e);
            }

            return;
        }

        _batch.Advance(batch, result.Outputs[_batch.PredictionName].AsFloats(), _scratch);
        Interlocked.Add(ref _rowsComputed, rows);

        Interlocked.Increment(ref _iterations);

        CollectRequests(batch, touched);
        foreach (ScheduledRequest r in touched)
        {
            if (r.Ended)
            {
                continue;
            }

            r.Timings.Add(result);
            r.Report();
            if (r.Finished)
            {
                Finish(r, error: null);
            }
        }

        _metrics?.RecordIteration(ModelName, rows, _time.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>The distinct requests of a batch, in batch order.</summary>
    private static void CollectRequests(List<DiffusionSampleCursor> batch, List<ScheduledRequest> requests)
    {
        requests.Clear();
        ScheduledRequest? last = null;
        foreach (DiffusionSampleCursor s in batch)
        {
            var r = (ScheduledRequest)s.Owner!;
            if (!ReferenceEquals(r, last) && !requests.Contains(r))
            {
                requests.Add(r);
            }

            last = r;
        }
    }

    /// <summary>Drops finished samples and every sample of an ended (cancelled, failed, completed) request.</summary>
    private void DropEndedLocked()
    {
        int rows = 0;
        _active.RemoveAll(s => s.Done || ((ScheduledRequest)s.Owner!).Ended);
        foreach (DiffusionSampleCursor s in _active)
        {
            rows += s.Rows;
        }

        _activeRows = rows;
    }

    /// <summary>FIFO admission, per sample, while the rows fit the cap; the head is never skipped.</summary>
    private void AdmitLocked(long now)
    {
        while (_waiting.First is { } node)
        {
            ScheduledRequest r = node.Value;
            while (r.Admitted < r.Job.Count)
            {
                DiffusionSampleCursor s = r.Samples[r.Admitted];

                // An empty iteration always takes the head, so a guided sample still runs with a cap of 1.
                if (_activeRows > 0 && _activeRows + s.Rows > RowCap)
                {
                    return;
                }

                if (r.Admitted == 0)
                {
                    r.Timings.Add(new InferenceResult { Outputs = NoOutputs, QueueTime = _time.GetElapsedTime(r.SubmittedAt, now) });
                }

                _active.Add(s);
                _activeRows += s.Rows;
                r.Admitted++;
                _queuedSamples--;
            }

            _waiting.RemoveFirst();
        }
    }

    private void CloseWith(Exception reason)
    {
        List<ScheduledRequest> all;
        lock (_lock)
        {
            _closed ??= reason;
            _looping = false;
            all = [.. _requests];
        }

        foreach (ScheduledRequest r in all)
        {
            Finish(r, reason);
        }

        Log.SchedulerClosed(_logger, Denoiser.V2Name, reason.Message);
        _onClosed?.Invoke(this);
    }

    /// <summary>Stops the loop; waiting and running requests fail with <see cref="ModelNotReadyException"/>.</summary>
    public void Dispose()
    {
        bool running;
        lock (_lock)
        {
            running = _looping;
        }

        _stopping.Cancel();
        if (!running)
        {
            CloseWith(new ModelNotReadyException(ModelName, "the server is shutting down."));
        }
    }

    /// <summary>A request inside the scheduler: its samples, how many are admitted, and its event stream.</summary>
    private sealed class ScheduledRequest
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        private readonly bool _progress;

        public ScheduledRequest(DiffusionScheduler owner, DiffusionJob job, long submittedAt, bool progress)
        {
            _progress = progress;
            Owner = owner;
            Job = job;
            SubmittedAt = submittedAt;
            Node = new LinkedListNode<ScheduledRequest>(this);
            (Samples, Intermediates) = DiffusionPipeline.Cursors(job);
            foreach (DiffusionSampleCursor s in Samples)
            {
                s.Owner = this;
            }
        }

        public DiffusionScheduler Owner { get; }

        public DiffusionJob Job { get; }

        public long SubmittedAt { get; }

        public LinkedListNode<ScheduledRequest> Node { get; }

        public DiffusionSampleCursor[] Samples { get; }

        public List<Intermediate>[]? Intermediates { get; }

        // Unbounded: events are small, and the loop must never wait on a slow reader.
        public Channel<DiffusionEvent> Events { get; } = Channel.CreateUnbounded<DiffusionEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        public InferenceTimings Timings { get; } = new();

        /// <summary>Samples admitted so far (guarded by the scheduler's lock).</summary>
        public int Admitted { get; set; }

        /// <summary>Completed, failed or cancelled (guarded by the scheduler's lock; read without it by the loop).</summary>
        public bool Ended
        {
            get => Volatile.Read(ref _ended);
            set => Volatile.Write(ref _ended, value);
        }

        private bool _ended;

        public int ReportedSteps { get; private set; }

        public bool Finished => ReportedSteps == Job.StepsToRun;

        /// <summary>A progress event for every step all samples have now completed; the result after the last.</summary>
        public void Report()
        {
            int done = int.MaxValue;
            foreach (DiffusionSampleCursor s in Samples)
            {
                done = Math.Min(done, s.StepsDone);
            }

            while (ReportedSteps < done)
            {
                ReportedSteps++;
                if (_progress)
                {
                    Events.Writer.TryWrite(new DiffusionStepDone(DiffusionPipeline.Progress(Job, ReportedSteps, _clock)));
                }
            }

            if (Finished)
            {
                Events.Writer.TryWrite(new DiffusionCompleted(Job.X, Intermediates, Timings));
            }
        }
    }
}
