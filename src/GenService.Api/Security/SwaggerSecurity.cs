using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace GenService.Api.Security;

/// <summary>
/// Swagger's Authorize button (a Bearer and an X-API-Key scheme) and, per operation, the schemes it takes: admin
/// operations require one (the lock icon, and "Admin" in the summary); the other keyed routes list them as optional
/// (an empty alternative), so that Swagger UI sends the key it was given to every route that reads one.
/// </summary>
internal sealed class SwaggerSecurity : IOperationFilter
{
    public const string Bearer = "Bearer";
    public const string ApiKey = "ApiKey";

    public static void AddDefinitions(SwaggerGenOptions options)
    {
        options.AddSecurityDefinition(Bearer, new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "An API key as 'Authorization: Bearer <key>' (GenService:Auth:Keys).",
        });
        options.AddSecurityDefinition(ApiKey, new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = ApiKeyAuthenticationHandler.HeaderName,
            Description = "An API key as 'X-API-Key: <key>' (GenService:Auth:Keys).",
        });
        options.OperationFilter<SwaggerSecurity>();
    }

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        IList<object> metadata = context.ApiDescription.ActionDescriptor.EndpointMetadata;
        if (metadata.OfType<IAllowAnonymous>().Any())
        {
            return;
        }

        string?[] policies = [.. metadata.OfType<IAuthorizeData>().Select(a => a.Policy)];
        if (policies.Length == 0)
        {
            return;
        }

        bool admin = policies.Contains(CallerPolicies.Admin);
        operation.Security ??= [];
        operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Bearer, context.Document)] = [] });
        operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(ApiKey, context.Document)] = [] });
        if (admin)
        {
            operation.Summary = "Admin: " + operation.Summary;
            operation.Description += "\n\nNeeds a key with the role `admin` (401 without a key, 403 for a user key); with no admin key "
                + "configured, only callers on the loopback address (403 otherwise).";
        }
        else
        {
            // Optional: without GenService:Auth:RequireKey anonymous callers are served too.
            operation.Security.Add(new OpenApiSecurityRequirement());
        }
    }
}
