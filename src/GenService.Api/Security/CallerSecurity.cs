using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;

namespace GenService.Api.Security;

/// <summary>Registration of the key scheme, the "user" and "admin" policies and their error answers.</summary>
internal static class CallerSecurity
{
    public static IServiceCollection AddCallerSecurity(this IServiceCollection services)
    {
        services.AddOptions<AuthOptions>()
            .BindConfiguration(AuthOptions.SectionName)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<AuthOptions>>(sp => new AuthOptionsValidator(sp.GetService<IConfiguration>()));
        services.AddSingleton<ApiKeyStore>();
        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorization(CallerPolicies.Add);
        services.AddSingleton<IAuthorizationHandler, CallerRequirementHandler>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, CallerAuthorizationResultHandler>();
        return services;
    }
}
