namespace GenService.Inference.Batching;

/// <summary>
/// One slice of a request's rows (at most max_batch_size of them); the unit of the <see cref="DynamicBatcher"/>'s
/// queue, which batches are made of. It carries its own list node so a cancelled request leaves the middle of the
/// queue in O(1).
/// </summary>
internal sealed class RequestChunk
{
    public RequestChunk(PendingRequest owner, int offset, int rows)
    {
        Owner = owner;
        Offset = offset;
        Rows = rows;
        Node = new LinkedListNode<RequestChunk>(this);
    }

    public PendingRequest Owner { get; }

    public int Offset { get; }

    public int Rows { get; }

    public LinkedListNode<RequestChunk> Node { get; }
}
