using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace GenService.Api.Security;

/// <summary>A configured key, its hash decoded once.</summary>
internal sealed record ApiKeyEntry(string Name, string Role, byte[] Hash);

/// <summary>
/// The configured keys, hashes decoded once at start. <see cref="Find"/> hashes the presented key and compares it
/// with every configured hash in constant time, without stopping at a match, so the time taken says nothing about
/// which key (or how much of a hash) matched.
/// </summary>
internal sealed class ApiKeyStore
{
    private readonly ApiKeyEntry[] _keys;

    public ApiKeyStore(IOptions<AuthOptions> options)
    {
        AuthOptions o = options.Value;
        RequireKey = o.RequireKey;
        _keys = [.. o.Keys.Select(k => new ApiKeyEntry(k.Name, k.Role, Convert.FromHexString(k.Sha256)))];
        HasAdminKey = _keys.Any(k => k.Role == ApiRoles.Admin);
    }

    /// <summary><see cref="AuthOptions.RequireKey"/>.</summary>
    public bool RequireKey { get; }

    /// <summary>Whether any admin key is configured; without one the admin routes answer only to loopback callers.</summary>
    public bool HasAdminKey { get; }

    /// <summary>The key whose hash matches <paramref name="presented"/>, or null.</summary>
    public ApiKeyEntry? Find(string presented)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        ApiKeyEntry? match = null;
        foreach (ApiKeyEntry key in _keys)
        {
            // No early exit: every hash is compared, whatever matched before.
            bool equal = CryptographicOperations.FixedTimeEquals(hash, key.Hash);
            match = equal ? key : match;
        }

        return match;
    }
}
