namespace GenService.Api.Families.Common;

/// <summary>
/// Endpoint metadata: a working example request body, shown by Swagger UI ("Try it out" starts from it).
/// </summary>
/// <param name="Json">The example body as JSON text.</param>
public sealed record RequestExample(string Json);

/// <summary>Route-builder sugar shared by the family route groups.</summary>
public static class FamilyRouteExtensions
{
    /// <summary>Document a sampling-style route: JSON or PNG grid out, problem+json errors, an example body.</summary>
    public static RouteHandlerBuilder DescribeSampling(this RouteHandlerBuilder route, string name, string summary, string description, string exampleJson)
    {
        return route
            .WithName(name)
            .WithSummary(summary)
            .WithDescription(description)
            .WithMetadata(new RequestExample(exampleJson))
            .Produces<SampleResponse>(StatusCodes.Status200OK, "application/json")
            .Produces(StatusCodes.Status200OK, contentType: "image/png")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
    }

    /// <summary>Document a route that answers with one result per input.</summary>
    public static RouteHandlerBuilder DescribeResults<T>(this RouteHandlerBuilder route, string name, string summary, string description, string exampleJson)
    {
        return route
            .WithName(name)
            .WithSummary(summary)
            .WithDescription(description)
            .WithMetadata(new RequestExample(exampleJson))
            .Produces<ResultsResponse<T>>(StatusCodes.Status200OK, "application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable);
    }
}
