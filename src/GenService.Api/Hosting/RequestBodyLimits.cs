using GenService.Api.Errors;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace GenService.Api.Hosting;

/// <summary>
/// The request body limit of each route, enforced so that a body over it is a 413 with the protocol's error body:
/// <c>GenService:Api:MaxRequestBodyBytes</c> everywhere, <c>MaxInferBodyBytes</c> on routes marked with
/// <see cref="LargeBodyMetadata"/> (v2 infer). A declared Content-Length over the limit is refused before anything is
/// read; a chunked body is counted as it is read (<see cref="LimitedReadStream"/>). The server's own limit
/// (Kestrel's MaxRequestBodySize) is set to the route's, so the two never disagree.
/// </summary>
internal static class RequestBodyLimits
{
    /// <summary>Runs after routing (it reads the endpoint's metadata).</summary>
    public static IApplicationBuilder UseRequestBodyLimits(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            GenServiceApiOptions options = context.RequestServices.GetRequiredService<IOptions<GenServiceApiOptions>>().Value;
            bool large = context.GetEndpoint()?.Metadata.GetMetadata<LargeBodyMetadata>() is not null;
            long limit = large ? options.MaxInferBodyBytes : options.MaxRequestBodyBytes;
            string setting = $"{GenServiceApiOptions.SectionName}:{(large ? nameof(options.MaxInferBodyBytes) : nameof(options.MaxRequestBodyBytes))}";
            HttpRequest request = context.Request;
            if (request.ContentLength > limit)
            {
                throw new RequestBodyTooLargeException(limit, setting);
            }

            IHttpMaxRequestBodySizeFeature? serverLimit = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
            if (request.ContentLength is null && HasBody(request))
            {
                // Counted here instead of by the server, whose IOException the body binding would swallow.
                if (serverLimit is { IsReadOnly: false })
                {
                    serverLimit.MaxRequestBodySize = null;
                }

                request.Body = new LimitedReadStream(request.Body, limit, setting);
            }
            else if (serverLimit is { IsReadOnly: false })
            {
                serverLimit.MaxRequestBodySize = limit;
            }

            await next(context);
        });

    /// <summary>Whether a request without Content-Length may still carry a (chunked) body.</summary>
    private static bool HasBody(HttpRequest request) =>
        request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody
        ?? !(HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method));
}

/// <summary>Endpoint metadata: the route reads bodies up to <c>GenService:Api:MaxInferBodyBytes</c> (v2 infer).</summary>
internal sealed class LargeBodyMetadata
{
    public static readonly LargeBodyMetadata Instance = new();

    private LargeBodyMetadata()
    {
    }
}

/// <summary>A read-only body stream that throws <see cref="RequestBodyTooLargeException"/> past its limit.</summary>
internal sealed class LimitedReadStream(Stream inner, long limit, string setting) : Stream
{
    private long _read;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _read;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int Count(int read)
    {
        _read += read;
        return _read > limit ? throw new RequestBodyTooLargeException(limit, setting) : read;
    }
}
