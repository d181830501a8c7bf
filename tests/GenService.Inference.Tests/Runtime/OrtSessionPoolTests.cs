using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace GenService.Inference.Tests.Runtime;

/// <summary>
/// The session pool over the tiny KV-cache decoder (TestModels/tiny-ar: ids [B,S] -> logits [B,S,6], caches
/// [B,2,past,3] -> [B,2,past+S,3]): inputs over longer (pooled) buffers, and outputs written in place into
/// pre-allocated buffers, give what the plain path gives. Within 1e-6, not bit for bit: ONNX Runtime's kernels may take
/// another vector path over a managed array (16-byte aligned) than over its own 64-byte aligned buffers (seen: 1 ulp).
/// </summary>
public sealed class OrtSessionPoolTests : IDisposable
{
    private readonly OrtSessionPool _pool;

    public OrtSessionPoolTests()
    {
        string path = Path.Combine(TestModelFolder.Source, "tiny-ar", "decoder.onnx");
        var options = new SessionOptions { IntraOpNumThreads = 1 };
        _pool = new OrtSessionPool([new InferenceSession(path, options)], [options], "cpu");
    }

    public void Dispose() => _pool.Dispose();

    /// <summary>3 rows, 2 new tokens after a past of 4: distinct values everywhere.</summary>
    private static Dictionary<string, Tensor> Inputs(Func<long[], Tensor> floats)
    {
        var ids = Tensor.FromLongs([1, 2, 3, 4, 5, 1], 3, 2);
        return new Dictionary<string, Tensor> { ["ids"] = ids, ["pk"] = floats([3, 2, 4, 3]), ["pv"] = floats([3, 2, 4, 3]) };
    }

    private static Tensor Exact(long[] shape) => Tensor.FromFloats(Values((int)Tensor.ElementCount(shape), 0), shape);

    /// <summary>The same values at the start of a buffer 7 elements longer, whose tail holds NaNs.</summary>
    private static Tensor Longer(long[] shape)
    {
        int n = (int)Tensor.ElementCount(shape);
        float[] data = [.. Values(n, 0), .. Enumerable.Repeat(float.NaN, 7)];
        return new Tensor(TensorElementType.Float32, shape, data);
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], actual[i], 1e-6);
        }
    }

    private static float[] Values(int n, int seed) => [.. Enumerable.Range(seed, n).Select(i => MathF.Sin(i * 0.37f))];

    private static readonly string[] Outputs = ["logits", "present_k", "present_v"];

    [Fact]
    public void Inputs_over_longer_buffers_give_the_same_outputs()
    {
        IReadOnlyDictionary<string, Tensor> plain = _pool.Run(Inputs(Exact), Outputs);
        IReadOnlyDictionary<string, Tensor> longer = _pool.Run(Inputs(Longer), Outputs);
        foreach (string name in Outputs)
        {
            Assert.Equal(plain[name].Shape, longer[name].Shape);
            AssertClose(plain[name].AsFloats(), longer[name].AsFloats());
        }
    }

    [Fact]
    public void Outputs_are_written_into_pre_allocated_buffers_and_returned()
    {
        IReadOnlyDictionary<string, Tensor> plain = _pool.Run(Inputs(Exact), Outputs);
        var buffers = new Dictionary<string, Tensor>
        {
            ["logits"] = new(TensorElementType.Float32, [3, 2, 6], new float[3 * 2 * 6 + 5]),
            ["present_k"] = new(TensorElementType.Float32, [3, 2, 6, 3], new float[3 * 2 * 6 * 3 + 5]),
            ["present_v"] = new(TensorElementType.Float32, [3, 2, 6, 3], new float[3 * 2 * 6 * 3]),
        };

        IReadOnlyDictionary<string, Tensor> inPlace = _pool.Run(Inputs(Exact), Outputs, buffers);
        foreach (string name in Outputs)
        {
            Assert.Same(buffers[name], inPlace[name]);
            AssertClose(plain[name].AsFloats(), inPlace[name].FloatSpan.ToArray());
        }

        // A longer buffer's tail is left as it was; AsFloats refuses such a tensor instead of returning the tail too.
        Assert.Equal(0f, ((float[])buffers["logits"].Data)[^1]);
        Assert.Throws<InvalidOperationException>(() => buffers["logits"].AsFloats());
    }

    [Fact]
    public void Buffers_for_only_some_outputs_leave_the_run_on_the_plain_path()
    {
        var partial = new Dictionary<string, Tensor> { ["logits"] = new(TensorElementType.Float32, [3, 2, 6], new float[36]) };
        IReadOnlyDictionary<string, Tensor> result = _pool.Run(Inputs(Exact), Outputs, partial);
        Assert.NotSame(partial["logits"], result["logits"]);
        Assert.All(partial["logits"].AsFloats(), v => Assert.Equal(0f, v));
    }
}
