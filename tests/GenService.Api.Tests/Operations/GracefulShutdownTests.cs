using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Hosting;
using GenService.Inference.Repository;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace GenService.Api.Tests.Operations;

/// <summary>
/// The shutdown sequence through the in-process host: a request held inside ONNX Runtime while the host stops; the
/// service turns not ready and refuses new work (503 + Retry-After in both error shapes) while the held request runs
/// on, completes 200 once released, and only then does the host stop.
/// </summary>
public sealed class GracefulShutdownTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Stopping_turns_readiness_503_refuses_new_work_and_waits_for_the_request_in_flight()
    {
        string repo = RepositoryPaths.CopyToTemp(RepositoryPaths.TestModels, "tiny-gan");
        try
        {
            await using var factory = new GenServiceFactory(repo);
            await factory.InitializeAsync();
            using HttpClient client = factory.CreateClient();
            using HttpResponseMessage before = await client.GetAsync("/v2/health/ready", Ct);
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);

            // A version of tiny-gan whose ONNX calls wait for the test.
            ModelRepository models = factory.Services.GetRequiredService<ModelRepository>();
            var gates = new ConcurrentDictionary<string, GatedExecutor>();
            models.WrapExecutor = (graph, inner) => gates[graph] = new GatedExecutor(inner);
            Assert.Equal(ModelState.Ready, (await models.LoadAsync("tiny-gan", Ct)).State);
            models.WrapExecutor = null;
            GatedExecutor gate = gates["tiny-gan.generator"];

            Task<HttpResponseMessage> first = client.PostAsJsonAsync("/v1/gan/tiny-gan/samples", new { count = 2, seed = 7, output = "tensor" }, Ct);
            await gate.WhenEntered(1);

            ServiceLifecycle lifecycle = factory.Services.GetRequiredService<ServiceLifecycle>();
            Task stop = factory.Services.GetRequiredService<IHost>().StopAsync(CancellationToken.None);
            await lifecycle.Refusing.WaitAsync(AwaitableCount.SafetyTimeout, Ct);

            // Out of rotation at once, with the reason; liveness is unaffected.
            using HttpResponseMessage ready = await client.GetAsync("/v2/health/ready", Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            JsonElement readyBody = JsonDocument.Parse(await ready.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.False(readyBody.GetProperty("ready").GetBoolean());
            Assert.Equal("the server is shutting down", readyBody.GetProperty("reason").GetString());
            using HttpResponseMessage live = await client.GetAsync("/v2/health/live", Ct);
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);

            // New work: 503 with Retry-After, problem+json on /v1 and {"error"} on /v2.
            using HttpResponseMessage v1 = await client.PostAsJsonAsync("/v1/gan/tiny-gan/samples", new { count = 1, seed = 8 }, Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, v1.StatusCode);
            Assert.Equal("application/problem+json", v1.Content.Headers.ContentType?.MediaType);
            Assert.Equal(TimeSpan.FromSeconds(1), v1.Headers.RetryAfter?.Delta);
            Assert.True(v1.Headers.ConnectionClose);   // keep-alive clients reconnect instead of reusing a closing connection
            JsonElement problem = JsonDocument.Parse(await v1.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(503, problem.GetProperty("status").GetInt32());
            Assert.Contains("the server is shutting down", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);

            const string body = """{"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}, {"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}]}""";
            using HttpResponseMessage v2 = await client.PostAsync("/v2/models/tiny-gan.generator/infer", new StringContent(body, Encoding.UTF8, "application/json"), Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, v2.StatusCode);
            Assert.NotNull(v2.Headers.RetryAfter);
            Assert.Contains("the server is shutting down", JsonDocument.Parse(await v2.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);

            // The request in flight is still running, and the host waits for it.
            Assert.False(first.IsCompleted);
            Assert.False(stop.IsCompleted);
            Assert.Equal(1, lifecycle.InFlight);

            gate.Open();
            using HttpResponseMessage done = await first.WaitAsync(AwaitableCount.SafetyTimeout, Ct);
            Assert.Equal(HttpStatusCode.OK, done.StatusCode);
            Assert.True(done.Headers.ConnectionClose);  // answered during the drain: its connection closes too
            JsonElement samples = JsonDocument.Parse(await done.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("samples");
            Assert.Equal(2, samples.GetArrayLength());
            await stop.WaitAsync(AwaitableCount.SafetyTimeout, Ct);
            Assert.Equal(0, lifecycle.InFlight);
        }
        finally
        {
            Directory.Delete(repo, recursive: true);
        }
    }

    [Fact]
    public async Task The_drain_timeout_is_the_hosts_shutdown_timeout()
    {
        await using var factory = new GenServiceFactory(RepositoryPaths.TestModels, new Dictionary<string, string?>
        {
            ["GenService:Shutdown:ReadinessDelaySeconds"] = "5",
            ["GenService:Shutdown:DrainTimeoutSeconds"] = "40",
            ["GenService:Repository:Watch"] = "false",
        });
        await factory.InitializeAsync();
        HostOptions host = factory.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<HostOptions>>().Value;
        Assert.Equal(TimeSpan.FromSeconds(45), host.ShutdownTimeout);
    }
}
