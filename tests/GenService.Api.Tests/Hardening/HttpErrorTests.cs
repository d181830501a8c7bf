using System.Net;
using System.Text;
using System.Text.Json;
using Serilog.Events;

namespace GenService.Api.Tests.Hardening;

/// <summary>
/// The answers to requests that are wrong at the HTTP level (issue 14): 415 naming the type to send, 405 with Allow,
/// problem+json whatever the Accept, duplicate keys, 413 with a body, and that none of them is logged as an
/// unhandled exception. Over the fake repository (a gan model "fake"): these are decided before any graph runs.
/// </summary>
public sealed class HttpErrorTests() : CapturedLogHost(new Dictionary<string, string?> { ["GenService:Api:MaxRequestBodyBytes"] = "2048" })
{

    private async Task<(HttpResponseMessage Response, JsonElement Body)> SendAsync(HttpMethod method, string url, string? body, string? contentType = "application/json", string? accept = null)
    {
        using HttpClient client = Factory.CreateClient();
        using var request = new HttpRequestMessage(method, url);
        if (body is not null)
        {
            request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
            if (contentType is not null)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
        }

        if (accept is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }

        HttpResponseMessage response = await client.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        return (response, JsonDocument.Parse(text).RootElement.Clone());
    }

    [Theory]
    [InlineData(null, "the request had no Content-Type")]
    [InlineData("text/plain", "got 'text/plain'")]
    [InlineData("application/x-www-form-urlencoded", "got 'application/x-www-form-urlencoded'")]
    public async Task A_v1_body_of_another_type_is_a_415_problem_naming_the_type_to_send(string? contentType, string sent)
    {
        (HttpResponseMessage response, JsonElement problem) = await SendAsync(HttpMethod.Post, "/v1/gan/fake/samples", """{"count": 1}""", contentType);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        string detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains("'Content-Type: application/json'", detail, StringComparison.Ordinal);
        Assert.Contains(sent, detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/vnd.genservice+json")]
    public async Task Json_with_a_charset_or_a_json_suffix_is_read(string contentType)
    {
        // A field the contract lacks: the 400 proves the body was read as JSON (not refused with a 415).
        (HttpResponseMessage response, JsonElement problem) = await SendAsync(HttpMethod.Post, "/v1/gan/fake/samples", """{"bogus": 1}""", contentType);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("bogus", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_method_is_a_405_with_allow_in_each_protocols_shape()
    {
        (HttpResponseMessage v1, JsonElement problem) = await SendAsync(HttpMethod.Get, "/v1/gan/fake/samples", null);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, v1.StatusCode);
        Assert.Equal(["POST"], v1.Content.Headers.Allow);
        Assert.Equal("application/problem+json", v1.Content.Headers.ContentType?.MediaType);
        Assert.Equal("GET is not allowed on /v1/gan/fake/samples; use POST.", problem.GetProperty("detail").GetString());

        (HttpResponseMessage v2, JsonElement error) = await SendAsync(HttpMethod.Get, "/v2/models/fake.echo/infer", null);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, v2.StatusCode);
        Assert.Equal(["POST"], v2.Content.Headers.Allow);
        Assert.Equal("GET is not allowed on /v2/models/fake.echo/infer; use POST.", error.GetProperty("error").GetString());

        // An unknown path stays a 404.
        (HttpResponseMessage unknown, JsonElement notFound) = await SendAsync(HttpMethod.Get, "/v1/gan/fake/teleport", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("No route GET /v1/gan/fake/teleport", notFound.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("image/png")]
    [InlineData("text/event-stream")]
    [InlineData("*/*")]
    [InlineData("garbage;;;")]
    [InlineData("application/xml")]
    public async Task A_v1_error_is_problem_json_whatever_the_accept_header_and_is_not_logged_as_unhandled(string accept)
    {
        (HttpResponseMessage response, JsonElement problem) = await SendAsync(HttpMethod.Post, "/v1/gan/fake/samples", """{"count": "two"}""", accept: accept);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("count", problem.GetProperty("field").GetString());
        Assert.False(string.IsNullOrWhiteSpace(problem.GetProperty("traceId").GetString()));

        IReadOnlyList<LogEvent> events = Sink.Events;
        Assert.DoesNotContain(events, e => e.Level >= LogEventLevel.Error);
        Assert.DoesNotContain(events, e => e.Exception is not null);
        Assert.DoesNotContain(events, e => e.RenderMessage(System.Globalization.CultureInfo.InvariantCulture).Contains("unhandled exception", StringComparison.OrdinalIgnoreCase));
    }

    [Theory]
    [InlineData("""{"count": 1, "count": 64}""", "count")]
    [InlineData("""{"count": 1, "latents": [[0.1]], "latents": [[0.2]]}""", "latents")]
    public async Task A_duplicate_key_in_a_v1_body_is_a_400_naming_it(string body, string key)
    {
        (HttpResponseMessage response, JsonElement problem) = await SendAsync(HttpMethod.Post, "/v1/gan/fake/samples", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains($"'{key}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"inputs": [], "inputs": []}""", "'inputs' appears twice")]
    [InlineData("""{"inputs": [{"name": "x", "name": "y"}]}""", "'inputs[0].name' appears twice")]
    [InlineData("""{"inputs": [{"name": "x", "data": [1], "data": [2]}]}""", "'inputs[0].data' appears twice")]
    [InlineData("""{"id": "a", "id": "b"}""", "'id' appears twice")]
    [InlineData("""{"inputs": [{"name": "x", "parameters": {"binary_data_size": 4, "binary_data_size": 8}}]}""", "'inputs[0].parameters.binary_data_size' appears twice")]
    [InlineData("""{"outputs": [{"name": "a", "name": "b"}]}""", "'outputs[0].name' appears twice")]
    [InlineData("""{"inputs": []} {}""", "something follows it")]
    public async Task A_duplicate_key_or_trailing_value_in_a_v2_body_is_a_400_naming_it(string body, string expected)
    {
        (HttpResponseMessage response, JsonElement error) = await SendAsync(HttpMethod.Post, "/v2/models/fake.echo/infer", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, error.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_body_over_the_limit_is_a_413_with_a_body_in_each_protocols_shape()
    {
        string big = "{\"count\": 1" + new string(' ', 4096) + "}";
        (HttpResponseMessage v1, JsonElement problem) = await SendAsync(HttpMethod.Post, "/v1/gan/fake/samples", big, accept: "image/png");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, v1.StatusCode);
        Assert.Equal("application/problem+json", v1.Content.Headers.ContentType?.MediaType);
        Assert.Contains("over the limit of 2048 bytes", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        (HttpResponseMessage v2, JsonElement error) = await SendAsync(HttpMethod.Post, "/v2/repository/index", big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, v2.StatusCode);
        Assert.Contains("over the limit of 2048 bytes", error.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_chunked_body_over_the_limit_is_a_413_problem()
    {
        using HttpClient client = Factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/gan/fake/samples")
        {
            Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("{\"count\": 1" + new string(' ', 8192) + "}"))),
        };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Headers.TransferEncodingChunked = true;
        using HttpResponseMessage response = await client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}

/// <summary>How System.Text.Json's messages reach a client: in JSON terms, without .NET type names.</summary>
public sealed class JsonErrorWordingTests
{
    [Theory]
    [InlineData("System.Nullable`1[System.Int32]", "count", "expected an integer (32-bit).")]
    [InlineData("System.Nullable`1[System.UInt64]", "seed", "expected a non-negative integer (64-bit).")]
    [InlineData("System.Single[][]", "latents", "expected an array of arrays of numbers.")]
    [InlineData("System.Int32[]", "prompt_tokens", "expected an array of integers (32-bit).")]
    [InlineData("System.Nullable`1[System.Boolean]", "stream", "expected true or false.")]
    [InlineData("GenService.Api.Contracts.GanSampleRequest", null, "expected an object.")]
    public void A_wrong_type_says_what_json_to_send(string type, string? field, string expected)
    {
        string path = field is null ? "$" : "$." + field;
        var json = new System.Text.Json.JsonException($"The JSON value could not be converted to {type}. Path: {path} | LineNumber: 0 | BytePositionInLine: 3.", path, 0, 3);
        Errors.HttpError error = Errors.ErrorMapping.Map(new Microsoft.AspNetCore.Http.BadHttpRequestException("Failed to read parameter", 400, json), new Microsoft.AspNetCore.Http.DefaultHttpContext());
        Assert.Equal(400, error.Status);
        Assert.EndsWith(expected, error.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_duplicate_key_names_the_key_without_the_type()
    {
        var json = new System.Text.Json.JsonException("Duplicate property 'count' encountered during deserialization of type 'GenService.Api.Contracts.GanSampleRequest'. Path: $.count | LineNumber: 0 | BytePositionInLine: 22.", "$.count", 0, 22);
        Errors.HttpError error = Errors.ErrorMapping.Map(json, new Microsoft.AspNetCore.Http.DefaultHttpContext());
        Assert.Equal(400, error.Status);
        Assert.Equal("count", error.Field);
        Assert.EndsWith("the key 'count' appears twice in the same object; send each key once.", error.Detail, StringComparison.Ordinal);
    }
}
