using System.Text.Json.Nodes;
using GenService.Api.Families.Common;
using GenService.Api.KServe;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace GenService.Api.Hosting;

/// <summary>
/// Puts a runnable example body on the routes that take one, keyed by the route's name (WithName), so
/// "Try it out" in Swagger UI starts from a request that works against the shipped models. The v2 bodies
/// are read by hand (no [FromBody]), so their schema is added here too.
/// </summary>
internal sealed class SwaggerExamplesFilter : IOperationFilter
{
    private static readonly Dictionary<string, (Type Schema, string Example)> RequestBodies = new(StringComparer.Ordinal)
    {
        ["V2Infer"] = (typeof(V2InferRequest), """
            {"id": "example-1",
             "inputs": [{"name": "latent", "shape": [1, 32], "datatype": "FP32",
                         "data": [-1.0, 0.4, -0.4, 1.0, 0.2, -0.6, 0.8, 0.0, -0.8, 0.6, -0.2, -1.0, 0.4, -0.4, 1.0, 0.2, -0.6, 0.8, 0.0, -0.8, 0.6, -0.2, -1.0, 0.4, -0.4, 1.0, 0.2, -0.6, 0.8, 0.0, -0.8, 0.6]},
                        {"name": "class_label", "shape": [1], "datatype": "INT64", "data": [3]}]}
            """),
        ["V2RepositoryIndex"] = (typeof(V2RepositoryIndexRequest), """{"ready": false}"""),
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        // Family routes carry their example as endpoint metadata (Families/Common/RequestExample.cs).
        if (context.ApiDescription.ActionDescriptor.EndpointMetadata.OfType<RequestExample>().FirstOrDefault() is { } example
            && operation.RequestBody?.Content is { } content)
        {
            foreach (OpenApiMediaType media in content.Values.OfType<OpenApiMediaType>())
            {
                media.Example = JsonNode.Parse(example.Json);
            }

            return;
        }

        if (operation.OperationId is not { } id || !RequestBodies.TryGetValue(id, out (Type Schema, string Example) body))
        {
            return;
        }

        operation.RequestBody = new OpenApiRequestBody
        {
            Required = id == "V2Infer",
            Content = new Dictionary<string, IOpenApiMediaType>
            {
                ["application/json"] = new OpenApiMediaType
                {
                    Schema = context.SchemaGenerator.GenerateSchema(body.Schema, context.SchemaRepository),
                    Example = JsonNode.Parse(body.Example),
                },
            },
        };
    }
}

/// <summary>/metrics is prometheus-net's middleware endpoint, which the API explorer cannot see; describe it by hand.</summary>
internal sealed class MetricsDocumentFilter : IDocumentFilter
{
    public void Apply(OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        swaggerDoc.Paths ??= [];
        swaggerDoc.Paths["/metrics"] = new OpenApiPathItem
        {
            Operations = new Dictionary<HttpMethod, OpenApiOperation>
            {
                [HttpMethod.Get] = new()
                {
                    OperationId = "Metrics",
                    Summary = "Prometheus metrics",
                    Description = "Prometheus text format: genservice_requests_total (by model, family, route, status), "
                        + "genservice_queue_wait_seconds, genservice_compute_seconds, genservice_batch_size (histograms), "
                        + "genservice_queue_depth, genservice_rejected_total, genservice_cancelled_total, "
                        + "genservice_network_evaluations_total, and prometheus-net's http_request_duration_seconds.",
                    Tags = new HashSet<OpenApiTagReference> { new("Operations") },
                    Responses = new OpenApiResponses { ["200"] = new OpenApiResponse { Description = "text/plain; version=0.0.4" } },
                },
            },
        };
    }
}
