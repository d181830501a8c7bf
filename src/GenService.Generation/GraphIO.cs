using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Generation;

/// <summary>Moving per-sample rows in and out of graph tensors, in canonical names.</summary>
internal static class GraphIO
{
    /// <summary>Stack per-sample rows into one [n, ...shape] float tensor.</summary>
    public static Tensor Stack(IReadOnlyList<float[]> rows, IReadOnlyList<int> shape)
    {
        int per = rows.Count == 0 ? 0 : rows[0].Length;
        var data = new float[rows.Count * per];
        for (int i = 0; i < rows.Count; i++)
        {
            rows[i].CopyTo(data, i * per);
        }

        var dims = new long[shape.Count + 1];
        dims[0] = rows.Count;
        for (int d = 0; d < shape.Count; d++)
        {
            dims[d + 1] = shape[d];
        }

        return Tensor.FromFloats(data, dims);
    }

    /// <summary>Split a [n, ...] float tensor into n flat rows.</summary>
    public static float[][] Unstack(Tensor tensor)
    {
        float[] data = tensor.AsFloats();
        int n = tensor.Rows;
        int per = n == 0 ? 0 : data.Length / n;
        var rows = new float[n][];
        for (int i = 0; i < n; i++)
        {
            rows[i] = data.AsSpan(i * per, per).ToArray();
        }

        return rows;
    }

    /// <summary>A [n] tensor of labels or timesteps, in whichever dtype the graph declares (int64 or float32).</summary>
    public static Tensor Scalars(TensorSpec spec, IReadOnlyList<double> values)
    {
        return spec.ElementType switch
        {
            TensorElementType.Int64 => Tensor.FromLongs(values.Select(v => (long)Math.Round(v)).ToArray(), values.Count),
            TensorElementType.Int32 => new Tensor(TensorElementType.Int32, [values.Count], values.Select(v => (int)Math.Round(v)).ToArray()),
            TensorElementType.Float32 => Tensor.FromFloats(values.Select(v => (float)v).ToArray(), values.Count),
            TensorElementType.Float64 => new Tensor(TensorElementType.Float64, [values.Count], values.ToArray()),
            _ => throw new InvalidOperationException($"Input '{spec.Name}' has unsupported type {spec.ElementType}."),
        };
    }

    /// <summary>One value for a whole call, in the input's declared shape (a scalar, or [1]) and dtype.</summary>
    public static Tensor Shared(TensorSpec spec, double value)
    {
        Tensor one = Scalars(spec, [value]);
        return new Tensor(one.ElementType, (long[])spec.Dims.Clone(), one.Data);
    }

    /// <summary>Add the class_label input when the graph has one and the request has labels.</summary>
    public static void AddLabels(Dictionary<string, Tensor> inputs, IGraphRunner runner, int[]? labels)
    {
        TensorSpec? spec = runner.Signature.Inputs.FirstOrDefault(s => s.Canonical == "class_label");
        if (spec is null || labels is null)
        {
            return;
        }

        inputs[spec.Name] = Scalars(spec, labels.Select(l => (double)l).ToArray());
    }

    /// <summary>The ONNX name of a canonical input (the manifest loader made sure the required ones are mapped).</summary>
    public static string Input(IGraphRunner runner, string canonical)
        => runner.Signature.InputName(canonical) ?? throw new InvalidOperationException($"Graph {runner.V2Name} maps no '{canonical}' input.");

    /// <summary>The ONNX name of a canonical output.</summary>
    public static string Output(IGraphRunner runner, string canonical)
        => runner.Signature.OutputName(canonical) ?? throw new InvalidOperationException($"Graph {runner.V2Name} maps no '{canonical}' output.");
}
