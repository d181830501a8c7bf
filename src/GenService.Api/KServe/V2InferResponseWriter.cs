using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Api.KServe;

/// <summary>
/// Writes the v2 infer response straight into the response pipe with <see cref="Utf8JsonWriter"/>,
/// flushing every few thousand elements so a large output never sits whole in a second buffer.
/// When the request asks for binary outputs (binary tensor extension) the JSON header is written into a small
/// buffer first, because its length must go out in the <c>Inference-Header-Content-Length</c> HTTP header
/// before the body starts; the raw little-endian output bytes follow it.
/// </summary>
internal static class V2InferResponseWriter
{
    /// <summary>The HTTP header carrying the JSON header's length in binary-extension requests and responses.</summary>
    public const string HeaderContentLength = "Inference-Header-Content-Length";

    private const int FlushEvery = 16 * 1024;
    private const int BinaryChunkBytes = 64 * 1024;

    /// <summary>Writes status, content type and body: JSON, or JSON header + binary tensors when any output is binary.</summary>
    public static Task WriteAsync(
        HttpResponse response,
        string modelName,
        string modelVersion,
        V2ParsedRequest request,
        InferenceResult result,
        IReadOnlyList<string> outputNames,
        CancellationToken cancellationToken)
    {
        response.StatusCode = StatusCodes.Status200OK;
        bool anyBinary = false;
        foreach (string name in outputNames)
        {
            anyBinary |= request.IsBinary(name);
        }

        if (!anyBinary)
        {
            response.ContentType = "application/json";
            return WriteAsync(response.BodyWriter, modelName, modelVersion, request.Id, result, outputNames, cancellationToken);
        }

        return WriteBinaryAsync(response, modelName, modelVersion, request, result, outputNames, cancellationToken);
    }

    private static async Task WriteBinaryAsync(
        HttpResponse response,
        string modelName,
        string modelVersion,
        V2ParsedRequest request,
        InferenceResult result,
        IReadOnlyList<string> outputNames,
        CancellationToken cancellationToken)
    {
        var header = new ArrayBufferWriter<byte>(512);
        long binaryBytes = 0;
        using (var writer = new Utf8JsonWriter(header, WriterOptions))
        {
            WriteEnvelopeStart(writer, modelName, modelVersion, request.Id, result);
            foreach (string name in outputNames)
            {
                Tensor tensor = result.Outputs[name];
                WriteTensorStart(writer, name, tensor);
                if (request.IsBinary(name))
                {
                    long size = (long)tensor.Data.Length * V2BinaryTensorData.ElementSize(tensor.ElementType);
                    binaryBytes += size;
                    writer.WriteStartObject("parameters"u8);
                    writer.WriteNumber("binary_data_size"u8, size);
                    writer.WriteEndObject();
                }
                else
                {
                    writer.WriteStartArray("data"u8);
                    WriteRange(writer, tensor.Data, 0, tensor.Data.Length);
                    writer.WriteEndArray();
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        // Triton answers binary responses as application/octet-stream; clients find the split in the header.
        response.ContentType = "application/octet-stream";
        response.Headers[HeaderContentLength] = header.WrittenCount.ToString(CultureInfo.InvariantCulture);
        response.ContentLength = header.WrittenCount + binaryBytes;
        PipeWriter pipe = response.BodyWriter;
        pipe.Write(header.WrittenSpan);
        foreach (string name in outputNames)
        {
            if (request.IsBinary(name))
            {
                await WriteBytesAsync(pipe, result.Outputs[name].Data, cancellationToken);
            }
        }

        await pipe.FlushAsync(cancellationToken);
    }

    /// <summary>The tensor's elements as little-endian bytes, in chunks so a large output is flushed as it goes.</summary>
    private static async Task WriteBytesAsync(PipeWriter pipe, Array data, CancellationToken cancellationToken)
    {
        if (!BitConverter.IsLittleEndian)
        {
            data = V2BinaryTensorData.ToLittleEndianCopy(data);
        }

        int total = Buffer.ByteLength(data);
        for (int start = 0; start < total; start += BinaryChunkBytes)
        {
            int length = Math.Min(BinaryChunkBytes, total - start);
            pipe.Write(V2BinaryTensorData.AsBytes(data).Slice(start, length));
            if (start + length < total)
            {
                await pipe.FlushAsync(cancellationToken);
            }
        }
    }

    private static void WriteEnvelopeStart(Utf8JsonWriter writer, string modelName, string modelVersion, string? id, InferenceResult result)
    {
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
    }

    private static void WriteTensorStart(Utf8JsonWriter writer, string name, Tensor tensor)
    {
        writer.WriteStartObject();
        writer.WriteString("name"u8, name);
        writer.WriteString("datatype"u8, Tensor.V2Name(tensor.ElementType));
        writer.WriteStartArray("shape"u8);
        foreach (long d in tensor.Shape)
        {
            writer.WriteNumberValue(d);
        }

        writer.WriteEndArray();
    }

    private static readonly JsonWriterOptions WriterOptions = new() { SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The plain JSON response into the response pipe.</summary>
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
        WriteEnvelopeStart(writer, modelName, modelVersion, id, result);
        foreach (string name in outputNames)
        {
            Tensor tensor = result.Outputs[name];
            WriteTensorStart(writer, name, tensor);
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
