using System.Net;
using GenService.Api.Tests.Infrastructure;
using static GenService.Api.Tests.Security.SecurityTestHelpers;

namespace GenService.Api.Tests.Security;

/// <summary>
/// Work budgets over HTTP, on the fake gan model gated.generator (2 pixels per sample, so count c is 2c units): a
/// request over the per-request budget is a 400 before any graph call; a caller over its in-flight budget is a 429
/// while its gated request holds the budget, and is served once that request has ended.
/// </summary>
public sealed class WorkBudgetHttpTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new(new()
    {
        ["GenService:Limits:MaxRequestWork"] = "10",
        ["GenService:Limits:MaxCallerWork"] = "10",
        ["GenService:Limits:RetryAfterSeconds"] = "3",
    });

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Fact]
    public async Task A_request_over_the_budget_is_400_naming_the_product_and_the_budget_before_any_work()
    {
        using HttpClient client = _factory.CreateClient();
        Reply reply = await SendAsync(client, HttpMethod.Post, "/v1/gan/gated/samples", """{"count": 6, "output": "tensor"}""");

        Assert.Equal(HttpStatusCode.BadRequest, reply.Status);
        string detail = reply.ProblemDetail;
        Assert.Contains("count 6 x 2 pixels = 12 units", detail, StringComparison.Ordinal);
        Assert.Contains("budget per request is 10", detail, StringComparison.Ordinal);
        Assert.Contains("Lower 'count'", detail, StringComparison.Ordinal);
        Assert.Equal("count", reply.Json.GetProperty("field").GetString());
        Assert.Empty(_factory.Repository.Received);
    }

    [Fact]
    public async Task A_caller_over_its_in_flight_budget_is_429_until_its_held_request_ends()
    {
        using HttpClient client = _factory.CreateClient();
        CancellationToken ct = TestContext.Current.CancellationToken;

        // 8 of the caller's 10 units, held at the gate.
        Task<Reply> held = SendAsync(client, HttpMethod.Post, "/v1/gan/gated/samples", """{"count": 4, "output": "tensor"}""", From("203.0.113.10"));
        await Task.WhenAny(held, _factory.Repository.Gate.Entered).WaitAsync(ct);
        Assert.False(held.IsCompleted, held.IsCompleted ? $"The held request ended early: {(await held).Status} {(await held).Json}" : "");

        Reply over = await SendAsync(client, HttpMethod.Post, "/v1/gan/gated/samples", """{"count": 2, "output": "tensor"}""", From("203.0.113.10"));

        Assert.Equal(HttpStatusCode.TooManyRequests, over.Status);
        Assert.Equal(TimeSpan.FromSeconds(3), over.RetryAfter);
        Assert.Contains("has 8 units of work in flight and asked for 4 more", over.ProblemDetail, StringComparison.Ordinal);

        // Another caller has its own budget (its request waits at the gate too, then completes).
        Task<Reply> other = SendAsync(client, HttpMethod.Post, "/v1/gan/gated/samples", """{"count": 4, "output": "tensor"}""", From("203.0.113.11"));

        _factory.Repository.Gate.Open();
        Assert.Equal(HttpStatusCode.OK, (await held).Status);
        Assert.Equal(HttpStatusCode.OK, (await other).Status);

        Reply after = await SendAsync(client, HttpMethod.Post, "/v1/gan/gated/samples", """{"count": 5, "output": "tensor"}""", From("203.0.113.10"));
        Assert.Equal(HttpStatusCode.OK, after.Status);

        string metrics = await client.GetStringAsync("/metrics", ct);
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("genservice_rejected_total{", StringComparison.Ordinal)
            && l.Contains("reason=\"work_budget\"", StringComparison.Ordinal) && l.Contains("model=\"gated\"", StringComparison.Ordinal));
    }
}
