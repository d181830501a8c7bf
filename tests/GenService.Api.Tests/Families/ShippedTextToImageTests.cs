using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

/// <summary>
/// The shipped models/digits-txt2img (an Optimum-layout export folder) against an independent PyTorch
/// implementation of StableDiffusionPipeline's equations on the same weights
/// (Reference/txt2img/make_reference.py): each sampler, with and without guidance and negative prompts, three sizes.
/// </summary>
[Collection(RealModels.Name)]
public sealed class ShippedTextToImageTests(GenServiceFactory factory)
{
    private static readonly JsonNode Cases = JsonNode.Parse(File.ReadAllText(
        Path.Combine(RepositoryPaths.Root, "tests", "GenService.Api.Tests", "Reference", "txt2img", "cases.json")))!;

    public static TheoryData<string> CaseNames => [.. Cases["cases"]!.AsArray().Select(c => c!["name"]!.GetValue<string>())];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public async Task Served_images_equal_the_pytorch_pipeline(string name)
    {
        JsonNode c = Cases["cases"]!.AsArray().First(x => x!["name"]!.GetValue<string>() == name)!;
        var request = c["request"]!.DeepClone().AsObject();

        // The fixture keeps the latents flat; the API takes one flat array per sample.
        float[] flat = [.. request["latents"]!.AsArray().Select(v => v!.GetValue<float>())];
        int count = request["count"]!.GetValue<int>();
        int per = flat.Length / count;
        request["latents"] = new JsonArray([.. Enumerable.Range(0, count).Select(i => (JsonNode)new JsonArray([.. flat.Skip(i * per).Take(per).Select(v => (JsonNode)JsonValue.Create(v))]))]);

        using HttpClient client = factory.CreateClient();
        JsonNode response = await client.PostOkAsync("/v1/diffusion/digits-txt2img/samples", request);
        float[] actual = [.. response.AllData().SelectMany(s => s)];
        float[] expected = [.. c["expected"]!.AsArray().Select(v => v!.GetValue<float>())];
        double tolerance = c["max_abs_diff_tolerance"]!.GetValue<double>();
        Assert.Equal(expected.Length, actual.Length);
        double diff = MaxAbsDiff(expected, actual);
        Assert.True(diff <= tolerance, $"{name}: max |diff| {diff} > {tolerance}");
    }
}
