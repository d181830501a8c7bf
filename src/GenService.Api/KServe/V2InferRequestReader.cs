using System.Text.Json;
using GenService.Inference;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using static GenService.Api.KServe.V2RequestErrors;

namespace GenService.Api.KServe;

/// <summary>
/// Reads a v2 infer body straight into typed arrays with <see cref="Utf8JsonReader"/>: no JsonDocument, no
/// boxing per element (this is the hot path of the 150 us budget). Two passes over the bytes, because a
/// tensor's <c>data</c> may come before its <c>datatype</c> and <c>shape</c>:
/// <code>
///   pass 1: the envelope -> per input: name, shape, datatype, and where its data array lies in the body
///   check : names, datatypes, ranks, fixed dims, equal batch, element counts against the graph signature
///   pass 2: each data slice -> T[product(shape)], flat or nested, exactly the element count
/// </code>
/// Pass 1 is this class, the check <see cref="V2InputValidator"/>, pass 2 <see cref="V2JsonTensorData"/> (or
/// <see cref="V2BinaryTensorData"/> for an input sent as binary data).
/// Every failure is a <see cref="RequestValidationException"/> naming the field (400 {"error"}).
/// <para>
/// Binary tensor data extension (KServe v2 / Triton): the body is a JSON header followed by raw little-endian
/// tensor bytes (the header's length comes in the <c>Inference-Header-Content-Length</c> HTTP header). An input
/// with <c>"parameters": {"binary_data_size": N}</c> takes the next N bytes of that tail, in input order, and N
/// must equal product(shape) x the datatype's size (BOOL: 1 byte). This skips number formatting and parsing,
/// which for a small model costs several times the model itself.
/// </para>
/// </summary>
internal static class V2InferRequestReader
{
    /// <summary>Options for every reader over the body: the envelope, and each data slice (nested to the shape's rank).</summary>
    internal static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 64 };

    /// <summary>A JSON body without binary data.</summary>
    public static V2ParsedRequest Read(ReadOnlySpan<byte> body, GraphSignature signature) => Read(body, [], signature);

    /// <summary>The JSON header and the binary tail that follows it (empty when the request has none).</summary>
    public static V2ParsedRequest Read(ReadOnlySpan<byte> body, ReadOnlySpan<byte> binary, GraphSignature signature)
    {
        string? id = null;
        List<V2RawInput>? raw = null;
        List<(string Name, bool? Binary)>? outputs = null;
        bool binaryOutputDefault = false;
        try
        {
            var reader = new Utf8JsonReader(body, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid("body", "The body must be a JSON object: {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}]}.");
            }

            var seen = new SeenKeys("body");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("inputs"u8))
                {
                    seen.Once(0, "inputs");
                    reader.Read();
                    raw = ReadInputs(ref reader);
                }
                else if (reader.ValueTextEquals("outputs"u8))
                {
                    seen.Once(1, "outputs");
                    reader.Read();
                    outputs = ReadOutputs(ref reader);
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    seen.Once(2, "id");
                    reader.Read();
                    id = reader.TokenType == JsonTokenType.String ? reader.GetString()
                        : throw Invalid("id", "'id' must be a string.");
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    seen.Once(3, "parameters");
                    reader.Read();
                    binaryOutputDefault = ReadBoolParameter(ref reader, "parameters", "binary_data_output"u8) ?? false;
                }
                else
                {
                    // Anything a newer client sends: accepted and ignored.
                    reader.Read();
                    reader.Skip();
                }
            }

            CheckNothingFollows(ref reader);
        }
        catch (JsonException e)
        {
            throw Invalid("body", $"The body is not valid JSON: {e.Message}");
        }

        if (raw is null || raw.Count == 0)
        {
            throw Invalid("inputs", $"'inputs' is required: one tensor per graph input ({Names(signature.Inputs)}).");
        }

        Dictionary<string, Tensor> tensors = V2InputValidator.Validate(raw, signature, body, binary);
        if (outputs is null)
        {
            return new V2ParsedRequest(id, tensors, null, binaryOutputDefault);
        }

        var names = new List<string>(outputs.Count);
        Dictionary<string, bool>? binaryOutputs = null;
        for (int i = 0; i < outputs.Count; i++)
        {
            (string name, bool? isBinary) = outputs[i];
            if (!signature.Outputs.Any(o => o.Name == name))
            {
                throw Invalid($"outputs[{i}].name", $"No output named '{name}'; this graph's outputs are {Names(signature.Outputs)}.");
            }

            names.Add(name);
            if (isBinary is { } b)
            {
                (binaryOutputs ??= new(StringComparer.Ordinal))[name] = b;
            }
        }

        return new V2ParsedRequest(id, tensors, names, binaryOutputDefault, binaryOutputs);
    }

    /// <summary>
    /// Only whitespace may follow the envelope: "{...} x" or "{...}{...}" is a 400, and so are tensor bytes sent
    /// after the JSON without the header that says where the JSON ends.
    /// </summary>
    private static void CheckNothingFollows(ref Utf8JsonReader reader)
    {
        bool more;
        try
        {
            more = reader.Read();
        }
        catch (JsonException)
        {
            more = true;
        }

        if (more)
        {
            throw Invalid("body", "The body must be one JSON object, but something follows it. Binary tensor data after the JSON "
                + "needs the Inference-Header-Content-Length header (the JSON's length in bytes).");
        }
    }

    /// <summary>
    /// A <c>parameters</c> object: returns the boolean <paramref name="key"/> if present (null if absent), skips
    /// every other parameter (the protocol lets clients send their own).
    /// </summary>
    private static bool? ReadBoolParameter(ref Utf8JsonReader reader, string at, ReadOnlySpan<byte> key)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid(at, $"'{at}' must be an object.");
        }

        bool? value = null;
        var seen = new SeenKeys(at);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool match = reader.ValueTextEquals(key);
            reader.Read();
            if (!match)
            {
                reader.Skip();
                continue;
            }

            seen.Once(0, System.Text.Encoding.UTF8.GetString(key));
            value = reader.TokenType switch
            {
                JsonTokenType.True => true,
                JsonTokenType.False => false,
                _ => throw Invalid($"{at}.{System.Text.Encoding.UTF8.GetString(key)}", $"'{at}.{System.Text.Encoding.UTF8.GetString(key)}' must be true or false."),
            };
        }

        return value;
    }

    /// <summary>An input's <c>parameters</c>: <c>binary_data_size</c> (bytes, &gt;= 0) or -1 when absent.</summary>
    private static long ReadBinaryDataSize(ref Utf8JsonReader reader, string at)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw Invalid(at, $"'{at}' must be an object.");
        }

        long size = -1;
        var seen = new SeenKeys(at);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool match = reader.ValueTextEquals("binary_data_size"u8);
            reader.Read();
            if (!match)
            {
                reader.Skip();
                continue;
            }

            seen.Once(0, "binary_data_size");

            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out size) || size < 0)
            {
                throw Invalid($"{at}.binary_data_size", $"'{at}.binary_data_size' must be a non-negative integer (bytes).");
            }
        }

        return size;
    }

    private static List<V2RawInput> ReadInputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Invalid("inputs", "'inputs' must be an array of tensors {name, shape, datatype, data}.");
        }

        var inputs = new List<V2RawInput>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            string at = $"inputs[{inputs.Count}]";
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid(at, $"'{at}' must be an object {{name, shape, datatype, data}}.");
            }

            var input = new V2RawInput();
            var seen = new SeenKeys(at);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("name"u8))
                {
                    seen.Once(0, "name");
                    reader.Read();
                    input.Name = reader.TokenType == JsonTokenType.String ? reader.GetString()
                        : throw Invalid($"{at}.name", $"'{at}.name' must be a string.");
                }
                else if (reader.ValueTextEquals("datatype"u8))
                {
                    seen.Once(1, "datatype");
                    reader.Read();
                    input.Datatype = reader.TokenType == JsonTokenType.String ? reader.GetString()
                        : throw Invalid($"{at}.datatype", $"'{at}.datatype' must be a string: FP32, FP64, INT32, INT64 or BOOL.");
                }
                else if (reader.ValueTextEquals("shape"u8))
                {
                    seen.Once(2, "shape");
                    reader.Read();
                    input.Shape = ReadShape(ref reader, $"{at}.shape");
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    seen.Once(3, "data");
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        throw Invalid($"{at}.data", $"'{at}.data' must be an array (flat, or nested to the shape).");
                    }

                    input.DataStart = checked((int)reader.TokenStartIndex);
                    reader.Skip();
                    input.DataLength = checked((int)reader.BytesConsumed) - input.DataStart;
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    seen.Once(4, "parameters");
                    reader.Read();
                    input.BinarySize = ReadBinaryDataSize(ref reader, $"{at}.parameters");
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            inputs.Add(input);
        }

        return inputs;
    }

    private static long[] ReadShape(ref Utf8JsonReader reader, string at)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Invalid(at, $"'{at}' must be an array of dimension sizes, e.g. [1, 16].");
        }

        var dims = new List<long>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long d) || d < 0)
            {
                throw Invalid(at, $"'{at}' must hold non-negative integers.");
            }

            dims.Add(d);
        }

        return [.. dims];
    }

    private static List<(string Name, bool? Binary)> ReadOutputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw Invalid("outputs", "'outputs' must be an array of {\"name\": ...}.");
        }

        var names = new List<(string, bool?)>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            string at = $"outputs[{names.Count}]";
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw Invalid(at, $"'{at}' must be an object {{\"name\": ...}}.");
            }

            string? name = null;
            bool? binary = null;
            var seen = new SeenKeys(at);
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isName = reader.ValueTextEquals("name"u8);
                bool isParameters = reader.ValueTextEquals("parameters"u8);
                if (isName || isParameters)
                {
                    seen.Once(isName ? 0 : 1, isName ? "name" : "parameters");
                }

                reader.Read();
                if (isName && reader.TokenType == JsonTokenType.String)
                {
                    name = reader.GetString();
                }
                else if (isParameters)
                {
                    binary = ReadBoolParameter(ref reader, $"{at}.parameters", "binary_data"u8);
                }
                else
                {
                    reader.Skip();
                }
            }

            names.Add((name ?? throw Invalid($"{at}.name", $"'{at}.name' is required."), binary));
        }

        return names;
    }

    /// <summary>
    /// The known keys already read in one JSON object: a second <c>"data"</c> (or name, shape, ...) is a 400 naming
    /// it, as duplicate keys are on /v1, instead of the last one silently winning. A bit mask, no allocation.
    /// </summary>
    private struct SeenKeys(string at)
    {
        private int _mask;

        public void Once(int bit, string key)
        {
            if ((_mask & (1 << bit)) != 0)
            {
                string field = at == "body" ? key : $"{at}.{key}";
                throw Invalid(field, $"'{field}' appears twice in the same object; send each key once.");
            }

            _mask |= 1 << bit;
        }
    }
}
