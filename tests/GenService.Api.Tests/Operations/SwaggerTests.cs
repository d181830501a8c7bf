using System.Net.Http.Json;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;

namespace GenService.Api.Tests.Operations;

public sealed class SwaggerTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new();

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Fact]
    public async Task Swagger_json_documents_every_route_with_a_summary()
    {
        using HttpClient client = _factory.CreateClient();
        JsonElement doc = await client.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json", TestContext.Current.CancellationToken);
        JsonElement paths = doc.GetProperty("paths");

        (string Path, string Method)[] expected =
        [
            ("/v1/models", "get"), ("/v1/models/{name}", "get"), ("/v2", "get"), ("/v2/health/live", "get"),
            ("/v2/health/ready", "get"), ("/v2/models/{name}", "get"), ("/v2/models/{name}/ready", "get"),
            ("/v2/models/{name}/infer", "post"), ("/v2/repository/index", "post"),
            ("/v2/repository/models/{model}/load", "post"), ("/v2/repository/models/{model}/unload", "post"), ("/metrics", "get"),
        ];
        foreach ((string path, string method) in expected)
        {
            Assert.True(paths.TryGetProperty(path, out JsonElement item), $"{path} missing from swagger.json");
            Assert.True(item.TryGetProperty(method, out JsonElement op), $"{method.ToUpperInvariant()} {path} missing");
            Assert.False(string.IsNullOrWhiteSpace(op.GetProperty("summary").GetString()), $"{path} has no summary");
            Assert.False(string.IsNullOrWhiteSpace(op.GetProperty("description").GetString()), $"{path} has no description");
        }

        // The infer route carries a runnable example body.
        JsonElement example = paths.GetProperty("/v2/models/{name}/infer").GetProperty("post").GetProperty("requestBody")
            .GetProperty("content").GetProperty("application/json").GetProperty("example");
        Assert.Equal("latent", example.GetProperty("inputs")[0].GetProperty("name").GetString());

        // The routes that compute document the optional X-Request-Timeout-Ms header; the repository routes do not.
        static bool HasTimeoutHeader(JsonElement op) => op.TryGetProperty("parameters", out JsonElement ps)
            && ps.EnumerateArray().Any(p => p.GetProperty("name").GetString() == "X-Request-Timeout-Ms" && p.GetProperty("in").GetString() == "header");
        Assert.True(HasTimeoutHeader(paths.GetProperty("/v2/models/{name}/infer").GetProperty("post")));
        Assert.False(HasTimeoutHeader(paths.GetProperty("/v2/repository/index").GetProperty("post")));
    }

    [Fact]
    public async Task Swagger_ui_is_served()
    {
        using HttpClient client = _factory.CreateClient();
        string html = await client.GetStringAsync("/swagger/index.html", TestContext.Current.CancellationToken);
        Assert.Contains("swagger-ui", html, StringComparison.OrdinalIgnoreCase);
    }
}
