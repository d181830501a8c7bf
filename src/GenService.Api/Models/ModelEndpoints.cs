using GenService.Generation.TextToImage;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Api.Security;
using Microsoft.AspNetCore.Http.HttpResults;

namespace GenService.Api.Models;

/// <summary>GET /v1/models and GET /v1/models/{name}: what this server serves, and why a model does not.</summary>
internal static class ModelEndpoints
{
    public static IEndpointRouteBuilder MapModelEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder models = app.MapGroup("/v1/models").WithTags("Models").RequireAuthorization(CallerPolicies.User);

        models.MapGet("/", ListModels)
            .WithName("ListModels")
            .WithSummary("List the models")
            .WithDescription("Every model folder in the repository, ready or not, with its family, output, "
                + "conditioning, latent shape and the routes that apply to it. A model that failed to load is "
                + "listed with ready=false; GET /v1/models/{name} says why.");

        models.MapGet("/{name}", GetModel)
            .WithName("GetModel")
            .WithSummary("Describe one model")
            .WithDescription("The listing's fields plus the model card, the diffusion scheduler or AR tokens, "
                + "batching settings, instances, and `error` (why it is not ready) when it failed to load.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        return app;
    }

    internal static Ok<ModelListResponse> ListModels(IModelRepository repository) =>
        TypedResults.Ok(new ModelListResponse(repository.List().Select(Summary).ToList()));

    internal static Ok<ModelDetail> GetModel(string name, IModelRepository repository)
    {
        ModelEntry entry = repository.Find(name) ?? throw new ModelNotFoundException(name);
        ModelManifest? m = entry.Manifest;
        ModelSummary s = Summary(entry);
        return TypedResults.Ok(new ModelDetail
        {
            Name = s.Name,
            Family = s.Family,
            Version = s.Version,
            Ready = s.Ready,
            State = s.State,
            Description = s.Description,
            Output = s.Output,
            Conditioning = s.Conditioning,
            LatentShape = s.LatentShape,
            Endpoints = s.Endpoints,
            V2Models = s.V2Models,
            Card = m?.Card,
            Scheduler = m?.Scheduler,
            Tokens = m?.Tokens,
            Likelihood = m?.Likelihood,
            Batching = m?.Batching,
            Instances = m?.Instances,
            Pipeline = m?.TextToImage is { } p ? PipelineDetail(m, p) : null,
            Error = entry.Error,
            LoadedAt = entry.LoadedAt,
        });
    }

    private static TextToImageDetail PipelineDetail(ModelManifest m, TextToImageSpec p) => new()
    {
        PipelineClass = p.PipelineClass,
        SchedulerClass = p.SchedulerClass,
        DefaultSampler = p.DefaultSampler,
        DefaultGuidanceScale = TextToImagePipeline.DefaultGuidanceScale,
        DefaultSize = [m.Output.Shape[1], m.Output.Shape[2]],
        SizeStep = p.VaeScaleFactor * p.UNetScaleFactor,
        VaeScaleFactor = p.VaeScaleFactor,
        ScalingFactor = p.ScalingFactor,
        MaxTokens = p.MaxTokens,
        ImageToImage = m.Graphs.ContainsKey("vae_encoder"),
        Parts = m.Graphs.ToDictionary(g => g.Key, g => new PipelinePart(g.Value.File, p.PartBytes.GetValueOrDefault(g.Key))),
    };

    /// <summary>Servable now: ready, or reloading while the previous version still serves.</summary>
    internal static bool IsReady(ModelEntry entry) =>
        entry.Model is not null && entry.State is ModelState.Ready or ModelState.Loading;

    internal static ModelSummary Summary(ModelEntry entry)
    {
        ModelManifest? m = entry.Manifest;
        return new ModelSummary
        {
            Name = entry.Name,
            Family = m?.Family.WireName(),
            Version = m?.Version,
            Ready = IsReady(entry),
            State = entry.State.ToString().ToLowerInvariant(),
            Description = m?.Description,
            Output = m?.Output,
            Conditioning = m?.Conditioning,
            LatentShape = m?.LatentShape,
            Endpoints = m is null ? [] : Routes(m),
            V2Models = m is null ? [] : m.Graphs.Keys.Order(StringComparer.Ordinal).Select(role => $"{m.Name}.{role}").ToList(),
        };
    }

    /// <summary>The /v1 routes a model offers: its family's routes whose graphs it has (<see cref="FamilyDescriptor"/>).</summary>
    public static IReadOnlyList<string> Routes(ModelManifest manifest)
    {
        FamilyDescriptor family = FamilyDescriptor.Of(manifest.Family);
        return [.. family.RoutesFor([.. manifest.Graphs.Keys]).Select(r => $"POST /v1/{family.WireName}/{manifest.Name}/{r.Path}")];
    }
}
