using System.Net;
using GenService.Api.Tests.Infrastructure;
using static GenService.Api.Tests.Security.SecurityTestHelpers;

namespace GenService.Api.Tests.Security;

/// <summary>Keys in both headers, unknown keys, roles on the repository routes, and the caller identity they give.</summary>
public sealed class ApiKeyTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new(Keys());

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Fact]
    public async Task A_known_key_in_either_header_is_accepted_and_names_the_caller()
    {
        using HttpClient client = _factory.CreateClient();
        string body = """{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}, {"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}, {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [true]}, {"name": "n", "shape": [1], "datatype": "INT32", "data": [1]}, {"name": "d", "shape": [1], "datatype": "FP64", "data": [1]}]}""";
        Reply bearer = await SendAsync(client, HttpMethod.Post, "/v2/models/fake.echo/infer", body, Bearer(UserKey));
        Reply header = await SendAsync(client, HttpMethod.Post, "/v2/models/fake.echo/infer", body, XApiKey(AdminKey));
        Reply anonymous = await SendAsync(client, HttpMethod.Post, "/v2/models/fake.echo/infer", body);

        Assert.Equal(HttpStatusCode.OK, bearer.Status);
        Assert.Equal(HttpStatusCode.OK, header.Status);
        Assert.Equal(HttpStatusCode.OK, anonymous.Status); // keys are not required by default
        Assert.Equal(["key:alice", "key:root", "ip:127.0.0.1"], _factory.Repository.Callers);
    }

    [Theory]
    [InlineData("Authorization", "Bearer not-a-key")]
    [InlineData("X-API-Key", "user-key-012345678")]
    [InlineData("Authorization", "Bearer " + AdminKey + "x")]
    public async Task An_unknown_key_is_401_even_where_keys_are_not_required(string header, string value)
    {
        using HttpClient client = _factory.CreateClient();
        Reply v2 = await SendAsync(client, HttpMethod.Get, "/v2/models/fake.echo", null, (header, value));
        Reply v1 = await SendAsync(client, HttpMethod.Get, "/v1/models", null, (header, value));

        Assert.Equal(HttpStatusCode.Unauthorized, v2.Status);
        Assert.Contains("Bearer", v2.WwwAuthenticate, StringComparison.Ordinal);
        Assert.Contains("not known", v2.V2Error, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, v1.Status);
        Assert.Contains("not known", v1.ProblemDetail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v2/repository/index")]
    [InlineData("/v2/repository/models/fake/load")]
    [InlineData("/v2/repository/models/fake/unload")]
    public async Task Repository_routes_need_the_admin_role(string path)
    {
        using HttpClient client = _factory.CreateClient();
        Reply none = await SendAsync(client, HttpMethod.Post, path);
        Reply user = await SendAsync(client, HttpMethod.Post, path, null, Bearer(UserKey));
        Reply admin = await SendAsync(client, HttpMethod.Post, path, null, Bearer(AdminKey));

        // An admin key is configured, so even a loopback caller needs it.
        Assert.Equal(HttpStatusCode.Unauthorized, none.Status);
        Assert.Contains("admin key", none.V2Error, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, user.Status);
        Assert.Contains("'alice'", user.V2Error, StringComparison.Ordinal);
        Assert.Contains("'admin'", user.V2Error, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, admin.Status);
    }
}

/// <summary>GenService:Auth:RequireKey: every keyed route needs a key; the probes and /metrics never do.</summary>
public sealed class RequireKeyTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new(Keys(requireKey: true));

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Theory]
    [InlineData("/v1/models", false)]
    [InlineData("/v1/models/fake", false)]
    [InlineData("/v2", true)]
    [InlineData("/v2/models/fake.echo", true)]
    [InlineData("/v2/models/fake.echo/ready", true)]
    public async Task Without_a_key_is_401_in_the_protocol_shape_and_with_one_is_served(string path, bool v2)
    {
        using HttpClient client = _factory.CreateClient();
        Reply none = await SendAsync(client, HttpMethod.Get, path);
        Reply keyed = await SendAsync(client, HttpMethod.Get, path, null, XApiKey(UserKey));

        Assert.Equal(HttpStatusCode.Unauthorized, none.Status);
        Assert.Equal("Bearer", none.WwwAuthenticate);
        string message = v2 ? none.V2Error : none.ProblemDetail;
        Assert.Contains("requires an API key", message, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, keyed.Status);
    }

    [Fact]
    public async Task A_family_route_needs_a_key_before_its_body_is_read()
    {
        using HttpClient client = _factory.CreateClient();
        Reply none = await SendAsync(client, HttpMethod.Post, "/v1/gan/gated/samples", """{"count": 1}""");
        Assert.Equal(HttpStatusCode.Unauthorized, none.Status);
        Assert.Contains("requires an API key", none.ProblemDetail, StringComparison.Ordinal);
        Assert.Empty(_factory.Repository.Received);
    }

    [Theory]
    [InlineData("/v2/health/live")]
    [InlineData("/metrics")]
    public async Task Probes_and_metrics_stay_open(string path)
    {
        using HttpClient client = _factory.CreateClient();
        Reply none = await SendAsync(client, HttpMethod.Get, path);
        Assert.Equal(HttpStatusCode.OK, none.Status);
    }

    [Fact]
    public async Task Readiness_stays_open()
    {
        using HttpClient client = _factory.CreateClient();
        Reply none = await SendAsync(client, HttpMethod.Get, "/v2/health/ready");
        Assert.Equal(HttpStatusCode.OK, none.Status); // the startup pass has ended (a model still loading does not count), not 401
        Assert.True(none.Json.GetProperty("ready").GetBoolean());
    }
}

/// <summary>Secure by default: with no admin key, the repository routes answer only to loopback callers.</summary>
public sealed class LoopbackAdminTests : IAsyncLifetime
{
    private readonly FakeServiceFactory _factory = new(Keys(admin: false));

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    [Theory]
    [InlineData("127.0.0.1", HttpStatusCode.OK)]
    [InlineData("127.8.9.10", HttpStatusCode.OK)]
    [InlineData("::1", HttpStatusCode.OK)]
    [InlineData("::ffff:127.0.0.1", HttpStatusCode.OK)]
    [InlineData("203.0.113.7", HttpStatusCode.Forbidden)]
    [InlineData("10.0.0.5", HttpStatusCode.Forbidden)]
    [InlineData("2001:db8::1", HttpStatusCode.Forbidden)]
    public async Task Unload_answers_only_to_loopback_callers(string address, HttpStatusCode expected)
    {
        using HttpClient client = _factory.CreateClient();
        Reply reply = await SendAsync(client, HttpMethod.Post, "/v2/repository/models/fake/unload", null, From(address));

        Assert.Equal(expected, reply.Status);
        if (expected == HttpStatusCode.Forbidden)
        {
            Assert.Contains("loopback", reply.V2Error, StringComparison.Ordinal);
            Assert.Contains("GenService__Auth__Keys__0__Role=admin", reply.V2Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_remote_caller_still_reads_and_infers_and_a_user_key_does_not_make_it_admin()
    {
        using HttpClient client = _factory.CreateClient();
        Reply read = await SendAsync(client, HttpMethod.Get, "/v2/models/fake.echo", null, From("203.0.113.7"));
        Reply keyed = await SendAsync(client, HttpMethod.Post, "/v2/repository/index", null, From("203.0.113.7"), Bearer(UserKey));

        Assert.Equal(HttpStatusCode.OK, read.Status);
        Assert.Equal(HttpStatusCode.Forbidden, keyed.Status);
    }
}
