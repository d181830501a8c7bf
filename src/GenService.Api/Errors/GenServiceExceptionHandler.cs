using GenService.Inference.Diagnostics;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;

namespace GenService.Api.Errors;

/// <summary>
/// Turns every exception that escapes an endpoint into the protocol's error shape (<see cref="ErrorResponses"/>):
/// <code>
///   /v2/...     -> {"error": "..."}                       (KServe v2 / Open Inference Protocol)
///   elsewhere   -> application/problem+json (RFC 9457)    (with traceId, detail, and field/family extensions)
///   client gone -> nothing written, logged as 499
/// </code>
/// A 4xx is logged as one Information line without the exception; only unexpected failures carry a stack trace.
/// </summary>
internal sealed partial class GenServiceExceptionHandler(ILogger<GenServiceExceptionHandler> logger) : IExceptionHandler
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
        await ErrorResponses.WriteAsync(httpContext, error, exception);

        // Always handled: returning false would make the middleware log the client's mistake as an unhandled exception.
        return true;
    }

    [LoggerMessage(EventId = LogEvents.ClientGone, Level = LogLevel.Information, Message = "{Method} {Path}: client disconnected before the response (499)")]
    private static partial void LogClientGone(ILogger logger, string method, string path);

    [LoggerMessage(EventId = LogEvents.RequestFailed, Level = LogLevel.Information, Message = "{Method} {Path} -> {Status}: {Detail}")]
    private static partial void LogMapped(ILogger logger, string method, string path, int status, string detail);

    [LoggerMessage(EventId = LogEvents.Unhandled, Level = LogLevel.Error, Message = "{Method} {Path} failed")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string method, string path);
}
