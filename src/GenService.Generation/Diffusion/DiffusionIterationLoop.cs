using System.Diagnostics;
using GenService.Generation.Loops;
using GenService.Inference.Batching;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;

namespace GenService.Generation.Diffusion;

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
/// Queueing, FIFO admission per sample, cancellation and closing are the shared <see cref="IterationLoop{TRequest, TItem, TEvent}"/>.
/// Sample results do not depend on the company they keep: each sample's arithmetic and noise stream are its own
/// (<see cref="DiffusionSampleCursor"/>), only the rows around it change.
/// </summary>
internal sealed class DiffusionIterationLoop : IterationLoop<DiffusionIterationLoop.LoopRequest, DiffusionSampleCursor, DiffusionEvent>
{
    private readonly DenoiserBatch _batch;
    private readonly IterationLoopMetrics? _metrics;
    private readonly GenerationTelemetry _telemetry;
    private readonly ILogger _logger;
    private float[] _scratch = [];
    private readonly List<LoopRequest> _touched = [];

    public DiffusionIterationLoop(IGraphRunner denoiser, ModelManifest manifest, int maxRowsPerIteration, int maxQueuedSamples,
        IterationLoopMetrics? metrics, GenerationTelemetry telemetry, TimeProvider time, ILogger logger, Action<DiffusionIterationLoop>? onClosed = null)
        : base(manifest.Name, maxRowsPerIteration > 0 ? maxRowsPerIteration : denoiser.MaxBatchSize, maxQueuedSamples, time, telemetry)
    {
        _batch = new DenoiserBatch(denoiser);
        _metrics = metrics;
        _telemetry = telemetry;
        _logger = logger;
        OnClosed = onClosed is null ? null : () => onClosed(this);
        Log.DiffusionLoopStarted(_logger, denoiser.V2Name, RowCap);
    }

    public IGraphRunner Denoiser => _batch.Denoiser;

    public override IGraphRunner Graph => Denoiser;

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
    public IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, CancellationToken cancellationToken, bool progress = true)
        => RunRequestAsync(new LoopRequest(job, Time.GetTimestamp(), progress), cancellationToken);

    protected override int RowsOf(DiffusionSampleCursor item) => item.Rows;

    protected override bool IsDone(DiffusionSampleCursor item) => item.Done;

    protected override LoopRequest OwnerOf(DiffusionSampleCursor item) => (LoopRequest)item.Owner!;

    /// <summary>
    /// Fewest rows worth a call of their own when an iteration is split across the denoiser's sessions: below it one
    /// call is faster than two (fixed per-call cost, and the short requests' latency is set by small iterations).
    /// </summary>
    internal const int MinRowsPerPart = 16;

    /// <summary>
    /// How many parts an iteration of <paramref name="rows"/> rows runs in: one per session of the denoiser (two
    /// batches at once on a CPU host with <c>instances</c> 2), as long as each part keeps <see cref="MinRowsPerPart"/>.
    /// </summary>
    internal static int PartsFor(int rows, int concurrency) => Math.Max(1, Math.Min(concurrency, rows / MinRowsPerPart));

    protected override async Task RunIterationAsync(List<DiffusionSampleCursor> batch, int rows, long started)
    {
        // One call per iteration, or, on a denoiser with several sessions, a few concurrent calls over contiguous
        // slices of the batch: the iteration then uses as many cores as the sessions have (each sample's row is
        // computed alone either way, so the split does not change any sample). Rows that cannot share a call (other
        // image sizes, or other timesteps for a UNet that takes one scalar timestep) go in calls of their own.
        List<List<DiffusionSampleCursor>> groups = _batch.Groups(batch);
        CallBuffers? buffers = new CallBuffers();
        bool isolated = false;
        List<(List<DiffusionSampleCursor> Samples, InferenceResult Result)> done;
        try
        {
            // The iteration is the batch: it leaves the batcher at once instead of waiting max_queue_delay_ms for
            // company that cannot come (this loop is the denoiser's main caller and is waiting on this call).
            if (groups.Count == 1 && PartsFor(rows, Denoiser.Concurrency) == 1)
            {
                done = [(batch, await Denoiser.InferAsync(_batch.Build(batch, rows, dispatchImmediately: true, buffers), Stopping.Token))];
            }
            else
            {
                List<List<DiffusionSampleCursor>> slices = [.. groups.SelectMany(g =>
                {
                    int groupRows = DenoiserBatch.RowsOf(g);
                    return Slices(g, groupRows, PartsFor(groupRows, Denoiser.Concurrency));
                })];
                InferenceResult[] results = await Task.WhenAll(slices.Select(slice =>
                    Denoiser.InferAsync(_batch.Build(slice, DenoiserBatch.RowsOf(slice), dispatchImmediately: true, buffers), Stopping.Token).AsTask()));
                done = [.. slices.Zip(results)];
            }
        }
        catch (Exception e)
        {
            // The rented arrays stay with the garbage collector: a failed call may still be running over them.
            CollectRequests(batch, _touched);
            if (_touched.Count < 2 || !IterationIsolation.CanIsolate(e, Stopping.Token))
            {
                OnIterationFailed(e, _touched, rows);
                return;
            }

            // Re-run apart by request; those that fail alone end, the others go on with this iteration.
            done = await IsolateAsync(batch, e);
            buffers = null;
            isolated = true;
            rows = 0;
            foreach ((List<DiffusionSampleCursor> samples, _) in done)
            {
                rows += DenoiserBatch.RowsOf(samples);
            }
        }

        // A request's timings add the calls that carried its rows: the one call, or each part it has samples in.
        bool split = done.Count > 1 || isolated;
        foreach ((List<DiffusionSampleCursor> samples, InferenceResult result) in done)
        {
            _scratch = DenoiserBatch.EnsureScratch(_scratch, samples);
            DenoiserBatch.Advance(samples, result.Outputs[_batch.PredictionName].FloatSpan, _scratch);
            if (split)
            {
                CollectRequests(samples, _touched);
                foreach (LoopRequest r in _touched)
                {
                    r.Timings.Add(result);
                    r.Calls++;
                }
            }
        }

        buffers?.Return();
        Counted(rows);
        CollectRequests(batch, _touched);
        foreach (LoopRequest r in _touched)
        {
            if (r.Ended)
            {
                continue;
            }

            if (!split)
            {
                r.Timings.Add(done[0].Result);
                r.Calls++;
            }

            r.Report();
            if (r.Finished)
            {
                Finish(r, error: null, new DiffusionCompleted(r.Job.X, r.Intermediates, r.Timings));
            }
        }

        _metrics?.RecordIteration(ModelName, rows, Time.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>
    /// The iteration's call failed with <paramref name="error"/> and held two or more requests: one call per request
    /// (per group of its samples that can share a call), fresh arrays. Requests that fail alone end here (a 400 if
    /// another succeeded, else the original error); the calls that succeeded are returned, to advance as usual.
    /// </summary>
    private async Task<List<(List<DiffusionSampleCursor> Samples, InferenceResult Result)>> IsolateAsync(List<DiffusionSampleCursor> batch, Exception error)
    {
        var done = new List<(List<DiffusionSampleCursor> Samples, InferenceResult Result)>();
        var failed = new List<(LoopRequest Owner, Exception Error)>();
        foreach ((LoopRequest owner, List<DiffusionSampleCursor> samples) in Owners.Group(batch, s => (LoopRequest)s.Owner!))
        {
            if (owner.Ended)
            {
                continue;
            }

            var own = new List<(List<DiffusionSampleCursor>, InferenceResult)>();
            try
            {
                foreach (List<DiffusionSampleCursor> group in _batch.Groups(samples))
                {
                    own.Add((group, await Denoiser.InferAsync(_batch.Build(group, DenoiserBatch.RowsOf(group), dispatchImmediately: true), Stopping.Token)));
                }
            }
            catch (Exception e) when (IterationIsolation.CanIsolate(e, Stopping.Token))
            {
                failed.Add((owner, e));
                continue;
            }

            done.AddRange(own);
        }

        EndFailedAlone(failed, done.Count == 0 ? 0 : _touched.Count - failed.Count, error, rows: 0);
        return done;
    }

    /// <summary>Contiguous slices of the batch with about equal rows (a guided sample's two rows stay together).</summary>
    internal static List<List<DiffusionSampleCursor>> Slices(List<DiffusionSampleCursor> batch, int rows, int parts)
    {
        var slices = new List<List<DiffusionSampleCursor>>(parts);
        var current = new List<DiffusionSampleCursor>();
        int taken = 0;
        foreach (DiffusionSampleCursor s in batch)
        {
            // Close the slice once it holds its share of the rows (the last slice takes the rest).
            if (current.Count > 0 && slices.Count < parts - 1 && taken >= (long)rows * (slices.Count + 1) / parts)
            {
                slices.Add(current);
                current = [];
            }

            current.Add(s);
            taken += s.Rows;
        }

        slices.Add(current);
        return slices;
    }

    protected override void LogClosed(string reason) => Log.DiffusionLoopClosed(_logger, Denoiser.V2Name, reason);

    protected override void LogCancelled(LoopRequest request) => Log.DiffusionRequestCancelled(_logger, Denoiser.V2Name, request.ReportedSteps, request.Job.StepsToRun);

    protected override void LogIterationFailed(int rows, int requests, Exception exception) => Log.DiffusionIterationFailed(_logger, Denoiser.V2Name, rows, requests, exception);

    protected override void OnIsolated(string reason, int computed)
    {
        _metrics?.RecordIsolated(ModelName);
        Log.IterationRequestIsolated(_logger, Denoiser.V2Name, reason, computed);
    }

    /// <summary>The request's network evaluations (each sample's steps done times its rows) and completion log.</summary>
    protected override void OnEnded(LoopRequest request, Exception? error)
    {
        long evaluations = 0;
        foreach (DiffusionSampleCursor s in request.Items)
        {
            evaluations += (long)s.StepsDone * s.Rows;
        }

        _telemetry.Ended(ModelFamily.Diffusion, ModelName, request.Job.Count, evaluations, request.Calls, LoopMode.Iteration, error);
    }

    /// <summary>The distinct requests of a batch, in batch order.</summary>
    private static void CollectRequests(List<DiffusionSampleCursor> batch, List<LoopRequest> requests)
    {
        requests.Clear();
        LoopRequest? last = null;
        foreach (DiffusionSampleCursor s in batch)
        {
            var r = (LoopRequest)s.Owner!;
            if (!ReferenceEquals(r, last) && !requests.Contains(r))
            {
                requests.Add(r);
            }

            last = r;
        }
    }

    /// <summary>A diffusion request inside the loop: its sample cursors, intermediates and step progress.</summary>
    internal sealed class LoopRequest : IterationRequest<DiffusionSampleCursor, DiffusionEvent>
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public LoopRequest(DiffusionJob job, long submittedAt, bool progress)
            : this(job, submittedAt, progress, DiffusionRequestLoop.Cursors(job))
        {
        }

        private LoopRequest(DiffusionJob job, long submittedAt, bool progress, (DiffusionSampleCursor[] Samples, List<DiffusionSnapshot>[]? Intermediates) cursors)
            : base(cursors.Samples, submittedAt, progress)
        {
            Job = job;
            Intermediates = cursors.Intermediates;
            foreach (DiffusionSampleCursor s in Items)
            {
                s.Owner = this;
            }
        }

        public DiffusionJob Job { get; }

        public List<DiffusionSnapshot>[]? Intermediates { get; }

        public int ReportedSteps { get; private set; }

        /// <summary>Denoiser calls that carried its rows (loop only).</summary>
        public int Calls { get; set; }

        public bool Finished => ReportedSteps == Job.StepsToRun;

        public override bool Completed => Finished;

        /// <summary>A progress event for every step all samples have now completed (the loop then finishes a finished request with its result).</summary>
        public void Report()
        {
            int done = int.MaxValue;
            foreach (DiffusionSampleCursor s in Items)
            {
                done = Math.Min(done, s.StepsDone);
            }

            while (ReportedSteps < done)
            {
                ReportedSteps++;
                if (Stream)
                {
                    Events.Writer.TryWrite(DiffusionRequestLoop.Progress(Job, ReportedSteps, _clock));
                }
            }
        }
    }
}
