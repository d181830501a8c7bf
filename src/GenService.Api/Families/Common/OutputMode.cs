using GenService.Generation;
using GenService.Inference;
using GenService.Inference.Manifest;

namespace GenService.Api.Families.Common;

/// <summary>What a response carries per sample: the PNG, the raw tensor, or both.</summary>
internal readonly record struct OutputMode(bool Png, bool Tensor)
{
    /// <summary>
    /// Parse the "output" field (<see cref="WireChoices.Output"/>). Image models default to png; text and tensor
    /// models have no PNG form, so asking them for one is a 400.
    /// </summary>
    public static OutputMode Parse(string? value, ModelManifest manifest)
    {
        bool isImage = manifest.Output.Kind == "image";
        switch (WireChoices.Output.Parse(value))
        {
            case null:
                return isImage ? new OutputMode(true, false) : new OutputMode(false, true);
            case OutputForm.Png or OutputForm.Both when !isImage:
                throw new RequestValidationException("output", $"'output': model '{manifest.Name}' produces {manifest.Output.Kind} samples, which have no PNG form; use \"tensor\".");
            case OutputForm.Png:
                return new OutputMode(true, false);
            case OutputForm.Tensor:
                return new OutputMode(false, true);
            default:
                return new OutputMode(true, true);
        }
    }
}
