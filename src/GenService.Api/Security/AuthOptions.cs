using System.ComponentModel.DataAnnotations;

namespace GenService.Api.Security;

/// <summary>
/// API keys and whether they are required, bound from <c>GenService:Auth</c> (environment variables
/// <c>GenService__Auth__RequireKey</c>, <c>GenService__Auth__Keys__0__Name</c>, <c>..__Sha256</c>, <c>..__Role</c>).
/// Only the SHA-256 of each key is configured, so a leaked configuration file or environment dump does not leak keys.
/// </summary>
internal sealed class AuthOptions
{
    public const string SectionName = "GenService:Auth";

    /// <summary>
    /// When true every /v1, /v2 (health aside) and /openai route needs a valid key (401 without one). Off by default
    /// so that a local run works without setup; a presented key that is unknown is a 401 either way.
    /// </summary>
    public bool RequireKey { get; set; }

    /// <summary>The known keys. Names identify callers (logs, rate limits, fairness), so they must be unique.</summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];
}

/// <summary>One configured key: who it is, the hex SHA-256 of the secret, and its role.</summary>
internal sealed class ApiKeyOptions
{
    /// <summary>The caller's name: "key:&lt;name&gt;" is its identity for limits and fairness.</summary>
    [Required]
    public string Name { get; set; } = "";

    /// <summary>Lower- or upper-case hex of SHA-256 over the key's UTF-8 bytes (<c>printf %s "$KEY" | sha256sum</c>).</summary>
    [Required]
    public string Sha256 { get; set; } = "";

    /// <summary><c>user</c> (inference and reads) or <c>admin</c> (also the repository API).</summary>
    [Required]
    public string Role { get; set; } = ApiRoles.User;
}

/// <summary>The two roles a key can have.</summary>
internal static class ApiRoles
{
    public const string User = "user";
    public const string Admin = "admin";

    public static bool IsKnown(string role) => role is User or Admin;
}
