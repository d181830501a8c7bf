namespace GenService.Inference.Tensors;

/// <summary>Element types the service moves between HTTP and ONNX Runtime (the KServe v2 JSON set).</summary>
public enum TensorElementType
{
    Float32,
    Float64,
    Int32,
    Int64,
    Bool,
}

/// <summary>
/// A dense, C-order tensor owned by managed memory. Dimension 0 is the batch dimension for every
/// graph input and output. The data array is one of float[], double[], int[], long[] or bool[],
/// matching <see cref="ElementType"/>, whose first <c>product(Shape)</c> elements are the tensor. Usually it has
/// exactly that many; a caller that reuses buffers (an iteration loop packing a call into a pooled array) may hand a
/// longer one, which only <see cref="FloatSpan"/> and the batcher read (<see cref="AsFloats"/> refuses it).
/// </summary>
public sealed class Tensor
{
    public Tensor(TensorElementType elementType, long[] shape, Array data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long count = ElementCount(shape);
        if (data.Length < count)
        {
            throw new ArgumentException($"Tensor data has {data.Length} elements but shape [{string.Join(",", shape)}] needs {count}.", nameof(data));
        }

        Type expected = ClrType(elementType);
        if (data.GetType().GetElementType() != expected)
        {
            throw new ArgumentException($"Tensor of {elementType} needs a {expected.Name}[] but got {data.GetType().Name}.", nameof(data));
        }

        ElementType = elementType;
        Shape = shape;
        Data = data;
    }

    public TensorElementType ElementType { get; }

    public long[] Shape { get; }

    public Array Data { get; }

    /// <summary>Rows along dimension 0 (1 for a scalar).</summary>
    public int Rows => Shape.Length == 0 ? 1 : checked((int)Shape[0]);

    public long ElementCount() => ElementCount(Shape);

    public static Tensor FromFloats(float[] data, params long[] shape) => new(TensorElementType.Float32, shape, data);

    public static Tensor FromLongs(long[] data, params long[] shape) => new(TensorElementType.Int64, shape, data);

    /// <summary>True when <see cref="Data"/> holds exactly the tensor's elements (not a longer, reused buffer).</summary>
    public bool IsExact => Data.Length == ElementCount();

    /// <summary>The elements as an array of exactly <c>product(Shape)</c> floats.</summary>
    public float[] AsFloats() => Exact(Data as float[] ?? throw new InvalidOperationException($"Tensor is {ElementType}, not Float32."));

    public long[] AsLongs() => Exact(Data as long[] ?? throw new InvalidOperationException($"Tensor is {ElementType}, not Int64."));

    /// <summary>The elements of a Float32 tensor, whether its buffer is exact or longer.</summary>
    public Span<float> FloatSpan => (Data as float[] ?? throw new InvalidOperationException($"Tensor is {ElementType}, not Float32.")).AsSpan(0, checked((int)ElementCount()));

    private T[] Exact<T>(T[] data)
        => data.Length == ElementCount() ? data : throw new InvalidOperationException($"The tensor uses {ElementCount()} of a {data.Length}-element buffer; read it through {nameof(FloatSpan)}.");

    public static long ElementCount(ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            n = checked(n * d);
        }

        return n;
    }

    public static Type ClrType(TensorElementType type) => type switch
    {
        TensorElementType.Float32 => typeof(float),
        TensorElementType.Float64 => typeof(double),
        TensorElementType.Int32 => typeof(int),
        TensorElementType.Int64 => typeof(long),
        TensorElementType.Bool => typeof(bool),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>The KServe v2 datatype name (FP32, FP64, INT32, INT64, BOOL).</summary>
    public static string V2Name(TensorElementType type) => type switch
    {
        TensorElementType.Float32 => "FP32",
        TensorElementType.Float64 => "FP64",
        TensorElementType.Int32 => "INT32",
        TensorElementType.Int64 => "INT64",
        TensorElementType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };
}
