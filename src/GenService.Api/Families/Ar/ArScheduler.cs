using System.Runtime.CompilerServices;
using System.Threading.Channels;
using GenService.Api.Families.Common;
using GenService.Inference;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Autoregressive;
using Microsoft.Extensions.Logging;

namespace GenService.Api.Families.Ar;

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
/// Why per-sequence caches copied into each call, rather than one batch cache: membership changes every few
/// iterations, and a copy of the pasts (a few KB per row here) is cheap next to the call and keeps every row's
/// numbers its own. Sample i's tokens do not depend on the company it keeps: padded keys are masked out (exactly
/// zero weight) and each sequence draws its own uniforms.
/// </summary>
internal sealed class ArScheduler : IIterationScheduler
{
    private static readonly Dictionary<string, Tensor> NoOutputs = [];

    private readonly ArDecoder _decoder;
    private readonly int _maxQueuedSequences;
    private readonly int _cacheCapacity;
    private readonly IterationSchedulerMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<ArScheduler>? _onClosed;
    private readonly CancellationTokenSource _stopping = new();
    private readonly float[] _scratch;

    private readonly Lock _lock = new();
    private readonly LinkedList<ScheduledRequest> _waiting = new();
    private readonly List<ArSequence> _active = [];
    private readonly HashSet<ScheduledRequest> _requests = [];
    private int _queuedSequences;
    private bool _looping;
    private Exception? _closed;
    private long _rowsComputed;
    private long _iterations;
    private long _calls;

    public ArScheduler(ArDecoder decoder, string modelName, int maxLength, int maxRowsPerIteration, int maxQueuedSequences,
        IterationSchedulerMetrics? metrics, TimeProvider time, ILogger logger, Action<ArScheduler>? onClosed = null)
    {
        _decoder = decoder;
        RowCap = maxRowsPerIteration > 0 ? maxRowsPerIteration : decoder.Runner.MaxBatchSize;
        _maxQueuedSequences = maxQueuedSequences;
        _cacheCapacity = maxLength;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _onClosed = onClosed;
        ModelName = modelName;
        _scratch = new float[decoder.VocabSize];
        UsesCache = decoder.HasCache;
        Log.SchedulerStarted(_logger, decoder.Runner.V2Name, RowCap, UsesCache ? "kv-cache" : "recompute");
    }

    public IGraphRunner Graph => _decoder.Runner;

    public string ModelName { get; }

    /// <summary>Most sequences (rows) per iteration.</summary>
    public int RowCap { get; }

    /// <summary>KV-cache path (true) or recomputation with right padding (false).</summary>
    public bool UsesCache { get; }

    /// <summary>Decoder rows computed so far (tests: a cancelled request stops adding to it).</summary>
    public long RowsComputed => Interlocked.Read(ref _rowsComputed);

    /// <summary>Iterations run so far.</summary>
    public long Iterations => Interlocked.Read(ref _iterations);

    /// <summary>Decoder calls so far (an iteration makes one per group).</summary>
    public long Calls => Interlocked.Read(ref _calls);

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
    /// Runs the job inside the shared loop: with <paramref name="stream"/>, <see cref="ArTokenGenerated"/> and
    /// <see cref="ArSampleFinished"/> as they happen; always <see cref="ArCompleted"/> last. Leaving the enumeration
    /// early, or cancelling, drops the job's sequences before the next iteration.
    /// </summary>
    /// <param name="job">The validated request (its decoder must be this scheduler's graph).</param>
    /// <param name="cancellationToken">The caller's token (RequestAborted).</param>
    /// <param name="stream">
    /// False when nobody reads the token events (the JSON answer): each event would wake the caller's task, one
    /// thread-pool hop per request per token.
    /// </param>
    public async IAsyncEnumerable<ArEvent> RunAsync(ArJob job, [EnumeratorCancellation] CancellationToken cancellationToken, bool stream = true)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ScheduledRequest request = Submit(job, stream);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static (state, ct) => ((ScheduledRequest)state!).Owner.Finish((ScheduledRequest)state!, new OperationCanceledException(ct)), request);
        try
        {
            await foreach (ArEvent e in request.Events.Reader.ReadAllAsync(cancellationToken))
            {
                yield return e;
            }
        }
        finally
        {
            // The consumer left (finished, failed, cancelled or simply stopped reading): stop computing for it.
            if (Finish(request, request.Completed ? null : new OperationCanceledException("The caller stopped reading the ar events.")) && !request.Completed)
            {
                Log.RequestCancelled(_logger, Graph.V2Name, request.Calls);
            }
        }
    }

    private ScheduledRequest Submit(ArJob job, bool stream)
    {
        if (!ReferenceEquals(job.Decoder.Runner, Graph))
        {
            throw new ArgumentException($"The job's decoder is {job.Decoder.Runner.V2Name} of another model version, not this scheduler's.", nameof(job));
        }

        var request = new ScheduledRequest(this, job, _time.GetTimestamp(), stream);
        bool start = false;
        lock (_lock)
        {
            if (_closed is not null)
            {
                throw _closed is ModelNotReadyException ? new ModelNotReadyException(ModelName, "this version of the model was closed; fetch the model again.") : _closed;
            }

            if (_queuedSequences + job.Count > _maxQueuedSequences && _queuedSequences > 0)
            {
                throw new QueueFullException($"{Graph.V2Name} (ar scheduler)", _maxQueuedSequences, TimeSpan.FromSeconds(1));
            }

            _waiting.AddLast(request.Node);
            _requests.Add(request);
            _queuedSequences += job.Count;
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

    /// <summary>Ends a request once: out of the queue, its sequences dropped at the next iteration. False if already ended.</summary>
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
                _queuedSequences -= request.Job.Count - request.Admitted;
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
        var batch = new List<ArSequence>();
        try
        {
            while (true)
            {
                long started = _time.GetTimestamp();
                lock (_lock)
                {
                    _active.RemoveAll(s => s.Result is not null || ((ScheduledRequest)s.Owner!).Ended);
                    AdmitLocked(started);
                    if (_active.Count == 0)
                    {
                        _looping = false;
                        return;
                    }

                    batch.Clear();
                    batch.AddRange(_active);
                }

                await RunIterationAsync(batch, started);
            }
        }
        catch (Exception e)
        {
            // Never leave callers hanging: a failure of the loop itself fails everything it holds.
            CloseWith(e);
        }
    }

    /// <summary>FIFO admission, one row per sequence, while the rows fit the cap; the head is never skipped.</summary>
    private void AdmitLocked(long now)
    {
        while (_waiting.First is { } node)
        {
            ScheduledRequest r = node.Value;
            while (r.Admitted < r.Job.Count)
            {
                if (_active.Count >= RowCap)
                {
                    return;
                }

                if (r.Admitted == 0)
                {
                    r.Timings.Add(new InferenceResult { Outputs = NoOutputs, QueueTime = _time.GetElapsedTime(r.SubmittedAt, now) });
                }

                _active.Add(r.Sequences[r.Admitted]);
                r.Admitted++;
                _queuedSequences--;
            }

            _waiting.RemoveFirst();
        }
    }

    private async Task RunIterationAsync(List<ArSequence> batch, long started)
    {
        var touched = new List<ScheduledRequest>();
        foreach (ArSequence s in batch)
        {
            var r = (ScheduledRequest)s.Owner!;
            if (!r.InIteration)
            {
                r.InIteration = true;
                touched.Add(r);
            }
        }

        try
        {
            foreach (List<ArSequence> group in Groups(batch))
            {
                InferenceResult result = UsesCache ? await RunCachedAsync(group) : await RunRecomputeAsync(group);
                Interlocked.Increment(ref _calls);
                Interlocked.Add(ref _rowsComputed, group.Count);
                foreach (ArSequence s in group)
                {
                    var r = (ScheduledRequest)s.Owner!;
                    if (r.LastCall != _calls)
                    {
                        r.LastCall = _calls;
                        r.Calls++;
                        r.Timings.Add(result);
                    }
                }
            }
        }
        catch (Exception e)
        {
            Log.IterationFailed(_logger, Graph.V2Name, batch.Count, touched.Count, e);
            if (e is ModelNotReadyException || _stopping.IsCancellationRequested)
            {
                // The model version is gone (unloaded or replaced): nothing on this loop can run any more.
                CloseWith(e is OperationCanceledException ? new ModelNotReadyException(ModelName, "the server is shutting down.") : e);
                return;
            }

            foreach (ScheduledRequest r in touched)
            {
                r.InIteration = false;
                Finish(r, e);
            }

            return;
        }

        Interlocked.Increment(ref _iterations);
        foreach (ScheduledRequest r in touched)
        {
            r.InIteration = false;
            if (!r.Ended && r.Sequences.All(s => s.Result is not null))
            {
                r.Complete();
                Finish(r, error: null);
            }
        }

        _metrics?.RecordIteration(ModelName, batch.Count, _time.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>
    /// The calls of one iteration. Recompute: one. KV cache: one per uncached width (new sequences with a prompt
    /// prefill apart from running ones, which feed one token), and per past length when pasts cannot be padded.
    /// </summary>
    private List<List<ArSequence>> Groups(List<ArSequence> batch)
    {
        if (!UsesCache)
        {
            return [batch];
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

        int slots = _decoder.CacheSlots;
        Tensor[]? pasts = null;
        if (past > 0)
        {
            pasts = new Tensor[slots];
            for (int k = 0; k < slots; k++)
            {
                (int heads, int dh) = _decoder.SlotShape(k);
                var data = new float[n * heads * past * dh];
                for (int r = 0; r < n; r++)
                {
                    ArSequence s = group[r];
                    if (s.Cache is null)
                    {
                        continue; // a new sequence: all padding, masked out
                    }

                    for (int h = 0; h < heads; h++)
                    {
                        s.Cache.Slots[k].AsSpan(h * _cacheCapacity * dh, s.Cached * dh)
                            .CopyTo(data.AsSpan((((r * heads) + h) * past + past - s.Cached) * dh));
                    }
                }

                pasts[k] = Tensor.FromFloats(data, n, heads, past, dh);
            }
        }

        var call = new PackedCall(ids, n, width, past) { AttentionMask = mask, PositionIds = positions, Pasts = pasts };
        (float[] logits, Tensor[]? presents, InferenceResult result) = await _decoder.RunPackedAsync(call, wantPresent: true, dispatchImmediately: true, _stopping.Token);

        // The new keys and values sit at [past, past + width) of each row's present: append them to its own cache.
        for (int k = 0; k < slots; k++)
        {
            (int heads, int dh) = _decoder.SlotShape(k);
            float[] present = presents![k].AsFloats();
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
                    present.AsSpan((((r * heads) + h) * total + past) * dh, width * dh)
                        .CopyTo(s.Cache.Slots[k].AsSpan(((h * _cacheCapacity) + s.Cached) * dh));
                }
            }
        }

        for (int r = 0; r < n; r++)
        {
            group[r].Cached += width;
            Accept(group[r], logits.AsSpan(((r * width) + width - 1) * _decoder.VocabSize, _decoder.VocabSize));
        }

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

        var call = new PackedCall(ids, n, length, 0) { AttentionMask = mask };
        (float[] logits, _, InferenceResult result) = await _decoder.RunPackedAsync(call, wantPresent: false, dispatchImmediately: true, _stopping.Token);
        int vocab = _decoder.VocabSize;
        for (int r = 0; r < n; r++)
        {
            Accept(group[r], logits.AsSpan(((r * length) + group[r].Tokens.Count - 1) * vocab, vocab));
        }

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
        var r = (ScheduledRequest)s.Owner!;
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

        Log.SchedulerClosed(_logger, Graph.V2Name, reason.Message);
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

    /// <summary>A request inside the scheduler: its sequences, how many are admitted, and its event stream.</summary>
    private sealed class ScheduledRequest
    {
        private bool _ended;

        public ScheduledRequest(ArScheduler owner, ArJob job, long submittedAt, bool stream)
        {
            Owner = owner;
            Job = job;
            SubmittedAt = submittedAt;
            Stream = stream;
            Node = new LinkedListNode<ScheduledRequest>(this);
            var processor = new LogitsProcessor(job.Settings, job.Decoder.VocabSize);
            Sequences = [.. Enumerable.Range(0, job.Count).Select(i => new ArSequence(job, i, processor) { Owner = this })];
        }

        public ArScheduler Owner { get; }

        public ArJob Job { get; }

        public long SubmittedAt { get; }

        public bool Stream { get; }

        public LinkedListNode<ScheduledRequest> Node { get; }

        public ArSequence[] Sequences { get; }

        // Unbounded: events are small, and the loop must never wait on a slow reader.
        public Channel<ArEvent> Events { get; } = Channel.CreateUnbounded<ArEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        public InferenceTimings Timings { get; } = new();

        /// <summary>Sequences admitted so far (guarded by the scheduler's lock).</summary>
        public int Admitted { get; set; }

        /// <summary>Decoder calls this request took part in (its nfe), and the last one counted (loop only).</summary>
        public int Calls { get; set; }

        public long LastCall { get; set; }

        /// <summary>Marker while the loop collects an iteration's requests (loop only).</summary>
        public bool InIteration { get; set; }

        /// <summary>The result was written: leaving now is not a cancellation.</summary>
        public bool Completed { get; private set; }

        /// <summary>Completed, failed or cancelled (guarded by the scheduler's lock; read without it by the loop).</summary>
        public bool Ended
        {
            get => Volatile.Read(ref _ended);
            set => Volatile.Write(ref _ended, value);
        }

        public void Complete()
        {
            Completed = true;
            Events.Writer.TryWrite(new ArCompleted([.. Sequences.Select(s => s.Result!)], Calls, Timings));
        }
    }
}
