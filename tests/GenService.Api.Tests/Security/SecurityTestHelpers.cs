using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;

namespace GenService.Api.Tests.Security;

/// <summary>Configured keys and requests with a key or a client address, for the security tests.</summary>
internal static class SecurityTestHelpers
{
    public const string UserKey = "user-key-0123456789";
    public const string AdminKey = "admin-key-9876543210";

    public static string Sha256Hex(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key))).ToLowerInvariant();

    /// <summary>Settings with the key "alice" (user) and, when <paramref name="admin"/>, "root" (admin).</summary>
    public static Dictionary<string, string?> Keys(bool admin = true, bool requireKey = false)
    {
        var settings = new Dictionary<string, string?>
        {
            ["GenService:Auth:RequireKey"] = requireKey ? "true" : "false",
            ["GenService:Auth:Keys:0:Name"] = "alice",
            ["GenService:Auth:Keys:0:Sha256"] = Sha256Hex(UserKey),
            ["GenService:Auth:Keys:0:Role"] = "user",
        };
        if (admin)
        {
            settings["GenService:Auth:Keys:1:Name"] = "root";
            settings["GenService:Auth:Keys:1:Sha256"] = Sha256Hex(AdminKey).ToUpperInvariant(); // either case is hex
            settings["GenService:Auth:Keys:1:Role"] = "admin";
        }

        return settings;
    }

    /// <summary>Sends a request with optional headers (name, value) and returns the status, headers and parsed body.</summary>
    public static async Task<Reply> SendAsync(HttpClient client, HttpMethod method, string path, string? body = null, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        foreach ((string name, string value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using HttpResponseMessage response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        JsonElement json = text.Length > 0 && text.TrimStart()[0] == '{' ? JsonDocument.Parse(text).RootElement.Clone() : default;
        return new Reply(response.StatusCode, response.Content.Headers.ContentType?.MediaType, response.Headers.WwwAuthenticate.ToString(),
            response.Headers.RetryAfter?.Delta, json);
    }

    public static (string, string) Bearer(string key) => ("Authorization", "Bearer " + key);

    public static (string, string) XApiKey(string key) => ("X-API-Key", key);

    public static (string, string) From(string address) => (ClientAddress.Header, address);
}

/// <summary>What a test needs of a response.</summary>
internal sealed record Reply(HttpStatusCode Status, string? ContentType, string WwwAuthenticate, TimeSpan? RetryAfter, JsonElement Json)
{
    /// <summary>The v2 error message, asserting the {"error": "..."} shape.</summary>
    public string V2Error => Json.GetProperty("error").GetString()!;

    /// <summary>The problem+json detail, asserting the shape.</summary>
    public string ProblemDetail
    {
        get
        {
            Assert.Equal("application/problem+json", ContentType);
            Assert.Equal((int)Status, Json.GetProperty("status").GetInt32());
            return Json.GetProperty("detail").GetString()!;
        }
    }
}
