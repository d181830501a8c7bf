using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;
using GenService.Api.KServe;
using GenService.Inference.Hosting;
using GenService.Inference.Options;
using GenService.Inference.Tensors;
using GenService.Testing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace GenService.Api.Tests.KServe;

/// <summary>The v2 protocol over the scripted repository: parsing, validation, datatypes and error statuses.</summary>
public sealed class KServeProtocolTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new();
    private HttpClient _client = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync()
    {
        _client = _factory.CreateClient();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _factory.DisposeAsync();
    }

    private const string ValidBody = """
        {"id": "req-7", "parameters": {"anything": 1},
         "inputs": [
           {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2.5, -3], [0.125, 0, 1e-3]]},
           {"name": "ids", "shape": [2, 2], "datatype": "INT64", "data": [9007199254740993, -1, 0, 41]},
           {"name": "flag", "datatype": "BOOL", "data": [true, false], "shape": [2]},
           {"data": [2147483647, -5], "name": "n", "shape": [2], "datatype": "INT32"},
           {"name": "d", "shape": [2], "datatype": "FP64", "data": [0.1, 1e300]}
         ]}
        """;

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(string url, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await _client.PostAsync(url, content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    [Fact]
    public async Task Infer_parses_every_datatype_flat_or_nested_and_echoes_id()
    {
        (HttpStatusCode status, JsonElement body) = await PostAsync("/v2/models/fake.echo/infer", ValidBody);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("fake.echo", body.GetProperty("model_name").GetString());
        Assert.Equal("3", body.GetProperty("model_version").GetString());
        Assert.Equal("req-7", body.GetProperty("id").GetString());
        Assert.Equal(1.5, body.GetProperty("parameters").GetProperty("compute_ms").GetDouble());

        // What reached the runner: typed arrays with the exact values (the INT64 needs all 64 bits).
        var received = _factory.Repository.Received.Last().Inputs;
        Assert.Equal([1f, 2.5f, -3f, 0.125f, 0f, 1e-3f], received["x"].AsFloats());
        Assert.Equal([2L, 3L], received["x"].Shape);
        Assert.Equal([9007199254740993L, -1L, 0L, 41L], received["ids"].AsLongs());
        Assert.Equal([true, false], (bool[])received["flag"].Data);
        Assert.Equal([int.MaxValue, -5], (int[])received["n"].Data);
        Assert.Equal([0.1, 1e300], (double[])received["d"].Data);

        Dictionary<string, JsonElement> outputs = body.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);
        Assert.Equal(["x2", "ids_out", "flag_out", "n_out", "d_out"], outputs.Keys);
        Assert.Equal("FP32", outputs["x2"].GetProperty("datatype").GetString());
        Assert.Equal([2, 3], outputs["x2"].GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([2f, 5f, -6f, 0.25f, 0f, 2e-3f], outputs["x2"].GetProperty("data").EnumerateArray().Select(e => e.GetSingle()));
        Assert.Equal([9007199254740994L, 0L, 1L, 42L], outputs["ids_out"].GetProperty("data").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal([false, true], outputs["flag_out"].GetProperty("data").EnumerateArray().Select(e => e.GetBoolean()));
        Assert.Equal("INT32", outputs["n_out"].GetProperty("datatype").GetString());
        Assert.Equal([0.05, 5e299], outputs["d_out"].GetProperty("data").EnumerateArray().Select(e => e.GetDouble()));
    }

    [Fact]
    public async Task Infer_answers_a_body_of_another_type_with_a_415_naming_the_types_it_reads()
    {
        // curl -d sends application/x-www-form-urlencoded: the client is told what to send instead of a guess.
        using var content = new StringContent(ValidBody, Encoding.UTF8, "application/x-www-form-urlencoded");
        using HttpResponseMessage response = await _client.PostAsync("/v2/models/fake.echo/infer", content, Ct);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        string error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetString()!;
        Assert.Contains("application/json", error, StringComparison.Ordinal);
        Assert.Contains("application/octet-stream", error, StringComparison.Ordinal);
        Assert.Contains("got 'application/x-www-form-urlencoded", error, StringComparison.Ordinal);

        // charset and +json variants are JSON.
        using var charset = new StringContent(ValidBody, Encoding.UTF8, "application/json");
        Assert.Equal("application/json; charset=utf-8", charset.Headers.ContentType!.ToString());
        using HttpResponseMessage ok = await _client.PostAsync("/v2/models/fake.echo/infer", charset, Ct);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using var plus = new StringContent(ValidBody, Encoding.UTF8, "application/vnd.kserve+json");
        using HttpResponseMessage okPlus = await _client.PostAsync("/v2/models/fake.echo/infer", plus, Ct);
        Assert.Equal(HttpStatusCode.OK, okPlus.StatusCode);
    }

    [Fact]
    public async Task Infer_returns_only_the_outputs_asked_for()
    {
        string body = ValidBody.TrimEnd().TrimEnd('}') + """, "outputs": [{"name": "d_out"}, {"name": "x2", "parameters": {}}]}""";
        (HttpStatusCode status, JsonElement json) = await PostAsync("/v2/models/fake.echo/infer", body);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(["d_out", "x2"], json.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()));
    }

    public static TheoryData<string, string, string> BadInputs => new()
    {
        { "wrong datatype", ValidBody.Replace("\"datatype\": \"FP32\"", "\"datatype\": \"FP64\"", StringComparison.Ordinal), "is FP32, not FP64" },
        { "unknown datatype", ValidBody.Replace("\"datatype\": \"FP32\"", "\"datatype\": \"BF16\"", StringComparison.Ordinal), "is FP32, not BF16" },
        { "wrong rank", ValidBody.Replace("\"shape\": [2, 3]", "\"shape\": [6]", StringComparison.Ordinal), "has 2 dimensions" },
        { "wrong fixed dim", ValidBody.Replace("\"shape\": [2, 3]", "\"shape\": [3, 2]", StringComparison.Ordinal), "dim 1 is 2, not 3" },
        { "too few elements", ValidBody.Replace("[[1, 2.5, -3], [0.125, 0, 1e-3]]", "[1, 2, 3, 4, 5]", StringComparison.Ordinal), "has 5 elements but shape [2, 3] needs 6" },
        { "too many elements", ValidBody.Replace("[[1, 2.5, -3], [0.125, 0, 1e-3]]", "[1, 2, 3, 4, 5, 6, 7]", StringComparison.Ordinal), "has 7 elements but shape [2, 3] needs 6" },
        { "string element", ValidBody.Replace("2.5", "\"2.5\"", StringComparison.Ordinal), "element 1 is a string" },
        { "fraction in INT64", ValidBody.Replace("-1, 0, 41", "-1, 0.5, 41", StringComparison.Ordinal), "not a valid Int64" },
        { "number in BOOL", ValidBody.Replace("[true, false]", "[1, 0]", StringComparison.Ordinal), "BOOL data must be true or false" },
        { "unknown input", ValidBody.Replace("\"name\": \"flag\"", "\"name\": \"flags\"", StringComparison.Ordinal), "No input named 'flags'" },
        { "duplicate input", ValidBody.Replace("\"name\": \"d\"", "\"name\": \"x\"", StringComparison.Ordinal), "given twice" },
        { "batch mismatch", ValidBody.Replace("\"shape\": [2], \"datatype\": \"INT32\"", "\"shape\": [1], \"datatype\": \"INT32\"", StringComparison.Ordinal).Replace("[2147483647, -5]", "[7]", StringComparison.Ordinal), "same batch size" },
        { "no inputs", """{"inputs": []}""", "'inputs' is required" },
        { "not an object", """[1, 2]""", "must be a JSON object" },
        { "malformed JSON", """{"inputs": [{"name": "x",""", "not valid JSON" },
        { "unknown output", ValidBody.TrimEnd().TrimEnd('}') + """, "outputs": [{"name": "nope"}]}""", "No output named 'nope'" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public async Task Bad_infer_input_is_400_with_a_v2_error_naming_the_problem(string why, string body, string expected)
    {
        (HttpStatusCode status, JsonElement json) = await PostAsync("/v2/models/fake.echo/infer", body);

        Assert.True(status == HttpStatusCode.BadRequest, $"{why}: got {status}");
        string error = json.GetProperty("error").GetString()!;
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_input_is_named()
    {
        string body = """{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}""";
        (HttpStatusCode status, JsonElement json) = await PostAsync("/v2/models/fake.echo/infer", body);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Input 'ids' (INT64, shape [-1, 2]) is missing", json.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v2/models/full.generator/infer", HttpStatusCode.TooManyRequests, "is full")]
    [InlineData("/v2/models/slow.generator/infer", HttpStatusCode.GatewayTimeout, "deadline")]
    [InlineData("/v2/models/loading.generator/infer", HttpStatusCode.ServiceUnavailable, "not ready")]
    [InlineData("/v2/models/broken.generator/infer", HttpStatusCode.ServiceUnavailable, "not an ONNX file")]
    [InlineData("/v2/models/nope.generator/infer", HttpStatusCode.NotFound, "No model named")]
    [InlineData("/v2/models/fake.decoder/infer", HttpStatusCode.NotFound, "No model named 'fake.decoder'")]
    public async Task Domain_errors_map_to_their_status_with_a_v2_error_body(string url, HttpStatusCode expected, string text)
    {
        (HttpStatusCode status, JsonElement json) = await PostAsync(url, """{"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0, 0]}]}""");

        Assert.Equal(expected, status);
        Assert.Contains(text, json.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_queue_says_when_to_retry()
    {
        using var content = new StringContent("""{"inputs": [{"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0, 0]}]}""", Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await _client.PostAsync("/v2/models/full.generator/infer", content, Ct);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task Metadata_lists_inputs_and_outputs_with_dynamic_batch()
    {
        JsonElement meta = await _client.GetFromJsonAsync<JsonElement>("/v2/models/fake.echo", Ct);

        Assert.Equal("fake.echo", meta.GetProperty("name").GetString());
        Assert.Equal("onnxruntime_onnx", meta.GetProperty("platform").GetString());
        Assert.Equal(["3"], meta.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        JsonElement x = meta.GetProperty("inputs")[0];
        Assert.Equal("x", x.GetProperty("name").GetString());
        Assert.Equal("FP32", x.GetProperty("datatype").GetString());
        Assert.Equal([-1L, 3L], x.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(["x2", "ids_out", "flag_out", "n_out", "d_out"], meta.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Server_metadata_liveness_and_readiness()
    {
        JsonElement server = await _client.GetFromJsonAsync<JsonElement>("/v2", Ct);
        Assert.Equal("genservice", server.GetProperty("name").GetString());
        Assert.Contains("model_repository", server.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));

        using HttpResponseMessage live = await _client.GetAsync("/v2/health/live", Ct);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);

        // Once the startup pass has ended the service is ready: "loading" (no serving version yet) and "broken" are
        // their own business (/v2/models/{m}/ready, Model_ready below), never the whole replica's.
        await _factory.Services.GetRequiredService<ServiceLifecycle>().Started.WaitAsync(AwaitableCount.SafetyTimeout, Ct);
        using HttpResponseMessage ready = await _client.GetAsync("/v2/health/ready", Ct);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        JsonElement body = JsonDocument.Parse(await ready.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.True(body.GetProperty("ready").GetBoolean());
    }

    [Fact]
    public async Task Readiness_is_503_with_the_models_still_loading_until_the_startup_pass_ends()
    {
        ServiceLifecycle lifecycle = new();
        IResult notYet = KServeEndpoints.Ready(_factory.Repository, lifecycle, _factory.Services.GetRequiredService<IOptions<InferenceOptions>>()).Result;
        var json = Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<V2Ready>>(notYet);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, json.StatusCode);
        Assert.Equal(["loading"], json.Value!.Loading);

        lifecycle.MarkStarted();
        Assert.IsType<Microsoft.AspNetCore.Http.HttpResults.Ok<V2Ready>>(KServeEndpoints.Ready(_factory.Repository, lifecycle, _factory.Services.GetRequiredService<IOptions<InferenceOptions>>()).Result);
    }

    [Theory]
    [InlineData("fake.echo", HttpStatusCode.OK)]
    [InlineData("loading.generator", HttpStatusCode.ServiceUnavailable)]
    [InlineData("broken.generator", HttpStatusCode.ServiceUnavailable)]
    [InlineData("fake.nope", HttpStatusCode.NotFound)]
    [InlineData("nope.generator", HttpStatusCode.NotFound)]
    public async Task Model_ready(string name, HttpStatusCode expected)
    {
        using HttpResponseMessage response = await _client.GetAsync($"/v2/models/{name}/ready", Ct);
        Assert.Equal(expected, response.StatusCode);
    }

    [Fact]
    public async Task Unknown_v2_route_is_a_404_v2_error()
    {
        using HttpResponseMessage response = await _client.GetAsync("/v2/nothing/here", Ct);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("No route GET /v2/nothing/here", JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Repository_index_lists_states()
    {
        (HttpStatusCode status, JsonElement body) = await PostAsync("/v2/repository/index", "{}");

        Assert.Equal(HttpStatusCode.OK, status);
        Dictionary<string, string> states = body.EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e.GetProperty("state").GetString()!);
        Assert.Equal("READY", states["fake"]);
        Assert.Equal("LOADING", states["loading"]);
        Assert.Equal("UNAVAILABLE", states["broken"]);

        (_, JsonElement readyOnly) = await PostAsync("/v2/repository/index", """{"ready": true}""");
        Assert.DoesNotContain("broken", readyOnly.EnumerateArray().Select(e => e.GetProperty("name").GetString()));
    }

    [Theory]
    [InlineData("..")]
    [InlineData("Upper")]
    [InlineData("a..b")]
    public async Task Repository_load_rejects_names_that_are_not_model_names(string name)
    {
        (HttpStatusCode status, JsonElement body) = await PostAsync($"/v2/repository/models/{Uri.EscapeDataString(name)}/load", "");
        Assert.True(status is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, status.ToString());
        Assert.True(body.TryGetProperty("error", out _));
    }
}

/// <summary>The admin key on the repository routes (GenService:Auth:Keys, stored as SHA-256; was the plaintext AdminApiKey).</summary>
public sealed class AdminKeyTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new(new()
    {
        ["GenService:Auth:Keys:0:Name"] = "ops",
        ["GenService:Auth:Keys:0:Sha256"] = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData("s3cret"u8)),
        ["GenService:Auth:Keys:0:Role"] = "admin",
    });

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Theory]
    [InlineData(null, null, HttpStatusCode.Unauthorized)]
    [InlineData("Authorization", "Bearer wrong", HttpStatusCode.Unauthorized)]
    [InlineData("Authorization", "Bearer s3cret", HttpStatusCode.OK)]
    [InlineData("X-Api-Key", "s3cret", HttpStatusCode.OK)]
    [InlineData("X-Api-Key", "s3cre", HttpStatusCode.Unauthorized)]
    public async Task Repository_routes_need_the_key_when_one_is_configured(string? header, string? value, HttpStatusCode expected)
    {
        using HttpClient client = _factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/repository/index");
        if (header is not null)
        {
            request.Headers.TryAddWithoutValidation(header, value);
        }

        using HttpResponseMessage response = await client.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(expected, response.StatusCode);
        if (expected == HttpStatusCode.Unauthorized)
        {
            string body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
            Assert.Contains("key", JsonDocument.Parse(body).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        }

        // Without RequireKey, inference and reads stay open to anonymous callers.
        using HttpResponseMessage meta = await client.GetAsync("/v2/models/fake.echo", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, meta.StatusCode);
    }
}
