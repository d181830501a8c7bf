using System.Buffers;
using GenService.Inference.Tensors;

namespace GenService.Generation.Loops;

/// <summary>
/// The float arrays of one graph call that an iteration loop packs (KV-cache pasts) and lets the graph fill
/// (presents, logits), rented from <see cref="ArrayPool{T}.Shared"/> and handed back together once the call's results
/// are read. Why: an iteration of 64 AR rows moves a few hundred KB per cache slot each way; as fresh arrays those
/// land on the large-object heap every iteration, and the gen-2 collections they force (~45 per second on words-ar at
/// 64 streams) stalled the whole process (docs/benchmarks.md, "AR loop and the large-object heap").
/// <para>
/// <see cref="Return"/> only after a call completed: a call that failed or was cancelled may still be running in ONNX
/// Runtime over these arrays, so they are left to the garbage collector instead of going back to the pool.
/// </para>
/// </summary>
internal sealed class CallBuffers
{
    private readonly List<float[]> _rented = [];

    /// <summary>A Float32 tensor of <paramref name="shape"/> over a rented array (longer than needed, contents undefined).</summary>
    public Tensor Floats(params long[] shape)
    {
        float[] array = ArrayPool<float>.Shared.Rent(checked((int)Tensor.ElementCount(shape)));
        _rented.Add(array);
        return new Tensor(TensorElementType.Float32, shape, array);
    }

    /// <summary>Hands every array back to the pool; the tensors over them must not be used any more.</summary>
    public void Return()
    {
        foreach (float[] array in _rented)
        {
            ArrayPool<float>.Shared.Return(array);
        }

        _rented.Clear();
    }
}
