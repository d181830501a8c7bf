using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GenService.Api.Tests.Infrastructure;

namespace GenService.Api.Tests.Models;

/// <summary>The shipped models/ through the whole service.</summary>
[Collection(RealModels.Name)]
public sealed class RealModelsTests(GenServiceFactory factory)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Every_shipped_model_is_listed_and_ready()
    {
        string[] folders = Directory.GetDirectories(RepositoryPaths.RealModels)
            .Where(GenService.Inference.Manifest.ManifestLoader.IsModelFolder)
            .Select(d => Path.GetFileName(d)!)
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.Contains("digits-gan", folders);
        Assert.Contains("digits-txt2img", folders); // an export folder, no model.json

        using HttpClient client = factory.CreateClient();
        JsonElement list = await client.GetFromJsonAsync<JsonElement>("/v1/models", Ct);
        var models = list.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(folders, models.Select(m => m.GetProperty("name").GetString()));
        foreach (JsonElement m in models)
        {
            Assert.True(m.GetProperty("ready").GetBoolean(), $"{m.GetProperty("name")} is not ready: {m}");
            Assert.NotEmpty(m.GetProperty("endpoints").EnumerateArray());
        }

        using HttpResponseMessage ready = await client.GetAsync("/v2/health/ready", Ct);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Digits_gan_generator_over_v2_equals_running_the_graph_directly()
    {
        const int rows = 9;
        var rng = new Random(11);
        float[] latent = Enumerable.Range(0, rows * 32).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        long[] labels = [.. Enumerable.Range(0, rows).Select(i => (long)(i % 10))];
        float[] expected = TestModelsTests.RunDirectly(Path.Combine(RepositoryPaths.RealModels, "digits-gan", "generator.onnx"), latent, labels, "latent", "class_label");

        using HttpClient client = factory.CreateClient();
        string body = JsonSerializer.Serialize(new
        {
            inputs = new object[]
            {
                new { name = "latent", shape = new[] { rows, 32 }, datatype = "FP32", data = latent },
                new { name = "class_label", shape = new[] { rows }, datatype = "INT64", data = labels },
            },
        });
        using HttpResponseMessage response = await client.PostAsync("/v2/models/digits-gan.generator/infer", new StringContent(body, Encoding.UTF8, "application/json"), Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);

        JsonElement output = JsonDocument.Parse(text).RootElement.GetProperty("outputs")[0];
        Assert.Equal("sample", output.GetProperty("name").GetString());
        Assert.Equal([rows, 1, 8, 8], output.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()));
        float[] actual = [.. output.GetProperty("data").EnumerateArray().Select(e => e.GetSingle())];
        Assert.Equal(rows * 64, actual.Length);
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(worst <= 1e-5, $"max |difference| {worst}");
        Assert.True(actual.Max() - actual.Min() > 0.5f, "the generator's output should not be constant");
    }
}
