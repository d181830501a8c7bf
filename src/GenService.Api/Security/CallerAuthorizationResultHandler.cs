using GenService.Api.Errors;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;

namespace GenService.Api.Security;

/// <summary>
/// Answers a refused caller in the route's error shape (<see cref="ErrorResponses"/>) with the reason the policy gave
/// (<see cref="CallerFailure"/>), instead of the framework's empty 401/403: 401 with <c>WWW-Authenticate: Bearer</c>
/// when a key is missing or unknown, 403 when the key (or the caller's address) is not allowed.
/// </summary>
internal sealed class CallerAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Succeeded)
        {
            return _default.HandleAsync(next, context, policy, authorizeResult);
        }

        List<CallerFailure> failures = CallerFailure.Of(context);
        CallerFailure? failure = failures.FirstOrDefault(f => f.Status == StatusCodes.Status401Unauthorized) ?? failures.FirstOrDefault();
        int status = failure?.Status ?? (authorizeResult.Challenged ? StatusCodes.Status401Unauthorized : StatusCodes.Status403Forbidden);
        string detail = failure?.Message ?? "This route needs an API key with another role.";
        if (status == StatusCodes.Status401Unauthorized)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return ErrorResponses.WriteAsync(context, new HttpError(status, "Unauthorized", detail));
        }

        return ErrorResponses.WriteAsync(context, new HttpError(status, "Forbidden", detail));
    }
}
