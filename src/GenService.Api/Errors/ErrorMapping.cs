using System.Text.Json;
using GenService.Generation.Budgets;
using GenService.Inference;
using Microsoft.AspNetCore.Http;

namespace GenService.Api.Errors;

/// <summary>How one failure looks over HTTP: the same status on /v1 (problem+json) and /v2 ({"error"}).</summary>
/// <param name="Status">HTTP status code.</param>
/// <param name="Title">Short, fixed summary for the status.</param>
/// <param name="Detail">What went wrong and what to do about it.</param>
/// <param name="Field">The request field at fault, when one is (400s).</param>
/// <param name="RetryAfter">Sent as Retry-After (429).</param>
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
        WrongFamilyException e => new(StatusCodes.Status404NotFound, "Model not found", e.Message, Family: e.ActualFamily),
        ModelNotFoundException e => new(StatusCodes.Status404NotFound, "Model not found", e.Message),
        ModelNotReadyException e => new(StatusCodes.Status503ServiceUnavailable, "Model not ready", e.Message),
        QueueFullException e => new(StatusCodes.Status429TooManyRequests, "Too many requests", e.Message, RetryAfter: e.RetryAfter),
        WorkBudgetExceededException e => new(StatusCodes.Status429TooManyRequests, "Too many requests", e.Message, RetryAfter: e.RetryAfter),
        DeadlineExceededException e => new(StatusCodes.Status504GatewayTimeout, "Deadline exceeded", e.Message),

        // Minimal APIs throw BadHttpRequestException for unreadable bodies (RouteHandlerOptions.ThrowOnBadRequest
        // is on so that they reach this handler instead of an empty 400). The JsonException inside says where.
        BadHttpRequestException { InnerException: JsonException json } => FromJson(json),
        BadHttpRequestException e => new(e.StatusCode, "Bad request", e.Message),
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

    // System.Text.Json appends " Path: ... | LineNumber: ..." which repeats the field and means little to a client.
    private static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
