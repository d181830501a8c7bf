using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Inference.Batching;

/// <summary>
/// Checks a request against one graph's signature before it is queued: every graph input and no other, with the
/// graph's dtype, rank and fixed dims, and one row count shared by all inputs (the batch dimension the batcher
/// concatenates along); the outputs asked for exist. A request that passes can be batched with any other whose
/// non-batch shapes are equal (and whose shared inputs, a scalar timestep, hold the same value). Every failure is a <see cref="RequestValidationException"/> naming the field.
/// </summary>
internal sealed class InferenceRequestValidator
{
    private readonly IReadOnlyList<string> _allOutputs;
    private readonly HashSet<string> _outputSet;

    public InferenceRequestValidator(string v2Name, GraphSignature signature)
    {
        V2Name = v2Name;
        Signature = signature;
        _allOutputs = [.. signature.Outputs.Select(o => o.Name)];
        _outputSet = [.. _allOutputs];
    }

    /// <summary>The graph's v2 name (model.role), which the messages name.</summary>
    public string V2Name { get; }

    public GraphSignature Signature { get; }

    /// <summary>Every output of the graph in signature order: what a request without <c>Outputs</c> gets.</summary>
    public IReadOnlyList<string> AllOutputs => _allOutputs;

    /// <summary>The request's inputs in signature order, and its rows (dimension 0, at least 1).</summary>
    public Tensor[] ValidateInputs(InferenceRequest request, out int rows)
    {
        IReadOnlyList<TensorSpec> specs = Signature.Inputs;
        var ordered = new Tensor[specs.Count];
        rows = -1;
        for (int i = 0; i < specs.Count; i++)
        {
            TensorSpec spec = specs[i];
            if (!request.Inputs.TryGetValue(spec.Name, out Tensor? t))
            {
                throw new RequestValidationException($"inputs.{spec.Name}", $"Graph '{V2Name}' needs the input '{spec.Name}'; it takes {string.Join(", ", specs.Select(s => s.Name))}.");
            }

            if (t.ElementType != spec.ElementType)
            {
                throw new RequestValidationException($"inputs.{spec.Name}", $"Input '{spec.Name}' of '{V2Name}' is {Tensor.V2Name(spec.ElementType)}, not {Tensor.V2Name(t.ElementType)}.");
            }

            if (!spec.Batched)
            {
                // Shared by every row (a scalar timestep): exactly the declared shape, no rows of its own.
                if (!t.Shape.AsSpan().SequenceEqual(spec.Dims))
                {
                    throw new RequestValidationException($"inputs.{spec.Name}", $"Input '{spec.Name}' of '{V2Name}' has the fixed shape [{FormatDims(spec.Dims)}] (one value for the whole call), got [{string.Join(",", t.Shape)}].");
                }

                ordered[i] = t;
                continue;
            }

            if (t.Shape.Length != spec.Dims.Length || t.Shape.Length == 0)
            {
                throw new RequestValidationException($"inputs.{spec.Name}", $"Input '{spec.Name}' of '{V2Name}' has rank {spec.Dims.Length} (shape [{FormatDims(spec.Dims)}]), not {t.Shape.Length}.");
            }

            for (int d = 1; d < spec.Dims.Length; d++)
            {
                if (spec.Dims[d] >= 0 && spec.Dims[d] != t.Shape[d])
                {
                    throw new RequestValidationException($"inputs.{spec.Name}", $"Input '{spec.Name}' of '{V2Name}' has shape [{FormatDims(spec.Dims)}], got [{string.Join(",", t.Shape)}].");
                }
            }

            int r = t.Rows;
            if (rows == -1)
            {
                rows = r;
            }
            else if (rows != r)
            {
                throw new RequestValidationException($"inputs.{spec.Name}", $"All inputs of one request share dimension 0: '{spec.Name}' has {r} rows, others {rows}.");
            }

            ordered[i] = t;
        }

        for (int i = 0; i < specs.Count; i++)
        {
            if (specs[i].Values is { } range)
            {
                CheckIndices(ordered[i], specs[i], range);
            }
        }

        if (request.Inputs.Count != specs.Count)
        {
            string unknown = request.Inputs.Keys.First(k => specs.All(s => s.Name != k));
            throw new RequestValidationException($"inputs.{unknown}", $"Graph '{V2Name}' has no input '{unknown}'; it takes {string.Join(", ", specs.Select(s => s.Name))}.");
        }

        if (rows < 1)
        {
            throw new RequestValidationException("inputs", $"A request to '{V2Name}' needs at least one row along dimension 0.");
        }

        return ordered;
    }

    /// <summary>The outputs to compute for the request: those it names, or all of the graph's.</summary>
    public IReadOnlyList<string> ValidateOutputs(InferenceRequest request)
    {
        if (request.Outputs is null)
        {
            return _allOutputs;
        }

        foreach (string name in request.Outputs)
        {
            if (!_outputSet.Contains(name))
            {
                throw new RequestValidationException("outputs", $"Graph '{V2Name}' has no output '{name}'; it has {string.Join(", ", _allOutputs)}.");
            }
        }

        return request.Outputs;
    }

    /// <summary>
    /// Every value of an index input within its range: one value outside an embedding (a class label of 1000000, a
    /// token id past the vocabulary, or -1, which ONNX Runtime's Gather would even take as "the last class") fails or
    /// silently bends the whole merged call, so it is refused here, before the request can share a batch.
    /// </summary>
    private void CheckIndices(Tensor t, TensorSpec spec, IndexRange range)
    {
        switch (t.Data)
        {
            case long[] l:
                for (int j = 0; j < l.Length; j++)
                {
                    if (l[j] < range.Min || l[j] > range.Max)
                    {
                        throw OutOfRange(spec, range, j, l[j].ToString(System.Globalization.CultureInfo.InvariantCulture));
                    }
                }

                break;
            case int[] n:
                for (int j = 0; j < n.Length; j++)
                {
                    if (n[j] < range.Min || n[j] > range.Max)
                    {
                        throw OutOfRange(spec, range, j, n[j].ToString(System.Globalization.CultureInfo.InvariantCulture));
                    }
                }

                break;
            case float[] f:
                for (int j = 0; j < f.Length; j++)
                {
                    if (!(f[j] >= range.Min && f[j] <= range.Max) || f[j] != MathF.Round(f[j]))
                    {
                        throw OutOfRange(spec, range, j, f[j].ToString(System.Globalization.CultureInfo.InvariantCulture));
                    }
                }

                break;
            default:
                break;
        }
    }

    private RequestValidationException OutOfRange(TensorSpec spec, IndexRange range, int index, string value) =>
        new($"inputs.{spec.Name}", $"Input '{spec.Name}' of '{V2Name}' holds {value} at element {index}; {range.What} are whole numbers {range.Min}..{range.Max}.");

    private static string FormatDims(long[] dims) => string.Join(",", dims.Select(d => d < 0 ? "?" : d.ToString()));
}
