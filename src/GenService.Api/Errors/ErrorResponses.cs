using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;

namespace GenService.Api.Errors;

/// <summary>
/// Writes an <see cref="HttpError"/> in the shape of the protocol the path belongs to, for the exception handler
/// and for the errors no endpoint writes a body for (<see cref="RouteErrors"/>):
/// <code>
///   /v2/...     -> {"error": "..."}                       (KServe v2 / Open Inference Protocol)
///   /openai/... -> {"error": {message, type, param, code}} (OpenAI's shape, for the OpenAI-compatible routes)
///   elsewhere   -> application/problem+json (RFC 9457)    (with traceId, detail, and field/family extensions)
/// </code>
/// </summary>
internal static class ErrorResponses
{
    /// <summary>True for the KServe v2 routes, whose errors are <c>{"error": "..."}</c>.</summary>
    public static bool IsV2(HttpContext context) => context.Request.Path.StartsWithSegments("/v2", StringComparison.OrdinalIgnoreCase);

    /// <summary>Status, Retry-After and the body. The response must not have started.</summary>
    public static async Task WriteAsync(HttpContext context, HttpError error, Exception? exception = null)
    {
        HttpResponse response = context.Response;
        response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (IsV2(context))
        {
            await WriteV2ErrorAsync(response, error.Detail, context.RequestAborted);
            return;
        }

        if (context.Request.Path.StartsWithSegments("/openai", StringComparison.OrdinalIgnoreCase))
        {
            string type = error.Status switch
            {
                StatusCodes.Status401Unauthorized => "authentication_error",
                StatusCodes.Status403Forbidden => "permission_error",
                StatusCodes.Status429TooManyRequests => "rate_limit_error",
                >= 500 => "server_error",
                _ => "invalid_request_error",
            };
            await response.WriteAsJsonAsync(new { error = new { message = error.Detail, type, param = error.Field, code = (string?)null } }, JsonSerializerOptions.Web, context.RequestAborted);
            return;
        }

        var problem = new ProblemDetails
        {
            Status = error.Status,
            Title = error.Title,
            Detail = error.Detail,
            Instance = context.Request.Path,
        };
        if (error.Field is not null)
        {
            problem.Extensions["field"] = error.Field;
        }

        if (error.Family is not null)
        {
            problem.Extensions["family"] = error.Family;
        }

        // ProblemJsonWriter is registered first and always writes, whatever the Accept header.
        IProblemDetailsService problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await problems.WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem, Exception = exception });
    }

    /// <summary>The KServe v2 error body: <c>{"error": "..."}</c>.</summary>
    public static async Task WriteV2ErrorAsync(HttpResponse response, string message, CancellationToken cancellationToken)
    {
        response.ContentType = "application/json";
        using (var writer = new Utf8JsonWriter(response.BodyWriter, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("error"u8, message);
            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(cancellationToken);
    }
}
