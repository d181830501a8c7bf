using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using GenService.Api.Families.Common;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Tensors;
using GenService.Sampling.Random;
using SkiaSharp;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

[Collection(RealModels.Name)]
public sealed class GanEndpointTests(GenServiceFactory factory)
{
    private const string Url = "/v1/gan/digits-gan/samples";

    [Fact]
    public async Task Samples_carry_png_data_label_and_echo_the_seed()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode r = await client.PostOkAsync(Url, new { count = 3, seed = 7, class_label = 4, output = "both" });
        Assert.Equal("digits-gan", r["model"]!.GetValue<string>());
        Assert.Equal("gan", r["family"]!.GetValue<string>());
        Assert.Equal(7UL, r["seed"]!.GetValue<ulong>());
        Assert.Equal([1, 8, 8], r["shape"]!.AsArray().Select(v => v!.GetValue<int>()));
        JsonArray samples = r["samples"]!.AsArray();
        Assert.Equal(3, samples.Count);
        foreach (JsonNode? s in samples)
        {
            Assert.Equal(4, s!["class_label"]!.GetValue<int>());
            Assert.Equal(64, s.Data().Length);
            using SKBitmap png = SKBitmap.Decode(Convert.FromBase64String(s["png"]!.GetValue<string>()));
            Assert.Equal((8, 8), (png.Width, png.Height));
        }

        Assert.True(r["timings"]!["total_ms"]!.GetValue<double>() >= r["timings"]!["compute_ms"]!.GetValue<double>());
    }

    [Fact]
    public async Task Sample_i_depends_on_seed_and_index_only_not_on_count()
    {
        using HttpClient client = factory.CreateClient();
        float[][] five = (await client.PostOkAsync(Url, new { count = 5, seed = 99, class_label = 2, output = "tensor" })).AllData();
        float[][] two = (await client.PostOkAsync(Url, new { count = 2, seed = 99, class_label = 2, output = "tensor" })).AllData();
        Assert.True(MaxAbsDiff(five[0], two[0]) <= 1e-3);
        Assert.True(MaxAbsDiff(five[1], two[1]) <= 1e-3);
        Assert.True(MaxAbsDiff(five[0], five[1]) > 1e-2, "different indices must give different samples");

        float[][] other = (await client.PostOkAsync(Url, new { count = 1, seed = 100, class_label = 2, output = "tensor" })).AllData();
        Assert.True(MaxAbsDiff(five[0], other[0]) > 1e-2, "different seeds must give different samples");
    }

    [Fact]
    public async Task Drawn_latents_are_the_documented_noise_stream_and_match_the_generator()
    {
        using HttpClient client = factory.CreateClient();
        float[] served = (await client.PostOkAsync(Url, new { count = 2, seed = 5, class_label = 8, output = "tensor" })).AllData()[1];

        var latent = new float[32];
        new NoiseStream(5, 1, NoiseStreamIds.Latent).FillNormal(latent);
        float[] direct = await RunGraphAsync(factory, "digits-gan", "generator", "sample",
            ("latent", Tensor.FromFloats(latent, 1, 32)), ("class_label", Labels(8, 1)));
        Assert.True(MaxAbsDiff(served, direct) <= 1e-5);
    }

    [Fact]
    public async Task Explicit_latents_are_scaled_by_truncation_but_never_clipped()
    {
        using HttpClient client = factory.CreateClient();
        float[] latent = Enumerable.Range(0, 32).Select(i => (float)(3.0 * Math.Sin(i))).ToArray(); // beyond ±2 on purpose
        float[] served = (await client.PostOkAsync(Url, new { latents = new[] { latent }, truncation = 0.5, class_label = 1, output = "tensor" })).AllData()[0];
        float[] direct = await RunGraphAsync(factory, "digits-gan", "generator", "sample",
            ("latent", Tensor.FromFloats(latent.Select(v => v * 0.5f).ToArray(), 1, 32)), ("class_label", Labels(1, 1)));
        Assert.True(MaxAbsDiff(served, direct) <= 1e-5);
    }

    [Fact]
    public async Task Truncation_draws_from_a_normal_truncated_at_two()
    {
        using HttpClient client = factory.CreateClient();
        float[] served = (await client.PostOkAsync(Url, new { seed = 11, truncation = 0.7, class_label = 0, output = "tensor" })).AllData()[0];
        var latent = new float[32];
        new NoiseStream(11, 0, NoiseStreamIds.Latent).FillTruncatedNormal(latent, 2f);
        Assert.All(latent, v => Assert.InRange(v, -2f, 2f));
        float[] direct = await RunGraphAsync(factory, "digits-gan", "generator", "sample",
            ("latent", Tensor.FromFloats(latent.Select(v => v * 0.7f).ToArray(), 1, 32)), ("class_label", Labels(0, 1)));
        Assert.True(MaxAbsDiff(served, direct) <= 1e-5);
    }

    [Fact]
    public async Task Accept_image_png_answers_one_grid()
    {
        using HttpClient client = factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, Url) { Content = JsonContent.Create(new { count = 4, seed = 1 }) };
        request.Headers.Accept.ParseAdd("image/png");
        HttpResponseMessage response = await client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
        using SKBitmap grid = SKBitmap.Decode(await response.Content.ReadAsByteArrayAsync(Ct));
        Assert.Equal((17, 17), (grid.Width, grid.Height)); // 2x2 tiles of 8 px with 1 px between
    }

    [Fact]
    public async Task Interpolation_ends_are_the_samples_of_their_seeds()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode frames = await client.PostOkAsync("/v1/gan/digits-gan/interpolations",
            new { from = new { seed = 21 }, to = new { seed = 22 }, frames = 4, class_label = 6, output = "tensor" });
        float[][] data = frames.AllData();
        Assert.Equal(4, data.Length);
        Assert.Equal(0.0, frames["samples"]![0]!["t"]!.GetValue<double>());
        Assert.Equal(1.0, frames["samples"]![3]!["t"]!.GetValue<double>());
        float[] start = (await client.PostOkAsync(Url, new { seed = 21, class_label = 6, output = "tensor" })).AllData()[0];
        float[] end = (await client.PostOkAsync(Url, new { seed = 22, class_label = 6, output = "tensor" })).AllData()[0];
        Assert.True(MaxAbsDiff(data[0], start) <= 1e-4);
        Assert.True(MaxAbsDiff(data[3], end) <= 1e-4);
    }

    [Theory]
    [InlineData("""{"count": 0}""", "count", "between 1 and 64")]
    [InlineData("""{"count": 65}""", "count", "between 1 and 64")]
    [InlineData("""{"class_label": 10}""", "class_label", "between 0 and 9")]
    [InlineData("""{"class_label": -1}""", "class_label", "between 0 and 9")]
    [InlineData("""{"truncation": 0}""", "truncation", "(0, 1]")]
    [InlineData("""{"truncation": 1.5}""", "truncation", "(0, 1]")]
    [InlineData("""{"latents": [[1, 2, 3]]}""", "latents[0]", "needs 32")]
    [InlineData("""{"latents": [[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1e39]]}""", "latents", "")]
    [InlineData("""{"count": 2, "latents": [[0]]}""", "count", "latents")]
    [InlineData("""{"output": "jpeg"}""", "output", "png, tensor, both")]
    [InlineData("""{"stpes": 3}""", null, "stpes")]
    [InlineData("""{"count": "three"}""", "count", "")]
    [InlineData("""not json""", null, "")]
    public async Task Bad_input_is_a_400_naming_the_field(string body, string? field, string detailContains)
    {
        using HttpClient client = factory.CreateClient();
        (int status, string? f, string detail, _) = await client.PostProblemAsync(Url, body);
        Assert.Equal(400, status);
        if (field is not null)
        {
            Assert.NotNull(f);
            Assert.StartsWith(field, f);
        }

        Assert.Contains(detailContains, detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_model_under_the_wrong_family_is_a_404_naming_its_family()
    {
        using HttpClient client = factory.CreateClient();
        (int status, _, string detail, JsonNode body) = await client.PostProblemAsync("/v1/vae/digits-gan/samples", "{}");
        Assert.Equal(404, status);
        Assert.Contains("gan", detail, StringComparison.Ordinal);
        Assert.Equal("gan", body["family"]?.GetValue<string>());

        (status, _, detail, _) = await client.PostProblemAsync("/v1/gan/no-such-model/samples", "{}");
        Assert.Equal(404, status);
        Assert.Contains("no-such-model", detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Png_codec_round_trips_the_17_digit_levels_within_one_grey_step()
    {
        float[] levels = Enumerable.Range(0, 64).Select(i => ((i % 17) / 8f) - 1f).ToArray();
        byte[] png = ImageCodec.EncodePng(levels, 1, 8, 8, -1f, 1f);
        float[] back = ImageCodec.DecodeToChw(png, 1, 8, 8, -1f, 1f);
        Assert.True(MaxAbsDiff(levels, back) <= 1.0 / 255 + 1e-6);
    }
}
