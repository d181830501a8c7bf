using System.Buffers.Binary;
using System.Runtime.InteropServices;
using GenService.Inference.Tensors;

namespace GenService.Api.KServe;

/// <summary>
/// The element encoding of the binary tensor data extension (KServe v2 / Triton): raw little-endian values, BOOL
/// one byte (0 = false). Request tensors are decoded here (<see cref="Read"/>) and binary outputs of
/// <see cref="V2InferResponseWriter"/> encoded (<see cref="AsBytes"/>, <see cref="ToLittleEndianCopy"/>).
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

    /// <summary>A tensor's elements as the bytes they are in memory (the extension's encoding on little-endian machines).</summary>
    public static ReadOnlySpan<byte> AsBytes(Array data) => data switch
    {
        float[] f => MemoryMarshal.AsBytes(f.AsSpan()),
        double[] d => MemoryMarshal.AsBytes(d.AsSpan()),
        int[] n => MemoryMarshal.AsBytes(n.AsSpan()),
        long[] l => MemoryMarshal.AsBytes(l.AsSpan()),

        // A .NET bool is one byte holding 0 or 1: exactly the extension's BOOL encoding.
        bool[] b => MemoryMarshal.AsBytes(b.AsSpan()),
        _ => throw new InvalidOperationException($"Unsupported tensor data {data.GetType().Name}."),
    };

    /// <summary>A byte-swapped copy of the elements, for a big-endian machine (BOOL and unknown arrays as they are).</summary>
    public static Array ToLittleEndianCopy(Array data)
    {
        switch (data)
        {
            case float[] f:
                var fc = (float[])f.Clone();
                Span<int> fi = MemoryMarshal.Cast<float, int>(fc.AsSpan());
                BinaryPrimitives.ReverseEndianness(fi, fi);
                return fc;
            case double[] d:
                var dc = (double[])d.Clone();
                Span<long> dl = MemoryMarshal.Cast<double, long>(dc.AsSpan());
                BinaryPrimitives.ReverseEndianness(dl, dl);
                return dc;
            case int[] n:
                var nc = (int[])n.Clone();
                BinaryPrimitives.ReverseEndianness(nc, nc);
                return nc;
            case long[] l:
                var lc = (long[])l.Clone();
                BinaryPrimitives.ReverseEndianness(lc, lc);
                return lc;
            default:
                return data;
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
