using System.Buffers.Binary;
using System.Runtime.InteropServices;
using GenService.Inference.Tensors;

namespace GenService.Api.KServe;

/// <summary>
/// The element encoding of the binary tensor data extension (KServe v2 / Triton): raw little-endian values, BOOL
/// one byte (0 = false). <see cref="V2InferRequestReader"/> decodes request tensors with it and
/// <see cref="V2InferResponseWriter"/> sizes binary outputs with <see cref="ElementSize"/>.
/// </summary>
internal static class V2BinaryTensorData
{
    /// <summary>Bytes per element in the binary tensor extension (BOOL is one byte, 0 = false).</summary>
    public static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Float32 or TensorElementType.Int32 => 4,
        TensorElementType.Float64 or TensorElementType.Int64 => 8,
        TensorElementType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Little-endian bytes -> a new typed array (a straight copy on little-endian machines).</summary>
    public static Array Read(ReadOnlySpan<byte> bytes, TensorElementType type, int count)
    {
        switch (type)
        {
            case TensorElementType.Float32:
                var f = new float[count];
                bytes.CopyTo(MemoryMarshal.AsBytes(f.AsSpan()));
                FromLittleEndian(MemoryMarshal.Cast<float, int>(f.AsSpan()));
                return f;
            case TensorElementType.Float64:
                var d = new double[count];
                bytes.CopyTo(MemoryMarshal.AsBytes(d.AsSpan()));
                FromLittleEndian(MemoryMarshal.Cast<double, long>(d.AsSpan()));
                return d;
            case TensorElementType.Int32:
                var n = new int[count];
                bytes.CopyTo(MemoryMarshal.AsBytes(n.AsSpan()));
                FromLittleEndian(n.AsSpan());
                return n;
            case TensorElementType.Int64:
                var l = new long[count];
                bytes.CopyTo(MemoryMarshal.AsBytes(l.AsSpan()));
                FromLittleEndian(l.AsSpan());
                return l;
            case TensorElementType.Bool:
                // Not a byte copy: a bool must hold 0 or 1, and clients may send any non-zero byte for true.
                var b = new bool[count];
                for (int i = 0; i < count; i++)
                {
                    b[i] = bytes[i] != 0;
                }

                return b;
            default:
                throw new InvalidOperationException($"Unhandled element type {type}.");
        }
    }

    private static void FromLittleEndian(Span<int> values)
    {
        if (!BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.ReverseEndianness(values, values);
        }
    }

    private static void FromLittleEndian(Span<long> values)
    {
        if (!BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.ReverseEndianness(values, values);
        }
    }
}
