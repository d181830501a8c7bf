using System.Diagnostics;
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
/// Queueing, FIFO admission per sample, cancellation and closing are the shared <see cref="IterationScheduler{TRequest, TItem, TEvent}"/>.
/// Sample results do not depend on the company they keep: each sample's arithmetic and noise stream are its own
/// (<see cref="DiffusionSampleCursor"/>), only the rows around it change.
/// </summary>
internal sealed class DiffusionScheduler : IterationScheduler<DiffusionScheduler.ScheduledRequest, DiffusionSampleCursor, DiffusionEvent>
{
    private readonly DenoiserBatch _batch;
    private readonly IterationSchedulerMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly float[] _scratch;
    private readonly List<ScheduledRequest> _touched = [];

    public DiffusionScheduler(IGraphRunner denoiser, Inference.Manifest.ModelManifest manifest, int maxRowsPerIteration, int maxQueuedSamples,
        IterationSchedulerMetrics? metrics, TimeProvider time, ILogger logger, Action<DiffusionScheduler>? onClosed = null)
        : base(manifest.Name, maxRowsPerIteration > 0 ? maxRowsPerIteration : denoiser.MaxBatchSize, maxQueuedSamples, time)
    {
        _batch = new DenoiserBatch(denoiser, manifest);
        _metrics = metrics;
        _logger = logger;
        OnClosed = onClosed is null ? null : () => onClosed(this);
        _scratch = new float[3 * manifest.SampleElements];
        Log.SchedulerStarted(_logger, denoiser.V2Name, RowCap);
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
        => RunRequestAsync(new ScheduledRequest(job, Time.GetTimestamp(), progress), cancellationToken);

    protected override int RowsOf(DiffusionSampleCursor item) => item.Rows;

    protected override bool IsDone(DiffusionSampleCursor item) => item.Done;

    protected override ScheduledRequest OwnerOf(DiffusionSampleCursor item) => (ScheduledRequest)item.Owner!;

    protected override async Task RunIterationAsync(List<DiffusionSampleCursor> batch, int rows, long started)
    {
        InferenceResult result;
        try
        {
            // The iteration is the batch: it leaves the batcher at once instead of waiting max_queue_delay_ms for
            // company that cannot come (this loop is the denoiser's main caller and is waiting on this call).
            result = await Denoiser.InferAsync(_batch.Build(batch, rows, dispatchImmediately: true), Stopping.Token);
        }
        catch (Exception e)
        {
            CollectRequests(batch, _touched);
            OnIterationFailed(e, _touched, rows);
            return;
        }

        _batch.Advance(batch, result.Outputs[_batch.PredictionName].AsFloats(), _scratch);
        Counted(rows);
        CollectRequests(batch, _touched);
        foreach (ScheduledRequest r in _touched)
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

        _metrics?.RecordIteration(ModelName, rows, Time.GetElapsedTime(started).TotalSeconds);
    }

    protected override void LogClosed(string reason) => Log.SchedulerClosed(_logger, Denoiser.V2Name, reason);

    protected override void LogCancelled(ScheduledRequest request) => Log.RequestCancelled(_logger, Denoiser.V2Name, request.ReportedSteps, request.Job.StepsToRun);

    protected override void LogIterationFailed(int rows, int requests, Exception exception) => Log.IterationFailed(_logger, Denoiser.V2Name, rows, requests, exception);

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

    /// <summary>A diffusion request inside the scheduler: its sample cursors, intermediates and step progress.</summary>
    internal sealed class ScheduledRequest : IterationRequest<DiffusionSampleCursor, DiffusionEvent>
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();

        public ScheduledRequest(DiffusionJob job, long submittedAt, bool progress)
            : this(job, submittedAt, progress, DiffusionPipeline.Cursors(job))
        {
        }

        private ScheduledRequest(DiffusionJob job, long submittedAt, bool progress, (DiffusionSampleCursor[] Samples, List<Intermediate>[]? Intermediates) cursors)
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

        public List<Intermediate>[]? Intermediates { get; }

        public int ReportedSteps { get; private set; }

        public bool Finished => ReportedSteps == Job.StepsToRun;

        public override bool Completed => Finished;

        /// <summary>A progress event for every step all samples have now completed; the result after the last.</summary>
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
