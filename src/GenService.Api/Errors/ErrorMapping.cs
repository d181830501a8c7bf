using System.Text.Json;
using GenService.Inference;
using Microsoft.AspNetCore.Http;

namespace GenService.Api.Errors;

/// <summary>How one failure looks over HTTP: the same status on /v1 (problem+json) and /v2 ({"error"}).</summary>
/// <param name="Status">HTTP status code.</param>
/// <param name="Title">Short, fixed summary for the status.</param>
/// <param name="Detail">What went wrong and what to do about it.</param>
/// <param name="Field">The request field at fault, when one is (400s).</param>
/// <param name="RetryAfter">Sent as Retry-After (429, and 503 while shutting down).</param>
/// <param name="Family">The model's real family (wrong-family 404s).</param>
internal sealed record HttpError(int Status, string Title, string Detail, string? Field = null, TimeSpan? RetryAfter = null, string? Family = null)
{
    /// <summary>nginx's "client closed request": logged only, never sent (nobody is listening).</summary>
    public const int ClientClosedRequest = 499;
}

/// <summary>Domain and framework exceptions to HTTP errors. One table, so /v1 and /v2 never disagree.</summary>
internal static class ErrorMapping
{
    public static HttpError Map(Exception exception, HttpContext context) => exception switch
    {
        RequestValidationException e => new(StatusCodes.Status400BadRequest, "Invalid request", e.Message, e.Field),

        // The batcher or an iteration loop isolated this request as the one its call could not compute (the others
        // completed): the client's input, not the server, is at fault.
        InputNotComputableException e => new(StatusCodes.Status400BadRequest, "Invalid request", e.Message, "inputs"),
        WrongFamilyException e => new(StatusCodes.Status404NotFound, "Model not found", e.Message, Family: e.ActualFamily),
        ModelNotFoundException e => new(StatusCodes.Status404NotFound, "Model not found", e.Message),
        ModelNotReadyException e => new(StatusCodes.Status503ServiceUnavailable, "Model not ready", e.Message),
        TooManyRequestsException e => new(StatusCodes.Status429TooManyRequests, "Too many requests", e.Message, RetryAfter: e.RetryAfter),
        DeadlineExceededException e => new(StatusCodes.Status504GatewayTimeout, "Deadline exceeded", e.Message),
        ServiceShuttingDownException e => new(StatusCodes.Status503ServiceUnavailable, "Service unavailable", e.Message, RetryAfter: e.RetryAfter),

        // Minimal APIs throw BadHttpRequestException for unreadable bodies (RouteHandlerOptions.ThrowOnBadRequest
        // is on so that they reach this handler instead of an empty 400). The JsonException inside says where.
        BadHttpRequestException { InnerException: JsonException json } => FromJson(json),
        BadHttpRequestException { StatusCode: StatusCodes.Status415UnsupportedMediaType } => RouteErrors.UnsupportedMediaType(context),
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } e => new(e.StatusCode, "Content too large", e.Message),
        // "Required parameter ... was not provided from body" / "Implicit body inferred ... but no body was provided".
        BadHttpRequestException e when e.Message.Contains("was not provided from body", StringComparison.Ordinal)
            || e.Message.Contains("no body was provided", StringComparison.Ordinal) =>
            new(e.StatusCode, "Invalid request body", "The request body is empty (or JSON null): send a JSON object with the route's fields (see /swagger)."),
        BadHttpRequestException e => new(e.StatusCode, "Bad request", e.Message),
        RequestBodyTooLargeException e => new(StatusCodes.Status413PayloadTooLarge, "Content too large", e.Message),
        JsonException e => FromJson(e),
        OperationCanceledException when context.RequestAborted.IsCancellationRequested =>
            new(HttpError.ClientClosedRequest, "Client closed request", "The client disconnected before the response was ready."),
        _ => new(StatusCodes.Status500InternalServerError, "Internal server error",
            "The server failed unexpectedly; the traceId identifies the failure in the server log."),
    };

    private static HttpError FromJson(JsonException e)
    {
        // Path is "$.count" or "$.inputs[0].data"; the field name without "$." is what a person edits.
        string? field = e.Path is { Length: > 2 } p && p.StartsWith("$.", StringComparison.Ordinal) ? p[2..] : null;
        string where = field is null ? "" : $" at '{field}'";
        string detail = $"The request body is not valid JSON or has a value of the wrong type{where}: {FirstSentence(e.Message)}";
        return new(StatusCodes.Status400BadRequest, "Invalid request body", detail, field);
    }

    // System.Text.Json appends " Path: ... | LineNumber: ..." which repeats the field and means little to a client,
    // and names .NET types ("System.Nullable`1[System.Int32]") where a client needs the JSON it should send.
    private static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        string first = cut > 0 ? message[..cut] : message;
        if (first.StartsWith("Duplicate property '", StringComparison.Ordinal) && first.IndexOf('\'', 20) is > 20 and int end)
        {
            return $"the key '{first[20..end]}' appears twice in the same object; send each key once.";
        }

        const string Converted = "The JSON value could not be converted to ";
        return first.StartsWith(Converted, StringComparison.Ordinal)
            ? $"expected {JsonKind(first[Converted.Length..].TrimEnd('.'))}."
            : first;
    }

    /// <summary>What a .NET target type is in JSON terms: "an integer (32-bit)", "an array of numbers", "an object".</summary>
    private static string JsonKind(string type) => Kind(type).One;

    private static (string One, string Many) Kind(string type)
    {
        string t = type.StartsWith("System.Nullable`1[", StringComparison.Ordinal) ? type[18..^1] : type;
        if (t.EndsWith("[]", StringComparison.Ordinal) || t.StartsWith("System.Collections.Generic.List`1[", StringComparison.Ordinal))
        {
            string element = t.EndsWith("[]", StringComparison.Ordinal) ? t[..^2] : t[34..^1];
            return ("an array of " + Kind(element).Many, "arrays of " + Kind(element).Many);
        }

        return t switch
        {
            "System.Int32" => ("an integer (32-bit)", "integers (32-bit)"),
            "System.Int64" => ("an integer (64-bit)", "integers (64-bit)"),
            "System.UInt64" => ("a non-negative integer (64-bit)", "non-negative integers (64-bit)"),
            "System.Single" or "System.Double" => ("a number", "numbers"),
            "System.String" => ("a string", "strings"),
            "System.Boolean" => ("true or false", "booleans"),
            _ => ("an object", "objects"),
        };
    }
}
