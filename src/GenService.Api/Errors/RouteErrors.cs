using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Net.Http.Headers;

namespace GenService.Api.Errors;

/// <summary>
/// The errors that routing and the server decide before any endpoint runs, and which leave the response without a
/// body: 404 (no route), 405 (the route exists for other methods; routing sets Allow), 415 (the body's type) and
/// 413 (the body's size). <c>UseStatusCodePages</c> hands every empty 4xx/5xx here, and it gets the protocol's
/// error shape (<see cref="ErrorResponses"/>) with a detail that says what to send instead.
/// <para>
/// There are deliberately no catch-all /v1 and /v2 fallback routes: a fallback matches every method and content
/// type, so it used to win over routing's 405 and 415 and turn both into "no route" 404s.
/// </para>
/// </summary>
internal static class RouteErrors
{
    /// <summary>The content types /v2/models/{name}/infer reads: JSON tensors, or the binary tensor data extension.</summary>
    public const string InferContentTypes = "'Content-Type: application/json' (JSON tensors), or 'application/octet-stream' with an Inference-Header-Content-Length header (binary tensor data)";

    /// <summary>The <c>UseStatusCodePages</c> handler.</summary>
    public static Task WriteAsync(StatusCodeContext context)
    {
        HttpContext http = context.HttpContext;
        HttpError error = For(http, http.Response.StatusCode);
        return ErrorResponses.WriteAsync(http, error);
    }

    /// <summary>The error for a status that came back without a body.</summary>
    public static HttpError For(HttpContext context, int status) => status switch
    {
        StatusCodes.Status404NotFound => NotFound(context),
        StatusCodes.Status405MethodNotAllowed => MethodNotAllowed(context),
        StatusCodes.Status413PayloadTooLarge => new(status, "Content too large", "The request body is larger than this route accepts; send a smaller body."),
        StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType(context),
        _ => new(status, Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status), $"The request failed with status {status}."),
    };

    /// <summary>415: which content type to send on this route, and what came.</summary>
    public static HttpError UnsupportedMediaType(HttpContext context)
    {
        string sent = string.IsNullOrEmpty(context.Request.ContentType) ? "the request had no Content-Type" : $"got '{context.Request.ContentType}'";
        string want = ErrorResponses.IsV2(context) && context.Request.Path.Value?.EndsWith("/infer", StringComparison.OrdinalIgnoreCase) == true
            ? InferContentTypes
            : "'Content-Type: application/json' (a JSON body)";
        return new(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type", $"Send the body with {want}; {sent}.");
    }

    private static HttpError NotFound(HttpContext context)
    {
        string where = ErrorResponses.IsV2(context)
            ? "The v2 routes are listed at /swagger."
            : "The routes are listed at /swagger; models at GET /v1/models.";
        return new(StatusCodes.Status404NotFound, "Not found", $"No route {context.Request.Method} {context.Request.Path}. {where}");
    }

    private static HttpError MethodNotAllowed(HttpContext context)
    {
        string allow = context.Response.Headers[HeaderNames.Allow].ToString();
        string use = allow.Length > 0 ? $"; use {allow}" : "";
        return new(StatusCodes.Status405MethodNotAllowed, "Method not allowed", $"{context.Request.Method} is not allowed on {context.Request.Path}{use}.");
    }
}
