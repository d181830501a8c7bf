using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;
using Microsoft.ML.OnnxRuntime;

namespace GenService.Api.Tests.Models;

/// <summary>The real inference stack (repository, session pool, batcher) over the tiny test models.</summary>
[Collection(TestModels.Name)]
public sealed class TestModelsTests(TestModelsFactory fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Model_list_derives_endpoints_from_family_and_graphs()
    {
        using HttpClient client = fixture.CreateClient();
        JsonElement list = await client.GetFromJsonAsync<JsonElement>("/v1/models", Ct);
        Dictionary<string, JsonElement> models = list.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("name").GetString()!);

        JsonElement gan = models["tiny-gan"];
        Assert.True(gan.GetProperty("ready").GetBoolean());
        Assert.Equal("gan", gan.GetProperty("family").GetString());
        Assert.Equal([4], gan.GetProperty("latent_shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(10, gan.GetProperty("conditioning").GetProperty("num_classes").GetInt32());
        Assert.Equal([1, 2, 2], gan.GetProperty("output").GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(["POST /v1/gan/tiny-gan/samples", "POST /v1/gan/tiny-gan/interpolations"], gan.GetProperty("endpoints").EnumerateArray().Select(e => e.GetString()));

        // A vae without an encoder graph has no encode/reconstruct routes.
        Assert.Equal(["POST /v1/vae/tiny-vae/samples", "POST /v1/vae/tiny-vae/interpolations"], models["tiny-vae"].GetProperty("endpoints").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Model_detail_has_card_batching_and_instances()
    {
        using HttpClient client = fixture.CreateClient();
        JsonElement gan = await client.GetFromJsonAsync<JsonElement>("/v1/models/tiny-gan", Ct);

        Assert.Equal("MIT", gan.GetProperty("card").GetProperty("license").GetString());
        Assert.Equal(8, gan.GetProperty("batching").GetProperty("max_batch_size").GetInt32());
        Assert.Equal(1, gan.GetProperty("instances").GetInt32());
        Assert.False(gan.TryGetProperty("error", out _));
    }

    [Fact]
    public async Task V2_metadata_reads_the_graph()
    {
        using HttpClient client = fixture.CreateClient();
        JsonElement meta = await client.GetFromJsonAsync<JsonElement>("/v2/models/tiny-gan.generator", Ct);

        Assert.Equal("1", meta.GetProperty("versions")[0].GetString());
        var inputs = meta.GetProperty("inputs").EnumerateArray()
            .Select(i => (i.GetProperty("name").GetString(), i.GetProperty("datatype").GetString(), string.Join(",", i.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()))))
            .ToList();
        Assert.Equal([("z", "FP32", "-1,4"), ("y", "INT64", "-1")], inputs);
        JsonElement output = meta.GetProperty("outputs")[0];
        Assert.Equal(("img", "-1,1,2,2"), (output.GetProperty("name").GetString(), string.Join(",", output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()))));
    }

    [Fact]
    public async Task V2_infer_equals_running_the_graph_directly()
    {
        const int rows = 5; // not a multiple of the max batch (8) and more than one client request per batch is fine
        var rng = new Random(7);
        float[] z = Enumerable.Range(0, rows * 4).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        long[] y = [0, 3, 9, 3, 5];

        float[] expected = RunDirectly(Path.Combine(RepositoryPaths.TestModels, "tiny-gan", "generator.onnx"), z, y);

        using HttpClient client = fixture.CreateClient();
        string body = JsonSerializer.Serialize(new
        {
            inputs = new object[]
            {
                new { name = "z", shape = new[] { rows, 4 }, datatype = "FP32", data = z },
                new { name = "y", shape = new[] { rows }, datatype = "INT64", data = y },
            },
        });
        using HttpResponseMessage response = await client.PostAsync("/v2/models/tiny-gan.generator/infer", new StringContent(body, Encoding.UTF8, "application/json"), Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);

        JsonElement output = JsonDocument.Parse(text).RootElement.GetProperty("outputs")[0];
        Assert.Equal("img", output.GetProperty("name").GetString());
        Assert.Equal([rows, 1, 2, 2], output.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        float[] actual = output.GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"element {i}: {actual[i]} vs {expected[i]}");
        }

        // And the graph is what make_test_models.py says it is, so the check above is not vacuous.
        Assert.Contains(actual, v => Math.Abs(v) > 0.05f);
    }

    internal static float[] RunDirectly(string onnxPath, float[] z, long[]? y, string zName = "z", string yName = "y")
    {
        using var session = new InferenceSession(onnxPath);
        int rows = y?.Length ?? z.Length / (int)session.InputMetadata[zName].Dimensions[1];
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor(zName, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(z, [rows, z.Length / rows])),
        };
        if (y is not null)
        {
            inputs.Add(NamedOnnxValue.CreateFromTensor(yName, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<long>(y, [rows])));
        }

        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = session.Run(inputs);
        return results[0].AsEnumerable<float>().ToArray();
    }

    [Fact]
    public async Task Metrics_export_the_GenService_meter_and_http_metrics()
    {
        using HttpClient client = fixture.CreateClient();
        string body = """{"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [0.1, 0.2, 0.3, 0.4]}, {"name": "y", "shape": [1], "datatype": "INT64", "data": [2]}]}""";
        using HttpResponseMessage infer = await client.PostAsync("/v2/models/tiny-gan.generator/infer", new StringContent(body, Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        using HttpResponseMessage bad = await client.PostAsync("/v2/models/tiny-gan.generator/infer", new StringContent("{}", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);

        string metrics = await client.GetStringAsync("/metrics", Ct);

        Assert.Contains("genservice_requests_total{", metrics, StringComparison.Ordinal);
        string requests = string.Join("\n", metrics.Split('\n').Where(l => l.StartsWith("genservice_requests_total", StringComparison.Ordinal)));
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(requests, "model=\"tiny-gan\"[^\n]*status=\"400\""), requests);
        Assert.Matches("genservice_requests_total\\{[^}]*family=\"gan\"", metrics);
        Assert.Matches("genservice_queue_wait_seconds_count\\{model=\"tiny-gan\",graph=\"generator\"\\} [1-9]", metrics);
        Assert.Matches("genservice_compute_seconds_count\\{model=\"tiny-gan\",graph=\"generator\"\\} [1-9]", metrics);
        Assert.Matches("genservice_batch_size_bucket\\{model=\"tiny-gan\",graph=\"generator\",le=\"1\"\\} [1-9]", metrics);
        Assert.Matches("genservice_queue_depth\\{model=\"tiny-gan\",graph=\"generator\"\\} 0", metrics);

        // Counted only when something is rejected or cancelled, but named from the start.
        Assert.Contains("# TYPE genservice_rejected_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains("# TYPE genservice_cancelled_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains("# TYPE genservice_network_evaluations_total counter", metrics, StringComparison.Ordinal);
        Assert.Contains("http_request_duration_seconds", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_broken_model_is_listed_not_ready_with_its_error_while_others_serve()
    {
        string repo = RepositoryPaths.CopyToTemp(RepositoryPaths.TestModels, "tiny-gan", "tiny-vae");
        try
        {
            // Corrupt the vae's graph: the folder and manifest are fine, the ONNX file is not.
            await File.WriteAllTextAsync(Path.Combine(repo, "tiny-vae", "decoder.onnx"), "this is not an ONNX model", Ct);
            await using var factory = new GenServiceFactory(repo);
            await factory.InitializeAsync();
            using HttpClient client = factory.CreateClient();

            JsonElement vae = await client.GetFromJsonAsync<JsonElement>("/v1/models/tiny-vae", Ct);
            Assert.False(vae.GetProperty("ready").GetBoolean());
            Assert.Equal("failed", vae.GetProperty("state").GetString());
            Assert.Contains("decoder", vae.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);

            using HttpResponseMessage notReady = await client.GetAsync("/v2/models/tiny-vae.decoder/ready", Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);

            // The failed model does not hold the server out of rotation, and the good one serves.
            using HttpResponseMessage ready = await client.GetAsync("/v2/health/ready", Ct);
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            string body = """{"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}, {"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}]}""";
            using HttpResponseMessage infer = await client.PostAsync("/v2/models/tiny-gan.generator/infer", new StringContent(body, Encoding.UTF8, "application/json"), Ct);
            Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        }
        finally
        {
            Directory.Delete(repo, recursive: true);
        }
    }
}
