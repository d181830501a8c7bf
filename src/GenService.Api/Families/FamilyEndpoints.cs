using GenService.Api.Security;

namespace GenService.Api.Families;

/// <summary>
/// The /v1/{family}/{model}/... routes: one route group per model family (docs/http-api.md). Program.cs calls
/// <see cref="MapFamilyEndpoints"/> once.
/// </summary>
internal static class FamilyEndpoints
{
    public static IEndpointRouteBuilder MapFamilyEndpoints(this IEndpointRouteBuilder app)
    {
        // One group without a prefix, so that every family route reads the caller's key in one place.
        RouteGroupBuilder families = app.MapGroup("").RequireAuthorization(CallerPolicies.User);
        families.MapGanEndpoints();
        families.MapVaeEndpoints();
        families.MapFlowEndpoints();
        families.MapDiffusionEndpoints();
        families.MapArEndpoints();
        return app;
    }
}
