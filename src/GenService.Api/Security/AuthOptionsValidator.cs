using System.Globalization;
using Microsoft.Extensions.Options;

namespace GenService.Api.Security;

/// <summary>
/// Startup validation of <see cref="AuthOptions"/>: every problem is listed with the configuration key to fix, so a
/// typo in a hash or a role stops the service at start instead of silently locking a caller out. The plaintext admin
/// key of earlier versions is refused too: it is no longer read, and a deployment that sets it should learn so at
/// start rather than from a 403.
/// </summary>
internal sealed class AuthOptionsValidator(IConfiguration? configuration = null) : IValidateOptions<AuthOptions>
{
    private static readonly string[] RemovedKeys = ["GenService:Api:AdminApiKey", "GenService:AdminApiKey"];

    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        var failures = new List<string>();
        foreach (string removed in RemovedKeys)
        {
            if (!string.IsNullOrEmpty(configuration?[removed]))
            {
                failures.Add($"{removed} is no longer read (keys are stored hashed now): configure an admin key under {AuthOptions.SectionName}:Keys "
                    + "with Name, Sha256 (printf %s \"$KEY\" | sha256sum) and Role=admin, and remove the old setting.");
            }
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < options.Keys.Count; i++)
        {
            ApiKeyOptions key = options.Keys[i];
            string at = string.Create(CultureInfo.InvariantCulture, $"{AuthOptions.SectionName}:Keys:{i}");
            if (string.IsNullOrWhiteSpace(key.Name))
            {
                failures.Add($"{at}:Name is empty: every key needs a name (it identifies the caller in logs and limits).");
            }
            else if (!seen.Add(key.Name))
            {
                failures.Add($"{at}:Name '{key.Name}' is used by another key; key names must be unique.");
            }

            if (!IsSha256Hex(key.Sha256))
            {
                failures.Add($"{at}:Sha256 must be the 64 hex digits of the key's SHA-256 (printf %s \"$KEY\" | sha256sum); got {key.Sha256.Length} characters.");
            }

            if (!ApiRoles.IsKnown(key.Role))
            {
                failures.Add($"{at}:Role '{key.Role}' is not a role: use '{ApiRoles.User}' or '{ApiRoles.Admin}'.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static bool IsSha256Hex(string? value) => value is { Length: 64 } && value.All(char.IsAsciiHexDigit);
}
