using System.Globalization;
using System.Text.Json;
using GenService.Api.Errors;
using Microsoft.AspNetCore.Mvc;

namespace GenService.Api.Security;

/// <summary>
/// Writes an error that happens before any endpoint runs (401, 403, 429 from the rate limiter) in the shape of the
/// route's protocol, as GenServiceExceptionHandler does for exceptions: <c>{"error": "..."}</c> on /v2, OpenAI's
/// <c>{"error": {...}}</c> on /openai, problem+json everywhere else.
/// </summary>
internal static class ProtocolErrors
{
    public static async Task WriteAsync(HttpContext context, int status, string title, string detail, TimeSpan? retryAfter = null)
    {
        HttpResponse response = context.Response;
        response.StatusCode = status;
        if (retryAfter is { } retry)
        {
            response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        string path = context.Request.Path.Value ?? "";
        if (path.StartsWith("/v2", StringComparison.OrdinalIgnoreCase))
        {
            await GenServiceExceptionHandler.WriteV2ErrorAsync(response, detail, context.RequestAborted);
            return;
        }

        if (path.StartsWith("/openai", StringComparison.OrdinalIgnoreCase))
        {
            string type = status switch
            {
                StatusCodes.Status401Unauthorized => "authentication_error",
                StatusCodes.Status403Forbidden => "permission_error",
                _ => "rate_limit_error",
            };
            await response.WriteAsJsonAsync(new { error = new { message = detail, type, param = (string?)null, code = (string?)null } }, JsonSerializerOptions.Web, context.RequestAborted);
            return;
        }

        IProblemDetailsService problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail, Instance = path },
        });
    }
}
