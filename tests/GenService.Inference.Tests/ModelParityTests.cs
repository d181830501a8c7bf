using GenService.Inference.Tests.Parity;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;

namespace GenService.Inference.Tests;

/// <summary>
/// The committed ONNX models must compute what PyTorch computed at export time: every golden case
/// (models/*/golden/*.json) is run through ONNX Runtime and compared element-wise.
/// </summary>
public sealed class ModelParityTests
{
    // Float32 kernels differ between PyTorch and ONNX Runtime only in summation order; 1e-4 absolute leaves room
    // for that on these small models while catching any real export error (a wrong mask or a baked-in shape
    // shows up as differences of order 0.1 or more).
    private const float Tolerance = 1e-4f;

    public static TheoryData<string> GoldenKeys() => new(GoldenFiles.Keys());

    [Fact]
    public void EveryModelHasGoldenFiles()
    {
        var models = Directory.EnumerateDirectories(GoldenFiles.ModelsRoot)
            .Where(d => File.Exists(Path.Combine(d, "model.json")))
            .Select(Path.GetFileName)
            .ToList();
        Assert.NotEmpty(models);
        var withGolden = GoldenFiles.Keys().Select(k => k.Split('/')[0]).ToHashSet();
        Assert.All(models, m => Assert.Contains(m!, withGolden));
    }

    [Fact]
    public void ModelsStayWithinTheSizeBudget()
    {
        long total = 0;
        foreach (var dir in Directory.EnumerateDirectories(GoldenFiles.ModelsRoot)
                     .Where(d => File.Exists(Path.Combine(d, "model.json"))))
        {
            var size = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            Assert.True(size <= 5L * 1024 * 1024, $"{Path.GetFileName(dir)} is {size} bytes, over 5 MB");
            total += size;
        }

        Assert.True(total <= 30L * 1024 * 1024, $"models/ holds {total} bytes, over 30 MB");
    }

    [Theory]
    [MemberData(nameof(GoldenKeys))]
    public void OnnxRuntimeMatchesPyTorch(string key)
    {
        var (model, role) = Split(key);
        using var session = new InferenceSession(GoldenFiles.GraphPath(model, role));
        var cases = GoldenFiles.Load(model, role);
        Assert.NotEmpty(cases);

        for (var c = 0; c < cases.Count; c++)
        {
            var golden = cases[c];
            var inputs = golden.Inputs.Select(ToOrtValue).ToList();
            try
            {
                using var runOptions = new RunOptions();
                var outputNames = golden.Outputs.Select(o => o.Name).ToList();
                using var results = session.Run(runOptions, golden.Inputs.Select(i => i.Name).ToList(), inputs, outputNames);
                for (var o = 0; o < outputNames.Count; o++)
                {
                    AssertClose(key, c, golden.Outputs[o], results[o]);
                }
            }
            finally
            {
                inputs.ForEach(v => v.Dispose());
            }
        }
    }

    [Theory]
    [MemberData(nameof(GoldenKeys))]
    public void BatchDimensionIsDynamic(string key)
    {
        var (model, role) = Split(key);
        using var session = new InferenceSession(GoldenFiles.GraphPath(model, role));
        foreach (var (name, meta) in session.InputMetadata.Concat(session.OutputMetadata))
        {
            Assert.True(meta.Dimensions.Length > 0 && meta.Dimensions[0] == -1,
                $"{key}: '{name}' has a fixed dimension 0 ({string.Join(",", meta.Dimensions)})");
        }
    }

    private static (string Model, string Role) Split(string key)
    {
        var parts = key.Split('/');
        return (parts[0], parts[1]);
    }

    private static OrtValue ToOrtValue(GoldenTensor t)
    {
        // CreateAllocatedTensorValue rather than wrapping managed memory: it also handles the zero-length
        // KV-cache tensors of the first decoding step ([B, H, 0, Dh]).
        if (t.Floats is { } floats)
        {
            var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, t.Shape);
            floats.CopyTo(v.GetTensorMutableDataAsSpan<float>());
            return v;
        }

        var l = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Int64, t.Shape);
        t.Longs!.CopyTo(l.GetTensorMutableDataAsSpan<long>());
        return l;
    }

    private static void AssertClose(string key, int caseIndex, GoldenTensor expected, OrtValue actual)
    {
        var info = actual.GetTensorTypeAndShape();
        Assert.Equal(expected.Shape, info.Shape);
        var where = $"{key} case {caseIndex} output '{expected.Name}'";
        if (expected.Longs is { } longs)
        {
            Assert.Equal(longs, actual.GetTensorDataAsSpan<long>().ToArray());
            return;
        }

        var got = actual.GetTensorDataAsSpan<float>();
        var want = expected.Floats!;
        Assert.Equal(want.Length, got.Length);
        var maxDiff = 0f;
        var at = -1;
        for (var i = 0; i < want.Length; i++)
        {
            var d = MathF.Abs(got[i] - want[i]);
            if (!(d <= maxDiff))
            {
                // !(d <= max) also catches NaN, which a plain '>' comparison would let through
                maxDiff = float.IsNaN(d) ? float.PositiveInfinity : d;
                at = i;
            }
        }

        Assert.True(maxDiff <= Tolerance, $"{where}: max abs diff {maxDiff} at flat index {at} (tolerance {Tolerance})");
    }
}
