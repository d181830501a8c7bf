namespace GenService.Api.Families;

/// <summary>
/// The /v1/{family}/{model}/... routes: one route group per model family (docs/http-api.md). Program.cs calls
/// <see cref="MapFamilyEndpoints"/> once.
/// </summary>
internal static class FamilyEndpoints
{
    public static IEndpointRouteBuilder MapFamilyEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGanEndpoints();
        app.MapVaeEndpoints();
        app.MapFlowEndpoints();
        app.MapDiffusionEndpoints();
        app.MapArEndpoints();
        return app;
    }
}
