using System.Net.Http.Json;
using System.Text.Json;
using GenService.Api.Security;
using GenService.Api.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static GenService.Api.Tests.Security.SecurityTestHelpers;

namespace GenService.Api.Tests.Security;

/// <summary>The key configuration: validated at start, stored and compared as hashes.</summary>
public sealed class AuthConfigurationTests
{
    private static AuthOptions Options(params ApiKeyOptions[] keys) => new() { Keys = [.. keys] };

    private static ApiKeyOptions Key(string name, string sha256, string role = "user") => new() { Name = name, Sha256 = sha256, Role = role };

    [Fact]
    public void Valid_keys_pass()
    {
        ValidateOptionsResult result = new AuthOptionsValidator().Validate(null, Options(Key("a", Sha256Hex("x")), Key("b", Sha256Hex("y").ToUpperInvariant(), "admin")));
        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Fact]
    public void Every_problem_is_named_with_its_configuration_key()
    {
        ValidateOptionsResult result = new AuthOptionsValidator().Validate(null, Options(
            Key("a", Sha256Hex("x")),
            Key("a", Sha256Hex("y")),                      // duplicate name
            Key("b", "not-hex", "user"),                   // bad hex
            Key("c", Sha256Hex("z")[..62] + "zz"),         // 64 characters, not all hex
            Key("d", Sha256Hex("w"), "root"),              // unknown role
            Key("", Sha256Hex("v"))));                     // no name

        Assert.True(result.Failed);
        string[] failures = [.. result.Failures!];
        Assert.Equal(5, failures.Length);
        Assert.Contains(failures, f => f.Contains("GenService:Auth:Keys:1:Name 'a' is used by another key", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("GenService:Auth:Keys:2:Sha256 must be the 64 hex digits", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("GenService:Auth:Keys:3:Sha256", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("GenService:Auth:Keys:4:Role 'root' is not a role", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Contains("GenService:Auth:Keys:5:Name is empty", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("GenService:Api:AdminApiKey")]
    [InlineData("GenService:AdminApiKey")]
    public void The_removed_plaintext_admin_key_is_refused_with_what_to_set_instead(string key)
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [key] = "s3cret" }).Build();
        ValidateOptionsResult result = new AuthOptionsValidator(config).Validate(null, Options());
        Assert.True(result.Failed);
        Assert.Contains($"{key} is no longer read", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("GenService:Auth:Keys", result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new AuthOptionsValidator(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [key] = "" }).Build()).Validate(null, Options()).Succeeded);
    }

    [Fact]
    public void The_store_finds_a_key_by_its_hash_only()
    {
        var store = new ApiKeyStore(Microsoft.Extensions.Options.Options.Create(Options(Key("a", Sha256Hex("first")), Key("b", Sha256Hex("second").ToUpperInvariant(), "admin"))));

        Assert.Equal("a", store.Find("first")?.Name);
        Assert.Equal("admin", store.Find("second")?.Role);
        Assert.Null(store.Find("First"));
        Assert.Null(store.Find(Sha256Hex("first"))); // the hash itself is not a key
        Assert.True(store.HasAdminKey);
    }

    [Fact]
    public void A_bad_key_fails_the_options_validation_that_runs_at_start()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["GenService:Auth:Keys:0:Name"] = "ops",
            ["GenService:Auth:Keys:0:Sha256"] = "abc",
            ["GenService:Auth:Keys:0:Role"] = "admin",
        }).Build());
        services.AddLogging();
        services.AddCallerSecurity();
        using ServiceProvider provider = services.BuildServiceProvider();

        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<AuthOptions>>().Value);
        Assert.Contains("GenService:Auth:Keys:0:Sha256 must be the 64 hex digits", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>Swagger: the Authorize button's schemes, and the lock on admin operations.</summary>
public sealed class SwaggerSecurityTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Fact]
    public async Task The_document_has_bearer_and_api_key_schemes_and_admin_operations_require_them()
    {
        using HttpClient client = _factory.CreateClient();
        JsonElement doc = await client.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json", TestContext.Current.CancellationToken);

        JsonElement schemes = doc.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("http", schemes.GetProperty("Bearer").GetProperty("type").GetString());
        Assert.Equal("bearer", schemes.GetProperty("Bearer").GetProperty("scheme").GetString());
        Assert.Equal("apiKey", schemes.GetProperty("ApiKey").GetProperty("type").GetString());
        Assert.Equal("header", schemes.GetProperty("ApiKey").GetProperty("in").GetString());
        Assert.Equal("X-API-Key", schemes.GetProperty("ApiKey").GetProperty("name").GetString());

        JsonElement paths = doc.GetProperty("paths");
        JsonElement unload = paths.GetProperty("/v2/repository/models/{model}/unload").GetProperty("post");
        string[] required = [.. unload.GetProperty("security").EnumerateArray().SelectMany(r => r.EnumerateObject().Select(p => p.Name))];
        Assert.Equal(["Bearer", "ApiKey"], required);
        Assert.Equal(2, unload.GetProperty("security").GetArrayLength()); // no anonymous alternative
        Assert.StartsWith("Admin:", unload.GetProperty("summary").GetString(), StringComparison.Ordinal);

        // Keyed, not admin: the schemes plus the empty (anonymous) alternative. Probes: none.
        JsonElement models = paths.GetProperty("/v1/models").GetProperty("get");
        Assert.Equal(3, models.GetProperty("security").GetArrayLength());
        Assert.False(paths.GetProperty("/v2/health/live").GetProperty("get").TryGetProperty("security", out _));
    }
}
