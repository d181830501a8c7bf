using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Api.KServe;

/// <summary>
/// Writes the v2 infer response straight into the response pipe with <see cref="Utf8JsonWriter"/>,
/// flushing every few thousand elements so a large output never sits whole in a second buffer.
/// </summary>
internal static class V2InferResponseWriter
{
    private const int FlushEvery = 16 * 1024;

    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task WriteAsync(
        PipeWriter pipe,
        string modelName,
        string modelVersion,
        string? id,
        InferenceResult result,
        IReadOnlyList<string> outputNames,
        CancellationToken cancellationToken)
    {
        await using var writer = new Utf8JsonWriter(pipe, WriterOptions);
        writer.WriteStartObject();
        writer.WriteString("model_name"u8, modelName);
        writer.WriteString("model_version"u8, modelVersion);
        if (id is not null)
        {
            writer.WriteString("id"u8, id);
        }

        // Server-side timings: lets a client (and the benchmark) separate model time from HTTP, JSON and queueing.
        writer.WriteStartObject("parameters"u8);
        writer.WriteNumber("queue_ms"u8, result.QueueTime.TotalMilliseconds);
        writer.WriteNumber("compute_ms"u8, result.ComputeTime.TotalMilliseconds);
        writer.WriteNumber("batch_size"u8, result.BatchSize);
        writer.WriteEndObject();

        writer.WriteStartArray("outputs"u8);
        foreach (string name in outputNames)
        {
            Tensor tensor = result.Outputs[name];
            writer.WriteStartObject();
            writer.WriteString("name"u8, name);
            writer.WriteString("datatype"u8, Tensor.V2Name(tensor.ElementType));
            writer.WriteStartArray("shape"u8);
            foreach (long d in tensor.Shape)
            {
                writer.WriteNumberValue(d);
            }

            writer.WriteEndArray();
            writer.WriteStartArray("data"u8);
            int length = tensor.Data.Length;
            for (int start = 0; start < length; start += FlushEvery)
            {
                int end = Math.Min(length, start + FlushEvery);
                WriteRange(writer, tensor.Data, start, end);
                if (end < length)
                {
                    await writer.FlushAsync(cancellationToken);
                }
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(cancellationToken);
    }

    private static void WriteRange(Utf8JsonWriter writer, Array data, int start, int end)
    {
        switch (data)
        {
            case float[] f:
                for (int i = start; i < end; i++)
                {
                    float v = f[i];
                    if (float.IsFinite(v))
                    {
                        writer.WriteNumberValue(v);
                    }
                    else
                    {
                        WriteNonFinite(writer, v);
                    }
                }

                break;
            case double[] d:
                for (int i = start; i < end; i++)
                {
                    double v = d[i];
                    if (double.IsFinite(v))
                    {
                        writer.WriteNumberValue(v);
                    }
                    else
                    {
                        WriteNonFinite(writer, v);
                    }
                }

                break;
            case int[] n:
                for (int i = start; i < end; i++)
                {
                    writer.WriteNumberValue(n[i]);
                }

                break;
            case long[] l:
                for (int i = start; i < end; i++)
                {
                    writer.WriteNumberValue(l[i]);
                }

                break;
            case bool[] b:
                for (int i = start; i < end; i++)
                {
                    writer.WriteBooleanValue(b[i]);
                }

                break;
            default:
                throw new InvalidOperationException($"Unsupported tensor data {data.GetType().Name}.");
        }
    }

    // JSON has no NaN or Infinity; the strings are what System.Text.Json's named-literal handling reads back.
    private static void WriteNonFinite(Utf8JsonWriter writer, double v) =>
        writer.WriteStringValue(double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
}
