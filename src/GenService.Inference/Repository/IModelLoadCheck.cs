namespace GenService.Inference.Repository;

/// <summary>
/// A check a layer above runs on every model version after its graphs load and before it turns ready (the text-to-image
/// pipeline loads the folder's tokenizer here). Throwing a <see cref="Manifest.ManifestException"/> fails the load: the
/// model is not ready, with the message (naming the file and field) as the reason, and the version is disposed.
/// </summary>
public interface IModelLoadCheck
{
    void Check(ILoadedModel model);
}
