using GenService.Inference;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using static GenService.Api.KServe.V2RequestErrors;

namespace GenService.Api.KServe;

/// <summary>
/// The check between the passes of <see cref="V2InferRequestReader"/>: the inputs pass 1 found, against the graph
/// signature (names, datatypes, ranks, fixed dims, one batch size, element counts, binary sizes adding up to the
/// tail), before pass 2 reads any data into an array sized from the checked shape.
/// </summary>
internal static class V2InputValidator
{
    /// <summary>
    /// The inputs as tensors, keyed by name: each checked (name, datatype, shape, equal batch, sizes) and then read,
    /// from its JSON data slice in <paramref name="body"/> or its share of the binary tail <paramref name="binary"/>.
    /// </summary>
    public static Dictionary<string, Tensor> Validate(List<V2RawInput> raw, GraphSignature signature, ReadOnlySpan<byte> body, ReadOnlySpan<byte> binary)
    {
        var tensors = new Dictionary<string, Tensor>(raw.Count, StringComparer.Ordinal);
        long batch = -1;
        int binaryOffset = 0;
        for (int i = 0; i < raw.Count; i++)
        {
            V2RawInput input = raw[i];
            string at = $"inputs[{i}]";
            string name = input.Name ?? throw Invalid($"{at}.name", $"'{at}.name' is required; this graph's inputs are {Names(signature.Inputs)}.");
            TensorSpec spec = signature.Inputs.FirstOrDefault(s => s.Name == name)
                ?? throw Invalid($"{at}.name", $"No input named '{name}'; this graph's inputs are {Names(signature.Inputs)}.");
            if (tensors.ContainsKey(name))
            {
                throw Invalid($"{at}.name", $"Input '{name}' is given twice.");
            }

            string expected = Tensor.V2Name(spec.ElementType);
            if (input.Datatype is null)
            {
                throw Invalid($"{at}.datatype", $"'{at}.datatype' is required; input '{name}' is {expected}.");
            }

            if (!string.Equals(input.Datatype, expected, StringComparison.Ordinal))
            {
                throw Invalid($"{at}.datatype", $"Input '{name}' is {expected}, not {input.Datatype}.");
            }

            long[] shape = input.Shape ?? throw Invalid($"{at}.shape", $"'{at}.shape' is required, e.g. {ExampleShape(spec)}.");
            CheckShape(shape, spec, $"{at}.shape");
            if (spec.Batched)
            {
                if (batch >= 0 && shape[0] != batch)
                {
                    throw Invalid($"{at}.shape", $"All inputs need the same batch size (dim 0): '{name}' has {shape[0]}, an earlier input has {batch}.");
                }

                batch = shape[0];
            }

            long count = ElementCountOrMax(shape);
            if (count > Array.MaxLength)
            {
                throw Invalid($"{at}.shape", $"Shape {Format(shape)} has too many elements.");
            }

            if (input.BinarySize >= 0)
            {
                if (input.DataStart >= 0)
                {
                    throw Invalid($"{at}.data", $"Input '{name}' has both 'data' and 'parameters.binary_data_size'; send one of them.");
                }

                int size = V2BinaryTensorData.ElementSize(spec.ElementType);
                long needed = count * size;
                if (input.BinarySize != needed)
                {
                    throw Invalid($"{at}.parameters.binary_data_size", $"Input '{name}' has binary_data_size {input.BinarySize} but shape {Format(shape)} of {expected} needs {needed} bytes ({count} elements x {size}).");
                }

                if (needed > binary.Length - binaryOffset)
                {
                    throw Invalid($"{at}.parameters.binary_data_size", $"Input '{name}' needs {needed} bytes of binary data at offset {binaryOffset}, but the body has only {binary.Length} bytes after the JSON header (Inference-Header-Content-Length).");
                }

                Array decoded = V2BinaryTensorData.Read(binary.Slice(binaryOffset, (int)needed), spec.ElementType, (int)count);
                RequireFinite(decoded, $"{at}.binary_data", spec.Float16);
                tensors[name] = new Tensor(spec.ElementType, shape, decoded);
                binaryOffset += (int)needed;
                continue;
            }

            if (input.DataStart < 0)
            {
                throw Invalid($"{at}.data", $"'{at}.data' is required (or 'parameters.binary_data_size' with binary data after the JSON header).");
            }

            ReadOnlySpan<byte> data = body.Slice(input.DataStart, input.DataLength);
            Array values = V2JsonTensorData.Read(data, spec.ElementType, (int)count, $"{at}.data", shape);
            RequireFinite(values, $"{at}.data", spec.Float16);
            tensors[name] = new Tensor(spec.ElementType, shape, values);
        }

        if (binaryOffset != binary.Length)
        {
            throw Invalid("inputs", $"The body has {binary.Length} bytes of binary data after the JSON header but the inputs' binary_data_size add up to {binaryOffset}.");
        }

        foreach (TensorSpec spec in signature.Inputs)
        {
            if (!tensors.ContainsKey(spec.Name))
            {
                throw Invalid("inputs", $"Input '{spec.Name}' ({Tensor.V2Name(spec.ElementType)}, shape {ExampleShape(spec)}) is missing.");
            }
        }

        return tensors;
    }

    /// <summary>
    /// Every float value finite in the tensor's own type: NaN and infinities, and numbers that overflow it (1e39 or a
    /// 10,000-digit literal read as FP32 become infinity), would run and come back as NaN, or fail the whole merged
    /// call; they are a 400 naming the input and the element instead.
    /// </summary>
    private static void RequireFinite(Array values, string at, bool float16)
    {
        int bad = values switch
        {
            float[] f when float16 => IndexOfNonFinite(f, Fp16Max),
            float[] f => IndexOfNonFinite(f, float.MaxValue),
            double[] d => IndexOfNonFinite(d),
            _ => -1,
        };
        if (bad >= 0)
        {
            throw NotFinite(at, bad, values is float[] ? (float16 ? "FP16" : "FP32") : "FP64");
        }
    }

    /// <summary>The largest finite float16 value: a graph input of that type turns anything larger into infinity.</summary>
    private const float Fp16Max = 65504f;

    /// <summary>The 400 for element <paramref name="index"/> of <paramref name="at"/> that is not finite in its type.</summary>
    internal static RequestValidationException NotFinite(string at, int index, string type)
    {
        string limit = type switch
        {
            "FP16" => "65504",
            "FP32" => "3.4e38",
            _ => "1.8e308",
        };
        string note = type == "FP16" ? " The graph takes this input as float16 (sent as FP32, cast by the server)." : "";
        return Invalid(at, $"'{at}' element {index} is not a finite {type} number (NaN, Infinity, or beyond ±{limit}, the largest {type} value); every value must be finite.{note}");
    }

    private static int IndexOfNonFinite(float[] values, float max)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!(Math.Abs(values[i]) <= max))
            {
                return i;
            }
        }

        return -1;
    }

    private static int IndexOfNonFinite(double[] values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Rank, a batch dimension of at least 1, and the graph's fixed dims.</summary>
    /// <summary>product(shape), or long.MaxValue where it overflows ([2^62, 32] is a client's mistake, not a 500).</summary>
    private static long ElementCountOrMax(long[] shape)
    {
        if (shape.Contains(0))
        {
            return 0;
        }

        long n = 1;
        foreach (long d in shape)
        {
            if (n > long.MaxValue / d)
            {
                return long.MaxValue;
            }

            n *= d;
        }

        return n;
    }

    private static void CheckShape(long[] shape, TensorSpec spec, string at)
    {
        if (!spec.Batched)
        {
            // One value for the whole call (a UNet timestep exported as a scalar or [1]): exactly the graph's shape.
            if (!shape.AsSpan().SequenceEqual(spec.Dims))
            {
                throw Invalid(at, $"Input '{spec.Name}' has the fixed shape {ExampleShape(spec)} (one value for the whole call), not {Format(shape)}.");
            }

            return;
        }

        if (shape.Length != spec.Dims.Length)
        {
            throw Invalid(at, $"Input '{spec.Name}' has {spec.Dims.Length} dimensions ({ExampleShape(spec)}, -1 = any), not {shape.Length}.");
        }

        if (shape.Length == 0 || shape[0] < 1)
        {
            throw Invalid(at, $"Input '{spec.Name}' needs a batch dimension (dim 0) of at least 1.");
        }

        for (int d = 1; d < shape.Length; d++)
        {
            if (spec.Dims[d] >= 0 && shape[d] != spec.Dims[d])
            {
                throw Invalid(at, $"Input '{spec.Name}' must have shape {ExampleShape(spec)} (-1 = any); dim {d} is {shape[d]}, not {spec.Dims[d]}.");
            }
        }
    }
}
