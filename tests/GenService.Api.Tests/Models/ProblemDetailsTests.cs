using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GenService.Api.Errors;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference;
using Microsoft.AspNetCore.Http;

namespace GenService.Api.Tests.Models;

/// <summary>/v1 errors are RFC 9457 problem+json with traceId and an actionable detail.</summary>
public sealed class ProblemDetailsTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    private async Task<JsonElement> ProblemAsync(string url, HttpStatusCode expected)
    {
        using HttpClient client = _factory.CreateClient();
        using HttpResponseMessage response = await client.GetAsync(url, Ct);
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone();
        Assert.Equal((int)expected, problem.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("title").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("traceId").GetString()));
        return problem;
    }

    [Fact]
    public async Task Unknown_model_is_a_404_problem_that_says_where_to_look()
    {
        JsonElement problem = await ProblemAsync("/v1/models/nope", HttpStatusCode.NotFound);
        Assert.Equal("No model named 'nope'. GET /v1/models lists the models this server has.", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Unknown_v1_route_is_a_404_problem()
    {
        JsonElement problem = await ProblemAsync("/v1/teleport/now", HttpStatusCode.NotFound);
        Assert.Contains("No route GET /v1/teleport/now", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/throw/validation", HttpStatusCode.BadRequest, "'steps' must be in 1..1000; got 0.")]
    [InlineData("/throw/wrong-family", HttpStatusCode.NotFound, "Model 'digits-vae' is a vae model, not gan: use /v1/vae/digits-vae/...")]
    [InlineData("/throw/queue-full", HttpStatusCode.TooManyRequests, "The queue of 'm.generator' is full (8 waiting rows); retry after 3 s.")]
    [InlineData("/throw/deadline", HttpStatusCode.GatewayTimeout, "The request to 'm.generator' did not finish within its deadline of 1000 ms.")]
    [InlineData("/throw/bug", HttpStatusCode.InternalServerError, "The server failed unexpectedly; the traceId identifies the failure in the server log.")]
    public async Task Domain_exceptions_become_problems(string url, HttpStatusCode status, string detail)
    {
        JsonElement problem = await ProblemAsync(url, status);
        Assert.Equal(detail, problem.GetProperty("detail").GetString());
        switch (url)
        {
            case "/throw/validation":
                Assert.Equal("steps", problem.GetProperty("field").GetString());
                break;
            case "/throw/wrong-family":
                Assert.Equal("vae", problem.GetProperty("family").GetString());
                break;
        }
    }

    [Fact]
    public async Task Queue_full_problem_carries_retry_after()
    {
        using HttpClient client = _factory.CreateClient();
        using HttpResponseMessage response = await client.GetAsync("/throw/queue-full", Ct);
        Assert.Equal(TimeSpan.FromSeconds(3), response.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task Model_list_shows_every_folder_with_ready_and_state()
    {
        using HttpClient client = _factory.CreateClient();
        JsonElement list = await client.GetFromJsonAsync<JsonElement>("/v1/models", Ct);
        Dictionary<string, JsonElement> models = list.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);

        Assert.Equal(["broken", "fake", "full", "gated", "loading", "slow"], models.Keys);
        Assert.True(models["fake"].GetProperty("ready").GetBoolean());
        Assert.False(models["broken"].GetProperty("ready").GetBoolean());
        Assert.Equal("failed", models["broken"].GetProperty("state").GetString());
        Assert.Equal("gan", models["fake"].GetProperty("family").GetString());
        Assert.Equal(["fake.echo"], models["fake"].GetProperty("v2_models").EnumerateArray().Select(e => e.GetString()));

        JsonElement broken = await client.GetFromJsonAsync<JsonElement>("/v1/models/broken", Ct);
        Assert.Equal("generator.onnx: not an ONNX file", broken.GetProperty("error").GetString());
    }
}

/// <summary>The exception table itself, for the cases a live request cannot easily produce.</summary>
public sealed class ErrorMappingTests
{
    [Fact]
    public void Wrong_json_type_names_the_field()
    {
        var json = new JsonException("The JSON value could not be converted to System.Int32. Path: $.count | LineNumber: 0 | BytePositionInLine: 14.", "$.count", 0, 14);
        HttpError error = ErrorMapping.Map(new BadHttpRequestException("Failed to read parameter", 400, json), new DefaultHttpContext());

        Assert.Equal(400, error.Status);
        Assert.Equal("count", error.Field);
        Assert.Contains("at 'count'", error.Detail, StringComparison.Ordinal);
        Assert.Contains("expected an integer (32-bit)", error.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", error.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_client_that_went_away_is_499_and_other_cancellations_are_not()
    {
        using var aborted = new CancellationTokenSource();
        aborted.Cancel();
        var context = new DefaultHttpContext { RequestAborted = aborted.Token };
        Assert.Equal(HttpError.ClientClosedRequest, ErrorMapping.Map(new OperationCanceledException(), context).Status);

        // A cancellation the client did not cause (e.g. the server shutting down) is a server failure, not a 499.
        Assert.Equal(500, ErrorMapping.Map(new OperationCanceledException(), new DefaultHttpContext()).Status);
    }

    [Fact]
    public void Domain_exceptions_map_to_the_documented_statuses()
    {
        var context = new DefaultHttpContext();
        Assert.Equal(400, ErrorMapping.Map(new RequestValidationException("steps", "steps must be 1..1000"), context).Status);
        Assert.Equal("steps", ErrorMapping.Map(new RequestValidationException("steps", "x"), context).Field);
        HttpError wrong = ErrorMapping.Map(new WrongFamilyException("digits-vae", "gan", "vae"), context);
        Assert.Equal((404, "vae"), (wrong.Status, wrong.Family));
        Assert.Contains("/v1/vae/digits-vae", wrong.Detail, StringComparison.Ordinal);
        Assert.Equal(503, ErrorMapping.Map(new ModelNotReadyException("m", "loading"), context).Status);
        HttpError full = ErrorMapping.Map(new QueueFullException("m.g", 4, TimeSpan.FromMilliseconds(1500)), context);
        Assert.Equal((429, TimeSpan.FromMilliseconds(1500)), (full.Status, full.RetryAfter));
        Assert.Equal(504, ErrorMapping.Map(new DeadlineExceededException("m.g", TimeSpan.FromSeconds(1)), context).Status);
        Assert.Equal(500, ErrorMapping.Map(new InvalidOperationException("bug"), context).Status);
    }
}
