using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using GenService.Inference.Diagnostics;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace GenService.Api.Errors;

/// <summary>
/// Turns every exception that escapes an endpoint into the protocol's error shape:
/// <code>
///   /v2/...     -> {"error": "..."}                       (KServe v2 / Open Inference Protocol)
///   elsewhere   -> application/problem+json (RFC 9457)    (with traceId, detail, and field/family extensions)
///   client gone -> nothing written, logged as 499
/// </code>
/// </summary>
internal sealed partial class GenServiceExceptionHandler(
    IProblemDetailsService problemDetails,
    ILogger<GenServiceExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        HttpError error = ErrorMapping.Map(exception, httpContext);
        string path = httpContext.Request.Path.Value ?? "";
        if (error.Status == HttpError.ClientClosedRequest)
        {
            LogClientGone(logger, httpContext.Request.Method, path);
            httpContext.Response.StatusCode = HttpError.ClientClosedRequest;
            return true;
        }

        if (error.Status >= 500 && error.Status != StatusCodes.Status503ServiceUnavailable && error.Status != StatusCodes.Status504GatewayTimeout)
        {
            LogUnhandled(logger, exception, httpContext.Request.Method, path);
        }
        else
        {
            LogMapped(logger, httpContext.Request.Method, path, error.Status, error.Detail);
        }

        if (httpContext.Response.HasStarted)
        {
            // A streamed response already sent its status; all we can do is stop.
            return true;
        }

        httpContext.Response.Clear();
        httpContext.Response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
        {
            httpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (path.StartsWith("/v2", StringComparison.OrdinalIgnoreCase))
        {
            await WriteV2ErrorAsync(httpContext.Response, error.Detail, cancellationToken);
            return true;
        }

        var problem = new ProblemDetails
        {
            Status = error.Status,
            Title = error.Title,
            Detail = error.Detail,
            Instance = path,
        };
        if (error.Field is not null)
        {
            problem.Extensions["field"] = error.Field;
        }

        if (error.Family is not null)
        {
            problem.Extensions["family"] = error.Family;
        }

        return await problemDetails.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails = problem,
            Exception = exception,
        });
    }

    /// <summary>The KServe v2 error body: <c>{"error": "..."}</c>.</summary>
    internal static async Task WriteV2ErrorAsync(HttpResponse response, string message, CancellationToken cancellationToken)
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

    [LoggerMessage(EventId = LogEvents.ClientGone, Level = LogLevel.Information, Message = "{Method} {Path}: client disconnected before the response (499)")]
    private static partial void LogClientGone(ILogger logger, string method, string path);

    [LoggerMessage(EventId = LogEvents.RequestFailed, Level = LogLevel.Information, Message = "{Method} {Path} -> {Status}: {Detail}")]
    private static partial void LogMapped(ILogger logger, string method, string path, int status, string detail);

    [LoggerMessage(EventId = LogEvents.Unhandled, Level = LogLevel.Error, Message = "{Method} {Path} failed")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string method, string path);
}
