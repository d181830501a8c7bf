using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Api.Tests.Families;

/// <summary>Small helpers shared by the family endpoint tests.</summary>
internal static class FamilyTestHelpers
{
    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static async Task<JsonNode> PostOkAsync(this HttpClient client, string url, object body)
    {
        HttpResponseMessage response = await client.PostAsJsonAsync(url, body, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url} -> {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    /// <summary>POST expecting a problem+json error; returns (status, field, detail).</summary>
    public static async Task<(int Status, string? Field, string Detail, JsonNode Body)> PostProblemAsync(this HttpClient client, string url, string jsonBody)
    {
        using var content = new StringContent(jsonBody, System.Text.Encoding.UTF8, "application/json");
        HttpResponseMessage response = await client.PostAsync(url, content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True((int)response.StatusCode is >= 400 and < 500, $"{url} {jsonBody} -> {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonNode body = JsonNode.Parse(text)!;
        return ((int)response.StatusCode, body["field"]?.GetValue<string>(), body["detail"]!.GetValue<string>(), body);
    }

    public static float[] Data(this JsonNode sample) => sample["data"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();

    public static float[][] AllData(this JsonNode response) => response["samples"]!.AsArray().Select(s => s!.Data()).ToArray();

    /// <summary>Run one graph of a loaded model directly (bypassing the family route) with float inputs and int64 labels.</summary>
    public static async Task<float[]> RunGraphAsync(GenServiceFactory factory, string model, string role, string output, params (string Name, Tensor Value)[] inputs)
    {
        IGraphRunner runner = factory.Repository.GetReady(model).Graph(role)!;
        InferenceResult result = await runner.InferAsync(new InferenceRequest { Inputs = inputs.ToDictionary(i => i.Name, i => i.Value) }, Ct);
        return result.Outputs[output].AsFloats();
    }

    public static Tensor Labels(int label, int n) => Tensor.FromLongs(Enumerable.Repeat((long)label, n).ToArray(), n);

    /// <summary>A held-out style digit "3" in [-1, 1] (8x8), for the inverse directions.</summary>
    public static readonly float[] Digit =
    [
        -1, -1, -0.5f, 0.75f, 1, 0, -1, -1, -1, -0.75f, 1, 0.5f, 0.5f, 1, -0.5f, -1, -1, -0.25f, 1, -1, -0.75f, 1, 0, -1, -1, -0.5f, 0.75f, -1, -0.5f, 1, -0.25f, -1,
        -1, -0.5f, 1, 0.75f, 1, 1, -0.5f, -1, -1, -1, -0.25f, -0.25f, 0.25f, 1, -0.5f, -1, -1, -1, -1, -1, 0.25f, 0.75f, -1, -1, -1, -1, -0.5f, 1, 0.5f, -0.75f, -1, -1,
    ];

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web);
}
