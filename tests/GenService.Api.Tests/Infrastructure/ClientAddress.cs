using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace GenService.Api.Tests.Infrastructure;

/// <summary>
/// The in-process TestServer gives no client address, and the service counts a missing address as not loopback (so
/// without an admin key the repository routes would refuse every test). The test hosts therefore give each request
/// an address, outermost in the pipeline: 127.0.0.1 by default (a caller on this machine), or any other address to
/// see what a remote caller gets. A request may name its own with the header <see cref="Header"/> (tests that need
/// two callers on one host).
/// </summary>
internal sealed class ClientAddress(IPAddress address) : IStartupFilter
{
    /// <summary>Test-only header: the client address this request pretends to come from.</summary>
    public const string Header = "X-Test-Client-Address";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use((HttpContext context, RequestDelegate nextMiddleware) =>
        {
            context.Connection.RemoteIpAddress = context.Request.Headers[Header].FirstOrDefault() is { } given ? IPAddress.Parse(given) : address;
            return nextMiddleware(context);
        });
        next(app);
    };
}
