using GenService.Inference.Callers;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace GenService.Api.Hosting;

/// <summary>
/// Documents the optional <c>X-Request-Timeout-Ms</c> header (<see cref="RequestDeadline"/>) on the routes that compute
/// (the /v1 POST routes and /v2 infer). The middleware reads it for every request, so no endpoint declares it itself.
/// </summary>
internal sealed class RequestTimeoutHeaderFilter : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        string path = context.ApiDescription.RelativePath ?? "";
        bool computes = path.StartsWith("v1/", StringComparison.Ordinal) || path.EndsWith("/infer", StringComparison.Ordinal);
        if (!computes || !string.Equals(context.ApiDescription.HttpMethod, "POST", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        operation.Parameters ??= [];
        operation.Parameters.Add(new OpenApiParameter
        {
            Name = RequestDeadline.Header,
            In = ParameterLocation.Header,
            Required = false,
            Description = "A shorter deadline for this request, in whole milliseconds (at least 1) from its arrival; it can only "
                + "shorten the server's (GenService:DefaultDeadlineMs, 30 s). Past it: 504, or an SSE error event once streaming.",
            Schema = new OpenApiSchema { Type = JsonSchemaType.Integer, Format = "int32", Minimum = "1" },
        });
    }
}
