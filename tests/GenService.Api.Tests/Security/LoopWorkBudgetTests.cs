using System.Net;
using GenService.Api.Tests.Infrastructure;
using static GenService.Api.Tests.Security.SecurityTestHelpers;

namespace GenService.Api.Tests.Security;

/// <summary>
/// The per-request work budget on the loop families, over the shipped models: the job's work (count x steps x pixels,
/// count x (prompt + max_new_tokens)) is refused with a 400 that names it; a request within the budget is served.
/// </summary>
public sealed class LoopWorkBudgetTests : IAsyncLifetime
{
    private readonly GenServiceFactory _factory = new(RepositoryPaths.RealModels, new Dictionary<string, string?>
    {
        ["GenService:Limits:MaxRequestWork"] = "1000",
        ["GenService:Limits:MaxCallerWork"] = "1000",
    });

    public ValueTask InitializeAsync() => _factory.InitializeAsync();

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Fact]
    public async Task Diffusion_counts_count_times_steps_times_pixels()
    {
        using HttpClient client = _factory.CreateClient();
        Reply over = await SendAsync(client, HttpMethod.Post, "/v1/diffusion/digits-ddpm/samples", """{"count": 2, "steps": 10, "seed": 1}""");
        Reply within = await SendAsync(client, HttpMethod.Post, "/v1/diffusion/digits-ddpm/samples", """{"count": 1, "steps": 10, "seed": 1}""");
        Reply streamed = await SendAsync(client, HttpMethod.Post, "/v1/diffusion/digits-ddpm/samples", """{"count": 2, "steps": 10, "seed": 1, "stream": true}""");

        Assert.Equal(HttpStatusCode.BadRequest, over.Status);
        Assert.Contains("count 2 x steps 10 x 64 pixels = 1280 units of work; the budget per request is 1000", over.ProblemDetail, StringComparison.Ordinal);
        Assert.Contains("Lower 'count' or 'steps'", over.ProblemDetail, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, within.Status);
        Assert.Equal(HttpStatusCode.BadRequest, streamed.Status); // refused before the event stream starts
    }

    [Fact]
    public async Task Ar_counts_count_times_prompt_plus_max_new_tokens()
    {
        using HttpClient client = _factory.CreateClient();
        Reply over = await SendAsync(client, HttpMethod.Post, "/v1/ar/words-ar/samples", """{"count": 64, "prompt": "ca", "max_new_tokens": 16, "seed": 1}""");
        Reply within = await SendAsync(client, HttpMethod.Post, "/v1/ar/words-ar/samples", """{"count": 2, "prompt": "ca", "max_new_tokens": 4, "seed": 1}""");

        Assert.Equal(HttpStatusCode.BadRequest, over.Status);
        Assert.Contains("count 64 x (", over.ProblemDetail, StringComparison.Ordinal);
        Assert.Contains("max_new_tokens 16)", over.ProblemDetail, StringComparison.Ordinal);
        Assert.Equal("count", over.Json.GetProperty("field").GetString());
        Assert.Equal(HttpStatusCode.OK, within.Status);
    }
}
