using System.Text.Json;
using GenService.Inference;
using GenService.Inference.Tensors;
using static GenService.Api.KServe.V2RequestErrors;

namespace GenService.Api.KServe;

/// <summary>
/// Pass 2 of <see cref="V2InferRequestReader"/>: one input's JSON <c>data</c> slice, found by pass 1, read straight
/// into a typed array with <see cref="Utf8JsonReader"/> (no boxing per element). Nesting is ignored, so flat and
/// nested arrays read alike; the element count must equal the shape's, and an element of the wrong kind is named by
/// its index.
/// </summary>
internal static class V2JsonTensorData
{
    /// <summary>
    /// A tensor's JSON <c>data</c> array, flat or nested to the shape, as a new array of exactly
    /// <paramref name="count"/> elements of <paramref name="type"/>; <paramref name="at"/> names the field in errors.
    /// </summary>
    public static Array Read(ReadOnlySpan<byte> data, TensorElementType type, int count, string at, long[] shape) => type switch
    {
        TensorElementType.Float32 => ReadNumbers<float>(data, count, at, shape, static (ref Utf8JsonReader r, out float v) => r.TryGetSingle(out v)),
        TensorElementType.Float64 => ReadNumbers<double>(data, count, at, shape, static (ref Utf8JsonReader r, out double v) => r.TryGetDouble(out v)),
        TensorElementType.Int32 => ReadNumbers<int>(data, count, at, shape, static (ref Utf8JsonReader r, out int v) => r.TryGetInt32(out v)),
        TensorElementType.Int64 => ReadNumbers<long>(data, count, at, shape, static (ref Utf8JsonReader r, out long v) => r.TryGetInt64(out v)),
        TensorElementType.Bool => ReadBools(data, count, at, shape),
        _ => throw new InvalidOperationException($"Unhandled element type {type}."),
    };

    private delegate bool TryGet<T>(ref Utf8JsonReader reader, out T value);

    /// <summary>Flattens a (possibly nested) JSON array of numbers into exactly <paramref name="count"/> values.</summary>
    private static T[] ReadNumbers<T>(ReadOnlySpan<byte> json, int count, string at, long[] shape, TryGet<T> tryGet)
    {
        var values = new T[count];
        var reader = new Utf8JsonReader(json, V2InferRequestReader.ReaderOptions);
        int n = 0;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartArray or JsonTokenType.EndArray:
                    continue;
                case JsonTokenType.Number:
                    if (n >= count)
                    {
                        throw CountMismatch(at, CountElements(json), count, shape);
                    }

                    if (!tryGet(ref reader, out values[n]))
                    {
                        // A JSON number that FP32/FP64 cannot hold overflows it (1e39, a 10,000-digit literal): said so,
                        // without echoing the literal.
                        if (typeof(T) == typeof(float) || typeof(T) == typeof(double))
                        {
                            throw V2InputValidator.NotFinite(at, n, typeof(T) == typeof(float) ? "FP32" : "FP64");
                        }

                        throw Invalid(at, $"'{at}' element {n} ({Echo(reader.ValueSpan)}) is not a valid {typeof(T).Name} for this input.");
                    }

                    n++;
                    break;
                default:
                    throw Invalid(at, $"'{at}' element {n} is {Describe(reader.TokenType)}; this input's data must be numbers.");
            }
        }

        if (n != count)
        {
            throw CountMismatch(at, n, count, shape);
        }

        return values;
    }

    private static bool[] ReadBools(ReadOnlySpan<byte> json, int count, string at, long[] shape)
    {
        var values = new bool[count];
        var reader = new Utf8JsonReader(json, V2InferRequestReader.ReaderOptions);
        int n = 0;
        while (reader.Read())
        {
            if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.EndArray)
            {
                continue;
            }

            if (reader.TokenType is not (JsonTokenType.True or JsonTokenType.False))
            {
                throw Invalid(at, $"'{at}' element {n} is {Describe(reader.TokenType)}; BOOL data must be true or false.");
            }

            if (n >= count)
            {
                throw CountMismatch(at, CountElements(json), count, shape);
            }

            values[n++] = reader.TokenType == JsonTokenType.True;
        }

        if (n != count)
        {
            throw CountMismatch(at, n, count, shape);
        }

        return values;
    }

    /// <summary>A number's literal for a message, cut short: a client may send thousands of digits.</summary>
    private static string Echo(ReadOnlySpan<byte> literal)
        => literal.Length <= 40 ? System.Text.Encoding.UTF8.GetString(literal) : System.Text.Encoding.UTF8.GetString(literal[..40]) + "...";

    private static int CountElements(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, V2InferRequestReader.ReaderOptions);
        int n = 0;
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.StartArray or JsonTokenType.EndArray))
            {
                n++;
            }
        }

        return n;
    }

    private static RequestValidationException CountMismatch(string at, int got, int expected, long[] shape) =>
        Invalid(at, $"'{at}' has {got} elements but shape {Format(shape)} needs {expected}.");

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "a string",
        JsonTokenType.Null => "null",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.Number => "a number",
        _ => token.ToString(),
    };
}
