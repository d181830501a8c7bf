using System.Net;
using GenService.Api.Tests.Infrastructure;
using static GenService.Api.Tests.Security.SecurityTestHelpers;

namespace GenService.Api.Tests.Security;

/// <summary>
/// Per-caller token buckets (GenService:Limits). The bucket refills one request per 1000 s, so nothing refills during a
/// test: what is counted is exactly the burst, whatever the machine's speed.
/// </summary>
public sealed class RateLimitTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new(new(Keys())
    {
        ["GenService:Limits:RequestsPerSecond"] = "0.001",
        ["GenService:Limits:Burst"] = "2",
        ["GenService:Limits:Keys:root:Burst"] = "4",
    });

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Fact]
    public async Task Burst_plus_one_is_429_with_retry_after_and_another_caller_is_unaffected()
    {
        using HttpClient client = _factory.CreateClient();
        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 2; i++)
        {
            statuses.Add((await SendAsync(client, HttpMethod.Get, "/v2/models/fake.echo", null, From("203.0.113.1"))).Status);
        }

        Reply limited = await SendAsync(client, HttpMethod.Get, "/v2/models/fake.echo", null, From("203.0.113.1"));
        Reply limitedV1 = await SendAsync(client, HttpMethod.Get, "/v1/models", null, From("203.0.113.1"));
        Reply other = await SendAsync(client, HttpMethod.Get, "/v2/models/fake.echo", null, From("203.0.113.2"));

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK], statuses);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.Status);
        Assert.True(limited.RetryAfter >= TimeSpan.FromSeconds(1), $"Retry-After {limited.RetryAfter}");
        Assert.Contains("ip:203.0.113.1", limited.V2Error, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.TooManyRequests, limitedV1.Status);
        Assert.Contains("Rate limit", limitedV1.ProblemDetail, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, other.Status);

        string metrics = await client.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("genservice_rejected_total{", StringComparison.Ordinal)
            && l.Contains("reason=\"rate_limited\"", StringComparison.Ordinal) && l.Contains("model=\"fake\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_key_is_its_own_caller_with_its_own_override_wherever_it_connects_from()
    {
        using HttpClient client = _factory.CreateClient();
        var statuses = new List<HttpStatusCode>();
        for (int i = 0; i < 5; i++)
        {
            // The same key from two addresses draws on one bucket, of the key's own burst (4).
            statuses.Add((await SendAsync(client, HttpMethod.Get, "/v1/models", null, From(i % 2 == 0 ? "198.51.100.1" : "198.51.100.2"), Bearer(AdminKey))).Status);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
    }

    [Theory]
    [InlineData("/v2/health/live")]
    [InlineData("/metrics")]
    [InlineData("/swagger/v1/swagger.json")]
    public async Task Probes_metrics_and_swagger_are_never_limited(string path)
    {
        using HttpClient client = _factory.CreateClient();
        for (int i = 0; i < 4; i++)
        {
            Reply reply = await SendAsync(client, HttpMethod.Get, path, null, From("192.0.2.50"));
            Assert.Equal(HttpStatusCode.OK, reply.Status);
        }

        // Readiness neither (200: the startup pass has ended), never 429.
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(client, HttpMethod.Get, "/v2/health/ready", null, From("192.0.2.50"))).Status);
        }
    }
}
