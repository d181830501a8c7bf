namespace GenService.Generation.Loops;

/// <summary>
/// The waiting requests of an iteration loop, one FIFO per caller (<see cref="GenService.Inference.Callers.CallerContext"/>),
/// served round-robin one item at a time:
/// <code>
///   turns:   [light] → [heavy] → [other]        callers with waiting requests, whose turn comes first
///   light:   r7                                  each caller's own FIFO of requests
///   heavy:   r1 (12 of 64 admitted) r2 r3 ... r40
/// </code>
/// The loop admits one item of the head request of the caller whose turn it is, then that caller goes to the back of
/// the turns. So with k callers waiting, a caller's next item is among the next k items admitted, however many
/// requests the others have queued; within a caller, requests keep their order. Not thread-safe: the loop's lock
/// guards it.
/// <para>
/// While a caller has requests waiting, the queue also measures how fast that caller's items are admitted (its share of
/// the loop, whatever the other callers do), so <see cref="EstimatedWait"/> can say how long its next request would
/// wait: the loop refuses a request that could not start before half its deadline instead of letting it time out.
/// </para>
/// </summary>
/// <typeparam name="T">The loop's request type.</typeparam>
internal sealed class CallerQueues<T>
    where T : class
{
    /// <summary>Admission times kept per waiting caller (a ring; enough for every admission of <see cref="RateSpan"/>).</summary>
    internal const int RateWindow = 1024;

    /// <summary>
    /// How far back a caller's admission rate is measured: admissions come in clumps (items that started together end
    /// together and free their rows together), so the rate is counted over seconds, never between two admissions.
    /// </summary>
    internal static readonly TimeSpan RateSpan = TimeSpan.FromSeconds(5);

    /// <summary>The shortest span a rate is divided by: a clump just admitted is not an infinite rate.</summary>
    internal static readonly TimeSpan MinRateSpan = TimeSpan.FromSeconds(1);

    /// <summary>Admissions needed before <see cref="EstimatedWait"/> trusts the rate.</summary>
    internal const int MinRateSamples = 8;

    private readonly Dictionary<string, CallerQueue> _byCaller = new(StringComparer.Ordinal);
    private readonly LinkedList<CallerQueue> _turns = new();
    private readonly TimeProvider _time;

    public CallerQueues(TimeProvider time) => _time = time;

    /// <summary>Callers with at least one waiting request.</summary>
    public int Callers => _turns.Count;

    /// <summary>Items of all waiting requests not yet admitted (the loop's backlog).</summary>
    public int WaitingItems { get; private set; }

    /// <summary>
    /// Queues <paramref name="request"/> (<paramref name="items"/> items to admit) last among <paramref name="caller"/>'s;
    /// a caller new to the turns comes last.
    /// </summary>
    /// <returns>The request's node, for <see cref="Remove"/>.</returns>
    public LinkedListNode<T> Enqueue(string caller, T request, int items)
    {
        if (!_byCaller.TryGetValue(caller, out CallerQueue? queue))
        {
            queue = new CallerQueue(caller, _time.GetTimestamp());
            _byCaller.Add(caller, queue);
            queue.Turn = _turns.AddLast(queue);
        }

        queue.WaitingItems += items;
        WaitingItems += items;
        return queue.Requests.AddLast(request);
    }

    /// <summary>
    /// How long a new request of <paramref name="caller"/> would wait before its first item is admitted: the caller's
    /// waiting items divided by its admission rate, the admissions of the last <see cref="RateSpan"/> (of its current
    /// backlog) over that span (at least <see cref="MinRateSpan"/>). Zero when it has nothing waiting; null while the
    /// rate is not yet measured (fewer than <see cref="MinRateSamples"/> admissions in this backlog).
    /// </summary>
    public TimeSpan? EstimatedWait(string caller)
    {
        if (!_byCaller.TryGetValue(caller, out CallerQueue? queue))
        {
            return TimeSpan.Zero;
        }

        if (queue.Samples < MinRateSamples)
        {
            return null;
        }

        // The window: the last RateSpan of this backlog, or the whole ring when even that is full of recent admissions.
        long now = _time.GetTimestamp();
        long since = Math.Max(queue.WaitingSince, now - (long)(RateSpan.TotalSeconds * _time.TimestampFrequency));
        int kept = Math.Min(queue.Samples, RateWindow);
        int recent = 0;
        while (recent < kept && queue.AdmittedAt[(queue.Samples - 1 - recent) % RateWindow] > since)
        {
            recent++;
        }

        if (recent == RateWindow)
        {
            since = queue.AdmittedAt[queue.Samples % RateWindow];
            recent--;
        }

        TimeSpan span = _time.GetElapsedTime(since, now);
        if (span < MinRateSpan)
        {
            span = MinRateSpan;
        }

        // No admission for RateSpan while waiting: the rate is at most one per span.
        return span / Math.Max(recent, 1) * queue.WaitingItems;
    }

    /// <summary>The head request of the caller whose turn it is, or null when nothing waits.</summary>
    public T? Next => _turns.First?.Value.Requests.First!.Value;

    /// <summary>
    /// The caller whose turn it was had one item admitted: it goes to the back of the turns, and
    /// <paramref name="requestDone"/> (its head request is now fully admitted) takes that request out.
    /// </summary>
    public void Served(bool requestDone, long now)
    {
        CallerQueue queue = _turns.First!.Value;
        queue.WaitingItems--;
        WaitingItems--;
        queue.AdmittedAt[queue.Samples % RateWindow] = now;
        queue.Samples++;
        if (requestDone)
        {
            queue.Requests.RemoveFirst();
        }

        _turns.RemoveFirst();
        if (queue.Requests.Count == 0)
        {
            _byCaller.Remove(queue.Caller);
        }
        else
        {
            queue.Turn = _turns.AddLast(queue);
        }
    }

    /// <summary>
    /// Takes a waiting request out (cancelled, failed, past its deadline) with its <paramref name="items"/> not yet
    /// admitted; its caller keeps its turn otherwise.
    /// </summary>
    public void Remove(string caller, LinkedListNode<T> node, int items)
    {
        if (node.List is null || !_byCaller.TryGetValue(caller, out CallerQueue? queue) || node.List != queue.Requests)
        {
            return;
        }

        queue.Requests.Remove(node);
        queue.WaitingItems -= items;
        WaitingItems -= items;
        if (queue.Requests.Count == 0)
        {
            _turns.Remove(queue.Turn!);
            _byCaller.Remove(caller);
        }
    }

    private sealed class CallerQueue(string caller, long waitingSince)
    {
        /// <summary>When it started waiting (this backlog; the queue is dropped when it has nothing left waiting).</summary>
        public long WaitingSince { get; } = waitingSince;

        public string Caller { get; } = caller;

        public LinkedList<T> Requests { get; } = new();

        public LinkedListNode<CallerQueue>? Turn { get; set; }

        /// <summary>Items of its waiting requests not yet admitted.</summary>
        public int WaitingItems { get; set; }

        /// <summary>Timestamps of its last <see cref="RateWindow"/> admissions (a ring), since it started waiting.</summary>
        public long[] AdmittedAt { get; } = new long[RateWindow];

        /// <summary>Admissions since it started waiting.</summary>
        public int Samples { get; set; }
    }
}
