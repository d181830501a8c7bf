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
/// </summary>
/// <typeparam name="T">The loop's request type.</typeparam>
internal sealed class CallerQueues<T>
    where T : class
{
    private readonly Dictionary<string, CallerQueue> _byCaller = new(StringComparer.Ordinal);
    private readonly LinkedList<CallerQueue> _turns = new();

    /// <summary>Callers with at least one waiting request.</summary>
    public int Callers => _turns.Count;

    /// <summary>Queues <paramref name="request"/> last among <paramref name="caller"/>'s; a caller new to the turns comes last.</summary>
    /// <returns>The request's node, for <see cref="Remove"/>.</returns>
    public LinkedListNode<T> Enqueue(string caller, T request)
    {
        if (!_byCaller.TryGetValue(caller, out CallerQueue? queue))
        {
            queue = new CallerQueue(caller);
            _byCaller.Add(caller, queue);
            queue.Turn = _turns.AddLast(queue);
        }

        return queue.Requests.AddLast(request);
    }

    /// <summary>The head request of the caller whose turn it is, or null when nothing waits.</summary>
    public T? Next => _turns.First?.Value.Requests.First!.Value;

    /// <summary>
    /// The caller whose turn it was had one item admitted: it goes to the back of the turns, and
    /// <paramref name="requestDone"/> (its head request is now fully admitted) takes that request out.
    /// </summary>
    public void Served(bool requestDone)
    {
        CallerQueue queue = _turns.First!.Value;
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

    /// <summary>Takes a waiting request out (cancelled, failed, past its deadline); its caller keeps its turn otherwise.</summary>
    public void Remove(string caller, LinkedListNode<T> node)
    {
        if (node.List is null || !_byCaller.TryGetValue(caller, out CallerQueue? queue) || node.List != queue.Requests)
        {
            return;
        }

        queue.Requests.Remove(node);
        if (queue.Requests.Count == 0)
        {
            _turns.Remove(queue.Turn!);
            _byCaller.Remove(caller);
        }
    }

    private sealed class CallerQueue(string caller)
    {
        public string Caller { get; } = caller;

        public LinkedList<T> Requests { get; } = new();

        public LinkedListNode<CallerQueue>? Turn { get; set; }
    }
}
