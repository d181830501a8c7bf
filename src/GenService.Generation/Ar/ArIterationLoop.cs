using GenService.Generation.Loops;
using GenService.Inference.Batching;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Autoregressive;
using Microsoft.Extensions.Logging;

namespace GenService.Generation.Ar;

/// <summary>
/// Iteration-level batching for one AR decoder (one loaded model version), as in Orca / TGI / vLLM: every in-flight
/// sequence of every request advances by one token per iteration, in as few decoder calls as the graph allows.
/// <code>
///  RunAsync(job) ──► waiting (FIFO, per request) ──admit sequences while rows ≤ cap──► active sequences
///                         ▲ cancel: leaves at once                                        │
///   loop (one async task while there is work; exits when idle):                          ▼
///     1. drop finished sequences and those of cancelled requests; admit FIFO (per sequence, never skipping the head)
///     2. group the active sequences into calls, then one call per group:
///        KV cache   rows by uncached width w (1 for a running sequence; start + prompt for a new one):
///                     past_i = the sequence's own cache, left-padded with zeros to the group's longest past L
///                     attention_mask_i = [0 × (L − len_i), 1 × len_i, 1 × w]   position_ids_i = len_i .. len_i+w−1
///                     present_i[L .. L+w) → appended to the sequence's cache
///                   (graphs without attention_mask and position_ids: rows grouped by past length too, no padding)
///        recompute  all rows in one call, right-padded to the longest sequence: causal, so position j of a row never
///                   sees the padding after it; logits at each row's own last position
///     3. each sequence picks its token from its own logits and noise stream (<see cref="ArSequence"/>); finished
///        sequences free their row at once; a request completes when its last sequence ends
/// </code>
/// Queueing, FIFO admission per sequence, cancellation and closing are the shared <see cref="IterationLoop{TRequest, TItem, TEvent}"/>.
/// Why per-sequence caches copied into each call, rather than one batch cache: membership changes every few
/// iterations, and a copy of the pasts (a few KB per row here) is cheap next to the call and keeps every row's
/// numbers its own. Sample i's tokens do not depend on the company it keeps: padded keys are masked out (exactly
/// zero weight) and each sequence draws its own uniforms.
/// </summary>
internal sealed class ArIterationLoop : IterationLoop<ArIterationLoop.LoopRequest, ArSequence, ArEvent>
{
    private readonly ArDecoder _decoder;
    private readonly int _cacheCapacity;
    private readonly IterationLoopMetrics? _metrics;
    private readonly GenerationTelemetry _telemetry;
    private readonly ILogger _logger;
    private readonly float[] _scratch;
    private readonly List<LoopRequest> _touched = [];
    private long _calls;

    public ArIterationLoop(ArDecoder decoder, string modelName, int maxLength, int maxRowsPerIteration, int maxQueuedSequences,
        IterationLoopMetrics? metrics, GenerationTelemetry telemetry, TimeProvider time, ILogger logger, Action<ArIterationLoop>? onClosed = null)
        : base(modelName, maxRowsPerIteration > 0 ? maxRowsPerIteration : decoder.Runner.MaxBatchSize, maxQueuedSequences, time, telemetry)
    {
        _decoder = decoder;
        _cacheCapacity = maxLength;
        _metrics = metrics;
        _telemetry = telemetry;
        _logger = logger;
        OnClosed = onClosed is null ? null : () => onClosed(this);
        _scratch = new float[decoder.VocabSize];
        UsesCache = decoder.HasCache;
        Log.ArLoopStarted(_logger, decoder.Runner.V2Name, RowCap, UsesCache ? "kv-cache" : "recompute");
    }

    public override IGraphRunner Graph => _decoder.Runner;

    /// <summary>KV-cache path (true) or recomputation with right padding (false).</summary>
    public bool UsesCache { get; }

    /// <summary>Decoder calls so far (an iteration makes one per group).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>
    /// Runs the job inside the shared loop: with <paramref name="stream"/>, <see cref="ArTokenGenerated"/> and
    /// <see cref="ArSampleFinished"/> as they happen; always <see cref="ArCompleted"/> last. Leaving the enumeration
    /// early, or cancelling, drops the job's sequences before the next iteration.
    /// </summary>
    /// <param name="job">The validated request (its decoder must be this loop's graph).</param>
    /// <param name="cancellationToken">The caller's token (RequestAborted).</param>
    /// <param name="stream">
    /// False when nobody reads the token events (the JSON answer): each event would wake the caller's task, one
    /// thread-pool hop per request per token.
    /// </param>
    public IAsyncEnumerable<ArEvent> RunAsync(ArJob job, CancellationToken cancellationToken, bool stream = true)
    {
        if (!ReferenceEquals(job.Decoder.Runner, Graph))
        {
            throw new ArgumentException($"The job's decoder is {job.Decoder.Runner.V2Name} of another model version, not this loop's.", nameof(job));
        }

        return RunRequestAsync(new LoopRequest(job, Time.GetTimestamp(), stream), cancellationToken);
    }

    protected override int RowsOf(ArSequence item) => 1;

    protected override bool IsDone(ArSequence item) => item.Result is not null;

    protected override LoopRequest OwnerOf(ArSequence item) => (LoopRequest)item.Owner!;

    protected override async Task RunIterationAsync(List<ArSequence> batch, int rows, long started)
    {
        _touched.Clear();
        foreach (ArSequence s in batch)
        {
            var r = (LoopRequest)s.Owner!;
            if (!r.InIteration)
            {
                r.InIteration = true;
                _touched.Add(r);
            }
        }

        int computed = 0; // rows of the calls that succeeded (an isolated request's rows are not computed)
        try
        {
            foreach (List<ArSequence> group in Groups(batch))
            {
                // A request that failed in an earlier call of this iteration (isolated) computes nothing more.
                group.RemoveAll(s => ((LoopRequest)s.Owner!).Ended);
                foreach ((List<ArSequence> ran, InferenceResult result) in await RunGroupAsync(group))
                {
                    computed += ran.Count;
                    long call = Interlocked.Increment(ref _calls);
                    foreach (ArSequence s in ran)
                    {
                        var r = (LoopRequest)s.Owner!;
                        if (r.LastCall != call)
                        {
                            r.LastCall = call;
                            r.Calls++;
                            r.Timings.Add(result);
                        }
                    }
                }
            }
        }
        catch (Exception e)
        {
            _touched.ForEach(r => r.InIteration = false);
            OnIterationFailed(e, _touched, rows);
            return;
        }

        Counted(computed);
        foreach (LoopRequest r in _touched)
        {
            r.InIteration = false;
            if (!r.Ended && Array.TrueForAll(r.Items, s => s.Result is not null))
            {
                Finish(r, error: null, r.Complete());
            }
        }

        _metrics?.RecordIteration(ModelName, computed, Time.GetElapsedTime(started).TotalSeconds);
    }

    protected override void LogClosed(string reason) => Log.ArLoopClosed(_logger, Graph.V2Name, reason);

    protected override void LogCancelled(LoopRequest request) => Log.ArRequestCancelled(_logger, Graph.V2Name, request.Calls);

    protected override void LogIterationFailed(int rows, int requests, Exception exception) => Log.ArIterationFailed(_logger, Graph.V2Name, rows, requests, exception);

    protected override void OnIsolated(string reason, int computed)
    {
        _metrics?.RecordIsolated(ModelName);
        Log.IterationRequestIsolated(_logger, Graph.V2Name, reason, computed);
    }

    /// <summary>The request's network evaluations (its generated tokens, one decoder row each) and completion log.</summary>
    protected override void OnEnded(LoopRequest request, Exception? error)
    {
        long tokens = 0;
        foreach (ArSequence s in request.Items)
        {
            tokens += s.GeneratedCount;
        }

        _telemetry.Ended(ModelFamily.Ar, ModelName, request.Job.Count, tokens, request.Calls, LoopMode.Iteration, error);
    }

    /// <summary>The recompute path's split of iterations by prefix length (tests, diagnostics).</summary>
    internal PaddingPlanner Planner { get; } = new();

    /// <summary>
    /// The calls of one iteration. Recompute: by prefix length, as the <see cref="PaddingPlanner"/> finds fastest
    /// (one call until it has measured this decoder). KV cache: one per uncached width (new sequences with a prompt
    /// prefill apart from running ones, which feed one token), and per past length when pasts cannot be padded.
    /// </summary>
    private List<List<ArSequence>> Groups(List<ArSequence> batch)
    {
        if (!UsesCache)
        {
            return [.. Planner.Plan(batch.ConvertAll(s => s.Tokens.Count)).Select(group => group.ConvertAll(i => batch[i]))];
        }

        var groups = new List<List<ArSequence>>();
        var keys = new List<(int Width, int Past)>();
        bool merge = _decoder.CanMergePastLengths;
        foreach (ArSequence s in batch)
        {
            (int, int) key = (s.Tokens.Count - s.Cached, merge ? 0 : s.Cached);
            int at = keys.IndexOf(key);
            if (at < 0)
            {
                keys.Add(key);
                groups.Add([]);
                at = groups.Count - 1;
            }

            groups[at].Add(s);
        }

        return groups;
    }

    /// <summary>
    /// One call over <paramref name="group"/>; if it fails (and the model is still there), the group re-runs split by
    /// request (<see cref="IterationIsolation"/>): the sequences of requests that succeed advance in this iteration,
    /// requests that fail alone end (a 400 when another succeeded, else the original error). A call changes no
    /// sequence before it returns, so a failed call can be re-run as it was.
    /// </summary>
    private async Task<List<(List<ArSequence> Sequences, InferenceResult Result)>> RunGroupAsync(List<ArSequence> group)
    {
        if (group.Count == 0)
        {
            return [];
        }

        try
        {
            return [(group, await RunOnceAsync(group))];
        }
        catch (Exception e) when (IterationIsolation.CanIsolate(e, Stopping.Token))
        {
            List<(LoopRequest Owner, List<ArSequence> Items)> parts = Owners.Group(group, s => (LoopRequest)s.Owner!);
            var done = new List<(List<ArSequence> Sequences, InferenceResult Result)>();
            var failed = new List<(LoopRequest Owner, Exception Error)>();
            if (parts.Count == 1)
            {
                failed.Add((parts[0].Owner, e));
            }
            else
            {
                foreach ((LoopRequest owner, List<ArSequence> sequences) in parts)
                {
                    try
                    {
                        done.Add((sequences, await RunOnceAsync(sequences)));
                    }
                    catch (Exception alone) when (IterationIsolation.CanIsolate(alone, Stopping.Token))
                    {
                        failed.Add((owner, alone));
                    }
                }
            }

            EndFailedAlone(failed, done.Count, e, group.Count);
            return done;
        }
    }

    private Task<InferenceResult> RunOnceAsync(List<ArSequence> group) => UsesCache ? RunCachedAsync(group) : RunRecomputeAsync(group);

    private async Task<InferenceResult> RunCachedAsync(List<ArSequence> group)
    {
        int n = group.Count;
        int width = group[0].Tokens.Count - group[0].Cached;
        int past = group.Max(s => s.Cached);
        var ids = new long[n * width];
        long[]? mask = _decoder.AttentionMask is null ? null : new long[n * (past + width)];
        long[]? positions = _decoder.PositionIds is null ? null : new long[n * width];
        for (int r = 0; r < n; r++)
        {
            ArSequence s = group[r];
            for (int j = 0; j < width; j++)
            {
                ids[(r * width) + j] = s.Tokens[s.Cached + j];
                if (positions is not null)
                {
                    positions[(r * width) + j] = s.Cached + j;
                }
            }

            // [0 × (past − cached), 1 × cached, 1 × width]: the left padding is hidden.
            mask?.AsSpan((r * (past + width)) + past - s.Cached, s.Cached + width).Fill(1L);
        }

        // Pasts, presents and logits live in pooled arrays: as fresh arrays they are large-object-heap garbage every
        // iteration (CallBuffers says why that matters). The graph writes presents and logits straight into them.
        int slots = _decoder.CacheSlots;
        var buffers = new CallBuffers();
        Tensor[]? pasts = null;
        if (past > 0)
        {
            pasts = new Tensor[slots];
            for (int k = 0; k < slots; k++)
            {
                (int heads, int dh) = _decoder.SlotShape(k);
                pasts[k] = buffers.Floats(n, heads, past, dh);
                Span<float> data = pasts[k].FloatSpan;
                for (int r = 0; r < n; r++)
                {
                    ArSequence s = group[r];
                    int pad = (past - s.Cached) * dh;
                    for (int h = 0; h < heads; h++)
                    {
                        // [zeros × (past − cached), the sequence's own keys or values]: the padding is masked out, and
                        // zeroed because a pooled array holds old numbers (an Inf there would turn 0 weight into NaN).
                        Span<float> row = data.Slice(((r * heads) + h) * past * dh, past * dh);
                        row[..pad].Clear();
                        s.Cache?.Slots[k].AsSpan(h * _cacheCapacity * dh, s.Cached * dh).CopyTo(row[pad..]);
                    }
                }
            }
        }

        var call = new PackedCall(ids, n, width, past)
        {
            AttentionMask = mask,
            PositionIds = positions,
            Pasts = pasts,
            OutputBuffers = _decoder.OutputBuffers(buffers, n, width, past, withPresents: true),
        };
        (Tensor logits, Tensor[]? presents, InferenceResult result) = await _decoder.RunPackedAsync(call, wantPresent: true, dispatchImmediately: true, Stopping.Token);

        // The new keys and values sit at [past, past + width) of each row's present: append them to its own cache.
        for (int k = 0; k < slots; k++)
        {
            (int heads, int dh) = _decoder.SlotShape(k);
            ReadOnlySpan<float> present = presents![k].FloatSpan;
            int total = past + width;
            if (present.Length != n * heads * total * dh)
            {
                throw new InvalidOperationException($"Graph {Graph.V2Name} returned a present of {present.Length} values; expected [{n},{heads},{total},{dh}].");
            }

            for (int r = 0; r < n; r++)
            {
                ArSequence s = group[r];
                s.Cache ??= NewCache();
                for (int h = 0; h < heads; h++)
                {
                    present.Slice((((r * heads) + h) * total + past) * dh, width * dh)
                        .CopyTo(s.Cache.Slots[k].AsSpan(((h * _cacheCapacity) + s.Cached) * dh));
                }
            }
        }

        ReadOnlySpan<float> allLogits = logits.FloatSpan;
        for (int r = 0; r < n; r++)
        {
            group[r].Cached += width;
            Accept(group[r], allLogits.Slice(((r * width) + width - 1) * _decoder.VocabSize, _decoder.VocabSize));
        }

        buffers.Return();
        return result;
    }

    private async Task<InferenceResult> RunRecomputeAsync(List<ArSequence> group)
    {
        int n = group.Count;
        int length = group.Max(s => s.Tokens.Count);
        var ids = new long[n * length];
        long[]? mask = _decoder.AttentionMask is null ? null : new long[n * length];
        for (int r = 0; r < n; r++)
        {
            List<int> tokens = group[r].Tokens;
            for (int j = 0; j < tokens.Count; j++)
            {
                ids[(r * length) + j] = tokens[j];
            }

            // Right padding (token 0) after each sequence: causal attention keeps it out of the positions that count.
            mask?.AsSpan(r * length, tokens.Count).Fill(1L);
        }

        // Logits of every position of every row ([n, length, V]) land in a pooled array (see RunCachedAsync).
        var buffers = new CallBuffers();
        var call = new PackedCall(ids, n, length, 0) { AttentionMask = mask, OutputBuffers = _decoder.OutputBuffers(buffers, n, length, 0, withPresents: false) };
        long sent = Time.GetTimestamp();
        (Tensor logits, _, InferenceResult result) = await _decoder.RunPackedAsync(call, wantPresent: false, dispatchImmediately: true, Stopping.Token);
        Planner.Observe(n * length, Time.GetElapsedTime(sent).TotalSeconds);
        int vocab = _decoder.VocabSize;
        ReadOnlySpan<float> allLogits = logits.FloatSpan;
        for (int r = 0; r < n; r++)
        {
            Accept(group[r], allLogits.Slice(((r * length) + group[r].Tokens.Count - 1) * vocab, vocab));
        }

        buffers.Return();
        return result;
    }

    private ArSequenceCache NewCache()
    {
        var slots = new float[_decoder.CacheSlots][];
        for (int k = 0; k < slots.Length; k++)
        {
            (int heads, int dh) = _decoder.SlotShape(k);
            slots[k] = new float[heads * _cacheCapacity * dh];
        }

        return new ArSequenceCache(slots, _cacheCapacity);
    }

    private void Accept(ArSequence s, ReadOnlySpan<float> logits)
    {
        var r = (LoopRequest)s.Owner!;
        ArTokenGenerated token = s.Accept(logits, _scratch);
        if (r.Stream && !r.Ended)
        {
            r.Events.Writer.TryWrite(token);
            if (s.Result is not null)
            {
                r.Events.Writer.TryWrite(new ArSampleFinished(s.Sample, s.Result));
            }
        }
    }

    /// <summary>An AR request inside the loop: its sequences and the decoder calls it took part in.</summary>
    internal sealed class LoopRequest : IterationRequest<ArSequence, ArEvent>
    {
        private bool _completed;

        public LoopRequest(ArJob job, long submittedAt, bool stream)
            : base(NewSequences(job), submittedAt, stream)
        {
            Job = job;
            foreach (ArSequence s in Items)
            {
                s.Owner = this;
            }
        }

        public ArJob Job { get; }

        /// <summary>Decoder calls this request took part in (its nfe), and the last one counted (loop only).</summary>
        public int Calls { get; set; }

        public long LastCall { get; set; }

        /// <summary>Marker while the loop collects an iteration's requests (loop only).</summary>
        public bool InIteration { get; set; }

        public override bool Completed => Volatile.Read(ref _completed);

        /// <summary>Marks the request complete (a reader leaving now is no cancellation) and returns its result event.</summary>
        public ArCompleted Complete()
        {
            Volatile.Write(ref _completed, true);
            return new ArCompleted([.. Items.Select(s => s.Result!)], Calls, Timings);
        }

        private static ArSequence[] NewSequences(ArJob job)
        {
            var processor = new LogitsProcessor(job.Settings, job.Decoder.VocabSize);
            return [.. Enumerable.Range(0, job.Count).Select(i => new ArSequence(job, i, processor))];
        }
    }
}
