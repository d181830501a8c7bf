using System.Globalization;
using System.Net;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Callers;

namespace GenService.Api.Tests.Models;

/// <summary>
/// <c>X-Request-Timeout-Ms</c>: a whole number of milliseconds (at least 1) becomes the request's own deadline, which
/// the batchers and loops read (and cap by theirs); anything else is a 400 problem naming the header.
/// </summary>
public sealed class RequestTimeoutHeaderTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    private async Task<HttpResponseMessage> GetAsync(string? timeout)
    {
        using HttpClient client = _factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/echo/deadline");
        if (timeout is not null)
        {
            request.Headers.TryAddWithoutValidation(RequestDeadline.Header, timeout);
        }

        return await client.SendAsync(request, Ct);
    }

    [Fact]
    public async Task Without_the_header_a_request_has_no_deadline_of_its_own()
    {
        using HttpResponseMessage response = await GetAsync(null);
        Assert.Equal("none", await response.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task The_header_sets_the_requests_own_deadline_that_far_from_its_arrival()
    {
        // Two requests, 1 ms and one day: the deadlines differ by the difference of the asks, whenever they arrived
        // (the day-long ask can only be later than the 1 ms one, and by less than a day plus the time between them).
        using HttpResponseMessage shortAsk = await GetAsync("1");
        long first = long.Parse(await shortAsk.Content.ReadAsStringAsync(Ct), CultureInfo.InvariantCulture);
        using HttpResponseMessage longAsk = await GetAsync("86400000");
        long second = long.Parse(await longAsk.Content.ReadAsStringAsync(Ct), CultureInfo.InvariantCulture);
        Assert.Equal(HttpStatusCode.OK, shortAsk.StatusCode);
        Assert.True(second - first >= 86_400_000 - 1, $"deadlines {first} and {second}");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("1.5")]
    [InlineData("soon")]
    [InlineData("99999999999")]
    public async Task A_header_that_is_not_a_positive_whole_number_of_milliseconds_is_a_400_naming_it(string value)
    {
        using HttpResponseMessage response = await GetAsync(value);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal(RequestDeadline.Header, problem.GetProperty("field").GetString());
        Assert.Contains($"got '{value}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
