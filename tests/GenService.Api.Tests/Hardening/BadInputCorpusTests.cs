using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;

namespace GenService.Api.Tests.Hardening;

/// <summary>
/// The shipped models behind body limits small enough for the oversize cases (<see cref="BadInputCorpus"/>).
/// </summary>
public sealed class CorpusFactory : IAsyncLifetime
{
    public GenServiceFactory Factory { get; } = new(RepositoryPaths.RealModels, new Dictionary<string, string?>
    {
        ["GenService:Api:MaxRequestBodyBytes"] = BadInputCorpus.MaxRequestBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["GenService:Api:MaxInferBodyBytes"] = BadInputCorpus.MaxInferBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
    });

    public ValueTask InitializeAsync() => Factory.InitializeAsync();

    public ValueTask DisposeAsync() => Factory.DisposeAsync();
}

/// <summary>
/// Issue 14's bad-input corpus over every route: each named request gets its exact 4xx in the protocol's error
/// shape (problem+json with a detail on /v1, {"error"} on /v2), never a 5xx, and afterwards the service still
/// answers a valid request with the same numbers.
/// </summary>
public sealed class BadInputCorpusTests(CorpusFactory corpus) : IClassFixture<CorpusFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> CaseNames => [.. BadInputCorpus.Cases.Keys];

    [Fact]
    public void The_corpus_has_at_least_300_cases_over_every_route()
    {
        Assert.True(BadInputCorpus.Cases.Count >= 300, $"{BadInputCorpus.Cases.Count} cases");
        string[] routes =
        [
            "/v1/gan/digits-gan/samples", "/v1/gan/digits-gan/interpolations", "/v1/vae/digits-vae/samples", "/v1/vae/digits-vae/encode",
            "/v1/vae/digits-vae/reconstruct", "/v1/vae/digits-vae/interpolations", "/v1/flow/digits-flow/samples", "/v1/flow/digits-flow/encode",
            "/v1/flow/digits-flow/log-likelihood", "/v1/flow/digits-flow/interpolations", "/v1/diffusion/digits-ddpm/samples",
            "/v1/diffusion/digits-ddpm/interpolations", "/v1/ar/digits-ar/samples", "/v1/ar/digits-ar/log-likelihood", "/v1/ar/words-ar/samples",
            "/v1/diffusion/digits-txt2img/samples", "/v1/models", "/v1/models/digits-gan", "/v2/models/digits-gan.generator",
            "/v2/models/digits-gan.generator/ready", "/v2/models/digits-gan.generator/infer", "/v2/health/ready", "/v2/repository/index",
        ];
        foreach (string route in routes)
        {
            Assert.Contains(BadInputCorpus.Cases.Values, c => c.Url == route);
        }

        Assert.Contains(BadInputCorpus.Cases.Values, c => c.Url.StartsWith("/v2/repository/models/", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task Bad_request_gets_its_4xx_in_the_protocols_shape(string name)
    {
        BadRequest c = BadInputCorpus.Cases[name];
        using HttpClient client = corpus.Factory.CreateClient();
        (HttpStatusCode status, string? mediaType, string text, HttpResponseMessage response) = await SendAsync(client, c);
        using (response)
        {
            Assert.True((int)status == c.Status, $"{name}: expected {c.Status}, got {(int)status} {text}");
            JsonElement body = JsonDocument.Parse(text).RootElement;
            if (c.Url.StartsWith("/v2", StringComparison.Ordinal))
            {
                Assert.Equal("application/json", mediaType);
                Assert.False(string.IsNullOrWhiteSpace(body.GetProperty("error").GetString()), text);
            }
            else
            {
                Assert.Equal("application/problem+json", mediaType);
                Assert.Equal(c.Status, body.GetProperty("status").GetInt32());
                Assert.False(string.IsNullOrWhiteSpace(body.GetProperty("detail").GetString()), text);
            }

            if (c.Status == 405)
            {
                Assert.NotEmpty(response.Content.Headers.Allow);
            }
        }
    }

    public static TheoryData<string> BaselineNames => [.. BadInputCorpus.Baselines.Keys];

    [Theory]
    [MemberData(nameof(BaselineNames))]
    public async Task The_valid_request_each_group_mutates_is_a_200(string name)
    {
        using HttpClient client = corpus.Factory.CreateClient();
        (HttpStatusCode status, _, string text, HttpResponseMessage response) = await SendAsync(client, BadInputCorpus.Baselines[name]);
        response.Dispose();
        Assert.True(status == HttpStatusCode.OK, $"{name}: {(int)status} {text}");
    }

    [Fact]
    public async Task After_the_whole_corpus_a_valid_request_gets_the_same_numbers_and_the_server_is_ready()
    {
        using HttpClient client = corpus.Factory.CreateClient();
        string gan = """{"count": 2, "seed": 11, "class_label": 3, "output": "tensor"}""";
        string ddpm = """{"count": 1, "seed": 5, "steps": 3, "output": "tensor"}""";
        JsonNode ganBefore = await PostOkAsync(client, "/v1/gan/digits-gan/samples", gan);
        JsonNode ddpmBefore = await PostOkAsync(client, "/v1/diffusion/digits-ddpm/samples", ddpm);

        // Each case's own status is the theory's business; here only what the whole corpus leaves behind.
        int answered = 0;
        foreach (BadRequest c in BadInputCorpus.Cases.Values)
        {
            (_, _, _, HttpResponseMessage response) = await SendAsync(client, c);
            response.Dispose();
            answered++;
        }

        Assert.Equal(BadInputCorpus.Cases.Count, answered);

        JsonNode ganAfter = await PostOkAsync(client, "/v1/gan/digits-gan/samples", gan);
        JsonNode ddpmAfter = await PostOkAsync(client, "/v1/diffusion/digits-ddpm/samples", ddpm);
        Assert.Equal(ganBefore["samples"]!.ToJsonString(), ganAfter["samples"]!.ToJsonString());
        Assert.Equal(ddpmBefore["samples"]!.ToJsonString(), ddpmAfter["samples"]!.ToJsonString());

        using HttpResponseMessage ready = await client.GetAsync("/v2/health/ready", Ct);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    private static async Task<JsonNode> PostOkAsync(HttpClient client, string url, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await client.PostAsync(url, content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    private static async Task<(HttpStatusCode Status, string? MediaType, string Text, HttpResponseMessage Response)> SendAsync(HttpClient client, BadRequest c)
    {
        using var request = new HttpRequestMessage(new HttpMethod(c.Method), c.Url);
        if (c.Body is not null)
        {
            HttpContent content = c.Chunked ? new StreamContent(new MemoryStream(c.Body)) : new ByteArrayContent(c.Body);
            if (c.ContentType is not null)
            {
                content.Headers.TryAddWithoutValidation("Content-Type", c.ContentType);
            }

            if (c.Chunked)
            {
                request.Headers.TransferEncodingChunked = true;
            }

            request.Content = content;
        }

        if (c.Accept is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept", c.Accept);
        }

        foreach ((string key, string value) in c.Headers)
        {
            request.Headers.TryAddWithoutValidation(key, value);
        }

        HttpResponseMessage response = await client.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        MediaTypeHeaderValue? type = response.Content.Headers.ContentType;
        return (response.StatusCode, type?.MediaType, text, response);
    }
}
