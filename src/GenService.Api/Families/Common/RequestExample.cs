using GenService.Api.Contracts;

namespace GenService.Api.Families.Common;

/// <summary>
/// Endpoint metadata: a working example request body, shown by Swagger UI ("Try it out" starts from it).
/// </summary>
/// <param name="Json">The example body as JSON text.</param>
internal sealed record RequestExample(string Json);

/// <summary>Route-builder sugar shared by the family route groups.</summary>
internal static class FamilyRouteExtensions
{
    /// <summary>Example body of the inverse-direction routes: one 8x8 digit "9" in [-1, 1], as digits models take it.</summary>
    public const string DigitInputsExample = """{"inputs": [{"data": [-1, -1, -0.5, 0.75, 1, 0, -1, -1, -1, -0.75, 1, 0.5, 0.5, 1, -0.5, -1, -1, -0.25, 1, -1, -0.75, 1, 0, -1, -1, -0.5, 0.75, -1, -0.5, 1, -0.25, -1, -1, -0.5, 1, 0.75, 1, 1, -0.5, -1, -1, -1, -0.25, -0.25, 0.25, 1, -0.5, -1, -1, -1, -1, -1, 0.25, 0.75, -1, -1, -1, -1, -0.5, 1, 0.5, -0.75, -1, -1]}], "class_label": 9}""";

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
