using System.Diagnostics;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using Microsoft.Net.Http.Headers;

namespace GenService.Api.Families.Common;

/// <summary>Moving samples between request JSON, graph tensors and responses.</summary>
public static class ModelIO
{
    /// <summary>Decode "inputs" (PNG or raw data) into flat samples of output.shape.</summary>
    public static float[][] DecodeInputs(List<ModelInput>? inputs, ModelManifest manifest, int maxCount)
    {
        if (inputs is null || inputs.Count == 0)
        {
            throw new RequestValidationException("inputs", "'inputs' is missing or empty: give a list of {\"png\": \"<base64>\"} or {\"data\": [...]}.");
        }

        Validate.Count(inputs.Count, maxCount, "inputs");
        var result = new float[inputs.Count][];
        for (int i = 0; i < inputs.Count; i++)
        {
            result[i] = DecodeInput(inputs[i], manifest, $"inputs[{i}]");
        }

        return result;
    }

    /// <summary>Decode one input.</summary>
    public static float[] DecodeInput(ModelInput? input, ModelManifest manifest, string field)
    {
        if (input is null || (input.Png is null) == (input.Data is null))
        {
            throw new RequestValidationException(field, $"'{field}' must have exactly one of 'png' (base64) or 'data' (flat numbers).");
        }

        if (input.Data is { } data)
        {
            return Validate.Vector(data, manifest.SampleElements, $"{field}.data");
        }

        if (manifest.Output.Kind != "image")
        {
            throw new RequestValidationException($"{field}.png", $"Model '{manifest.Name}' takes {manifest.Output.Kind} inputs, not PNGs; use 'data'.");
        }

        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(input.Png!);
        }
        catch (FormatException)
        {
            throw new RequestValidationException($"{field}.png", $"'{field}.png' is not valid base64.");
        }

        (int c, int h, int w) = Chw(manifest);
        (float black, float white) = Range(manifest);
        try
        {
            return ImageCodec.DecodeToChw(bytes, c, h, w, black, white);
        }
        catch (FormatException e)
        {
            throw new RequestValidationException($"{field}.png", $"'{field}.png' {e.Message}.");
        }
    }

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

    /// <summary>The ONNX name of a canonical input, or a clear 500-free failure if the model does not map it.</summary>
    public static string Input(IGraphRunner runner, string canonical)
        => runner.Signature.InputName(canonical) ?? throw new InvalidOperationException($"Graph {runner.V2Name} maps no '{canonical}' input.");

    /// <summary>The ONNX name of a canonical output.</summary>
    public static string Output(IGraphRunner runner, string canonical)
        => runner.Signature.OutputName(canonical) ?? throw new InvalidOperationException($"Graph {runner.V2Name} maps no '{canonical}' output.");

    public static (int C, int H, int W) Chw(ModelManifest manifest)
    {
        int[] s = manifest.Output.Shape;
        return s.Length switch
        {
            3 => (s[0], s[1], s[2]),
            2 => (1, s[0], s[1]),
            _ => (1, 1, s.Aggregate(1, (a, b) => a * b)),
        };
    }

    public static (float Black, float White) Range(ModelManifest manifest)
        => manifest.Output.Range is [var lo, var hi] ? (lo, hi) : (-1f, 1f);

    /// <summary>True when the client asked for one PNG (the grid) instead of JSON.</summary>
    public static bool WantsPngGrid(HttpContext http)
    {
        foreach (string? accept in http.Request.Headers.Accept)
        {
            if (accept is not null && MediaTypeHeaderValue.TryParseList([accept], out IList<MediaTypeHeaderValue>? list)
                && list.Any(m => m.MediaType.Equals("image/png", StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The response: JSON samples (png and/or data per <paramref name="mode"/>), or, with Accept: image/png, one PNG
    /// grid of all samples.
    /// </summary>
    public static IResult Respond(HttpContext http, ModelManifest manifest, ulong? seed, IReadOnlyList<float[]> samples, IReadOnlyList<int?>? labels, OutputMode mode, Stopwatch total, InferenceTimings timings, int? nfe = null, IReadOnlyList<double>? positions = null)
    {
        (int c, int h, int w) = Chw(manifest);
        (float black, float white) = Range(manifest);
        if (WantsPngGrid(http))
        {
            if (manifest.Output.Kind != "image")
            {
                throw new RequestValidationException("Accept", $"Model '{manifest.Name}' produces {manifest.Output.Kind} samples, which have no PNG form; accept application/json.");
            }

            byte[] grid = ImageCodec.EncodeGrid(samples, c, h, w, black, white);
            http.Response.Headers["X-Seed"] = seed?.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.File(grid, "image/png");
        }

        var list = new List<Sample>(samples.Count);
        for (int i = 0; i < samples.Count; i++)
        {
            list.Add(new Sample
            {
                Png = mode.Png ? Convert.ToBase64String(ImageCodec.EncodePng(samples[i], c, h, w, black, white)) : null,
                Data = mode.Tensor ? samples[i] : null,
                ClassLabel = labels?[i],
                T = positions?[i],
            });
        }

        return TypedResults.Json(new SampleResponse
        {
            Model = manifest.Name,
            Family = manifest.Family.RouteName(),
            Seed = seed,
            Shape = manifest.Output.Shape,
            Samples = list,
            Nfe = nfe,
            Timings = timings.ToTimings(total),
        });
    }
}

/// <summary>Accumulates queue and compute time over the graph calls of one request.</summary>
public sealed class InferenceTimings
{
    public TimeSpan Queue { get; private set; }

    public TimeSpan Compute { get; private set; }

    public void Add(InferenceResult result)
    {
        Queue += result.QueueTime;
        Compute += result.ComputeTime;
    }

    public Timings ToTimings(Stopwatch total)
        => new(Math.Round(Queue.TotalMilliseconds, 3), Math.Round(Compute.TotalMilliseconds, 3), Math.Round(total.Elapsed.TotalMilliseconds, 3));
}
