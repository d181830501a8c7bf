using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Inference.Batching;

/// <summary>
/// How a batch's tensors are made from its chunks and given back: on the way in, the chunks' rows concatenated
/// along dimension 0; on the way out, each chunk's rows copied into its request's outputs. Rows are copied as bytes
/// (<see cref="Buffer.BlockCopy"/>): every element type is a primitive and a row of a C-order tensor is contiguous.
/// </summary>
internal static class BatchTensors
{
    /// <summary>
    /// The batch's inputs, named as in <paramref name="specs"/>: each the chunks' rows concatenated along dimension 0
    /// in batch order, or the request's own tensors when the batch is one whole request.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> Assemble(List<RequestChunk> batch, int rows, IReadOnlyList<TensorSpec> specs)
    {
        if (batch.Count == 1 && batch[0].Rows == batch[0].Owner.Rows)
        {
            // One whole request: its tensors go to the graph as they are, no copy.
            return batch[0].Owner.Request.Inputs;
        }

        var inputs = new Dictionary<string, Tensor>(specs.Count, StringComparer.Ordinal);
        for (int i = 0; i < specs.Count; i++)
        {
            Tensor first = batch[0].Owner.Inputs[i];
            if (!specs[i].Batched)
            {
                // Shared by every row, and equal in every request of the batch (the batcher merged only those).
                inputs[specs[i].Name] = first;
                continue;
            }

            long[] shape = (long[])first.Shape.Clone();
            shape[0] = rows;
            int rowBytes = RowBytes(first);
            Array data = Array.CreateInstance(Tensor.ClrType(first.ElementType), Tensor.ElementCount(shape));
            int at = 0;
            foreach (RequestChunk c in batch)
            {
                Buffer.BlockCopy(c.Owner.Inputs[i].Data, c.Offset * rowBytes, data, at, c.Rows * rowBytes);
                at += c.Rows * rowBytes;
            }

            inputs[specs[i].Name] = new Tensor(first.ElementType, shape, data);
        }

        return inputs;
    }

    /// <summary>
    /// The outputs the batch computes: what its requests want, in <paramref name="allOutputs"/> order when they differ
    /// (each request then takes only its own).
    /// </summary>
    public static IReadOnlyList<string> UnionOutputs(List<RequestChunk> batch, IReadOnlyList<string> allOutputs)
    {
        IReadOnlyList<string> first = batch[0].Owner.Wanted;
        foreach (RequestChunk c in batch)
        {
            if (!ReferenceEquals(c.Owner.Wanted, first) && !c.Owner.Wanted.SequenceEqual(first))
            {
                var union = new HashSet<string>(StringComparer.Ordinal);
                foreach (RequestChunk d in batch)
                {
                    union.UnionWith(d.Owner.Wanted);
                }

                return [.. allOutputs.Where(union.Contains)];
            }
        }

        return first;
    }

    /// <summary>
    /// A zeroed tensor with <paramref name="like"/>'s dtype and non-batch dims and <paramref name="rows"/> rows: where a
    /// request split over several batches gathers its outputs.
    /// </summary>
    public static Tensor Allocate(Tensor like, int rows)
    {
        long[] shape = (long[])like.Shape.Clone();
        shape[0] = rows;
        return new Tensor(like.ElementType, shape, Array.CreateInstance(Tensor.ClrType(like.ElementType), Tensor.ElementCount(shape)));
    }

    /// <summary>
    /// Copies <paramref name="rows"/> rows of <paramref name="source"/>, from row <paramref name="sourceRow"/>, into
    /// <paramref name="destination"/> (same dtype and non-batch dims) at row <paramref name="destinationRow"/>.
    /// </summary>
    public static void CopyRows(Tensor source, int sourceRow, Tensor destination, int destinationRow, int rows)
    {
        int rowBytes = RowBytes(source);
        Buffer.BlockCopy(source.Data, sourceRow * rowBytes, destination.Data, destinationRow * rowBytes, rows * rowBytes);
    }

    /// <summary>Whether two tensors of one input (same dtype and shape) hold the same values, byte for byte.</summary>
    public static bool SameValues(Tensor a, Tensor b)
    {
        if (!a.Shape.AsSpan().SequenceEqual(b.Shape))
        {
            return false;
        }

        int bytes = checked((int)(a.ElementCount() * ElementSize(a.ElementType)));
        for (int k = 0; k < bytes; k++)
        {
            if (Buffer.GetByte(a.Data, k) != Buffer.GetByte(b.Data, k))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Bytes in one row (dimension 0 slice) of <paramref name="t"/>.</summary>
    public static int RowBytes(Tensor t)
    {
        long perRow = t.Shape.Length == 0 ? 1 : Tensor.ElementCount(t.Shape.AsSpan(1));
        return checked((int)(perRow * ElementSize(t.ElementType)));
    }

    /// <summary>Bytes per element in the managed array (bool: 1).</summary>
    public static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float32 or TensorElementType.Int32 => 4,
        TensorElementType.Float64 or TensorElementType.Int64 => 8,
        TensorElementType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };
}
