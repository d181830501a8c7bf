using GenService.Inference;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Api.KServe;

/// <summary>
/// How the v2 request reader's failures are made and worded, shared by its passes (imported with
/// <c>using static</c>): a <see cref="RequestValidationException"/> per bad field, and one way of writing shapes and
/// a graph's inputs so every message shows them alike.
/// </summary>
internal static class V2RequestErrors
{
    /// <summary>A signature's tensors as errors list them: 'name' (DATATYPE [dims]).</summary>
    public static string Names(IReadOnlyList<TensorSpec> specs) =>
        string.Join(", ", specs.Select(s => $"'{s.Name}' ({Tensor.V2Name(s.ElementType)} {ExampleShape(s)})"));

    /// <summary>The graph's shape for an input, -1 where any size goes.</summary>
    public static string ExampleShape(TensorSpec spec) => Format(spec.Dims);

    /// <summary>A shape as errors write it: [1, 16].</summary>
    public static string Format(long[] dims) => "[" + string.Join(", ", dims) + "]";

    /// <summary>A 400 {"error"} naming <paramref name="field"/>, the JSON path of the bad value.</summary>
    public static RequestValidationException Invalid(string field, string detail) => new(field, detail);
}
