using GenService.Inference;
using GenService.Inference.Manifest;

namespace GenService.Api.Families.Common;

/// <summary>What a response carries per sample: the PNG, the raw tensor, or both.</summary>
public readonly record struct OutputMode(bool Png, bool Tensor)
{
    /// <summary>
    /// Parse the "output" field. Image models default to png; text and tensor models have no PNG form,
    /// so asking them for one is a 400.
    /// </summary>
    public static OutputMode Parse(string? value, ModelManifest manifest, string field = "output")
    {
        bool isImage = manifest.Output.Kind == "image";
        switch (value?.ToLowerInvariant())
        {
            case null or "":
                return isImage ? new OutputMode(true, false) : new OutputMode(false, true);
            case "png" or "both" when !isImage:
                throw new RequestValidationException(field, $"'{field}': model '{manifest.Name}' produces {manifest.Output.Kind} samples, which have no PNG form; use \"tensor\".");
            case "png":
                return new OutputMode(true, false);
            case "tensor":
                return new OutputMode(false, true);
            case "both":
                return new OutputMode(true, true);
            default:
                throw new RequestValidationException(field, $"'{field}' must be one of png, tensor, both; got '{value}'.");
        }
    }
}
