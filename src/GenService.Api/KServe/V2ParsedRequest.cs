using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Api.KServe;

/// <summary>
/// A parsed and validated v2 infer request, ready for <see cref="IGraphRunner.InferAsync"/>.
/// <paramref name="BinaryOutputs"/>: per requested output, whether it goes back as raw bytes (binary tensor
/// extension); <paramref name="BinaryOutputDefault"/> is the request-level <c>binary_data_output</c> for outputs
/// not listed (or all of them when <c>outputs</c> is absent).
/// </summary>
internal sealed record V2ParsedRequest(
    string? Id,
    Dictionary<string, Tensor> Inputs,
    IReadOnlyList<string>? Outputs,
    bool BinaryOutputDefault = false,
    IReadOnlyDictionary<string, bool>? BinaryOutputs = null)
{
    public bool IsBinary(string output) =>
        BinaryOutputs is not null && BinaryOutputs.TryGetValue(output, out bool binary) ? binary : BinaryOutputDefault;
}
