namespace GenService.Api.Errors;

/// <summary>
/// A request body over the route's limit (<c>GenService:Api:MaxRequestBodyBytes</c>, or MaxInferBodyBytes on v2
/// infer), found from Content-Length or while a chunked body was read. Deliberately not an IOException like
/// Kestrel's own BadHttpRequestException: minimal-API body binding swallows those and the client then got an
/// empty 413; this one reaches <see cref="GenServiceExceptionHandler"/> (413 with a body).
/// </summary>
/// <param name="limit">The route's limit, in bytes.</param>
/// <param name="setting">The configuration key that sets it.</param>
internal sealed class RequestBodyTooLargeException(long limit, string setting)
    : Exception($"The request body is over the limit of {limit} bytes for this route ({setting}); send a smaller body.")
{
    /// <summary>The limit that was exceeded, in bytes.</summary>
    public long Limit { get; } = limit;
}
