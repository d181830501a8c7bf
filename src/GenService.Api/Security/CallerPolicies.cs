using System.Net;
using Microsoft.AspNetCore.Authorization;

namespace GenService.Api.Security;

/// <summary>
/// The two authorization policies on the route groups:
/// <code>
///   user   every /v1, /v2 (health aside) and /openai route: a known key, or anonymous unless RequireKey
///   admin  the repository API and anything else that changes state: an admin key; with no admin key
///          configured, any loopback caller (secure by default: a fresh install cannot be unloaded remotely)
/// </code>
/// A presented key that is unknown fails both (401), whether or not keys are required.
/// </summary>
internal static class CallerPolicies
{
    public const string User = "user";
    public const string Admin = "admin";

    public static void Add(AuthorizationOptions options)
    {
        options.AddPolicy(User, p => p.AddRequirements(new CallerRequirement()));
        options.AddPolicy(Admin, p => p.AddRequirements(new CallerRequirement(), new AdminRequirement()));
    }

    /// <summary>
    /// Whether the client connects from this machine. A missing address (an in-process test server, a Unix socket)
    /// is not loopback: without an admin key the admin routes stay closed unless the address proves otherwise.
    /// </summary>
    public static bool IsLoopback(HttpContext context) =>
        context.Connection.RemoteIpAddress is { } address
        && IPAddress.IsLoopback(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address);
}

/// <summary>A known key, or none where keys are not required; never an unknown key.</summary>
internal sealed class CallerRequirement : IAuthorizationRequirement;

/// <summary>An admin key; with no admin key configured, a loopback caller.</summary>
internal sealed class AdminRequirement : IAuthorizationRequirement;

/// <summary>Why a caller was refused, and the status and detail it gets (401 asks for a key, 403 refuses the one sent).</summary>
internal sealed class CallerFailure(IAuthorizationHandler handler, int status, string detail) : AuthorizationFailureReason(handler, detail)
{
    public int Status { get; } = status;

    /// <summary>
    /// The failures of this request. The framework drops the reasons of an anonymous caller's failure (its result is a
    /// bare challenge), so the handler also keeps them on the request for <see cref="CallerAuthorizationResultHandler"/>.
    /// </summary>
    public static List<CallerFailure> Of(HttpContext context)
    {
        if (context.Items[typeof(CallerFailure)] is not List<CallerFailure> failures)
        {
            failures = [];
            context.Items[typeof(CallerFailure)] = failures;
        }

        return failures;
    }
}

/// <summary>Evaluates <see cref="CallerRequirement"/> and <see cref="AdminRequirement"/> against the configured keys.</summary>
internal sealed class CallerRequirementHandler(ApiKeyStore keys) : IAuthorizationHandler
{
    private const string SendKey = "Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.";

    private static void Fail(AuthorizationHandlerContext context, HttpContext? http, CallerFailure failure)
    {
        context.Fail(failure);
        if (http is not null)
        {
            CallerFailure.Of(http).Add(failure);
        }
    }

    public Task HandleAsync(AuthorizationHandlerContext context)
    {
        HttpContext? http = context.Resource as HttpContext;
        bool authenticated = context.User.Identity?.IsAuthenticated == true;
        foreach (IAuthorizationRequirement requirement in context.PendingRequirements.ToList())
        {
            switch (requirement)
            {
                case CallerRequirement:
                    if (!authenticated && http is not null && ApiKeyAuthenticationHandler.PresentedKey(http.Request) is not null)
                    {
                        Fail(context, http, new CallerFailure(this, StatusCodes.Status401Unauthorized, "The API key sent is not known to this server. " + SendKey));
                    }
                    else if (!authenticated && keys.RequireKey)
                    {
                        Fail(context, http, new CallerFailure(this, StatusCodes.Status401Unauthorized, "This server requires an API key. " + SendKey));
                    }
                    else
                    {
                        context.Succeed(requirement);
                    }

                    break;

                case AdminRequirement:
                    if (context.User.IsInRole(ApiRoles.Admin) || (!keys.HasAdminKey && http is not null && CallerPolicies.IsLoopback(http)))
                    {
                        context.Succeed(requirement);
                    }
                    else if (authenticated)
                    {
                        Fail(context, http, new CallerFailure(this, StatusCodes.Status403Forbidden,
                            $"The key '{context.User.Identity!.Name}' has the role '{ApiRoles.User}'; this route changes the server's state and needs a key with the role '{ApiRoles.Admin}'."));
                    }
                    else if (keys.HasAdminKey)
                    {
                        Fail(context, http, new CallerFailure(this, StatusCodes.Status401Unauthorized, "This route changes the server's state and needs an admin key. " + SendKey));
                    }
                    else
                    {
                        Fail(context, http, new CallerFailure(this, StatusCodes.Status403Forbidden,
                            "This route changes the server's state. With no admin key configured it answers only to callers on the loopback address. "
                            + "To allow remote callers, configure a key with the role 'admin': GenService__Auth__Keys__0__Name, "
                            + "GenService__Auth__Keys__0__Sha256 (printf %s \"$KEY\" | sha256sum) and GenService__Auth__Keys__0__Role=admin; "
                            + "then send it as 'Authorization: Bearer <key>'."));
                    }

                    break;
            }
        }

        return Task.CompletedTask;
    }
}
