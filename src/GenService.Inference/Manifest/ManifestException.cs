namespace GenService.Inference.Manifest;

/// <summary>
/// A model folder breaks docs/model-contract.md: a bad model.json, a missing or unreadable ONNX file, or a
/// graph that does not match its mapping. The message names the file and the field.
/// </summary>
public sealed class ManifestException(string message, Exception? inner = null) : Exception(message, inner);
