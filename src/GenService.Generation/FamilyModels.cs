using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;

namespace GenService.Generation;

/// <summary>Finds the ready model a family's request is for.</summary>
public static class FamilyModels
{
    /// <summary>
    /// The ready model, or: <see cref="ModelNotFoundException"/> when unknown, <see cref="WrongFamilyException"/>
    /// naming the real family when asked under another one, <see cref="ModelNotReadyException"/> when loading or failed.
    /// </summary>
    public static ILoadedModel Resolve(IModelRepository repository, ModelFamily family, string name)
    {
        ModelEntry entry = repository.Find(name) ?? throw new ModelNotFoundException(name);
        if (entry.Manifest is { } manifest && manifest.Family != family)
        {
            throw new WrongFamilyException(name, family.WireName(), manifest.Family.WireName());
        }

        return repository.GetReady(name);
    }

    /// <summary>The runner for a role the route needs; <see cref="GraphNotAvailableException"/> naming the missing graph when the model lacks it.</summary>
    public static IGraphRunner RequireGraph(ILoadedModel model, string role, string route)
        => model.Graph(role) ?? throw new GraphNotAvailableException(model.Manifest.Name, role, route);
}
