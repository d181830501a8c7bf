using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;

namespace GenService.Api.Families.Common;

/// <summary>Finds the ready model behind a /v1/{family}/{model} route.</summary>
public static class FamilyModels
{
    /// <summary>Route segment of a family ("gan", "vae", ...).</summary>
    public static string RouteName(this ModelFamily family) => family.ToString().ToLowerInvariant();

    /// <summary>
    /// The ready model, or: 404 when unknown, 404 naming the real family when asked under the wrong one,
    /// 503 when loading or failed.
    /// </summary>
    public static ILoadedModel Resolve(IModelRepository repository, ModelFamily family, string name)
    {
        ModelEntry entry = repository.Find(name) ?? throw new ModelNotFoundException(name);
        if (entry.Manifest is { } manifest && manifest.Family != family)
        {
            throw new WrongFamilyException(name, family.RouteName(), manifest.Family.RouteName());
        }

        return repository.GetReady(name);
    }

    /// <summary>The runner for a role the route needs; a 404 naming the missing graph when the model lacks it.</summary>
    public static IGraphRunner RequireGraph(ILoadedModel model, string role, string route)
    {
        return model.Graph(role) ?? throw new GraphNotAvailableException(model.Manifest.Name, role, route);
    }
}
