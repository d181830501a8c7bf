using System.Text.Json.Nodes;
using GenService.Api.Families.Common;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Tensors;
using GenService.Sampling.Random;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

[Collection(RealModels.Name)]
public sealed class VaeEndpointTests(GenServiceFactory factory)
{
    [Fact]
    public async Task Encode_returns_the_encoder_mean_and_log_var_per_input()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode r = await client.PostOkAsync("/v1/vae/digits-vae/encode", new { inputs = new object[] { new { data = Digit }, new { data = Digit.Select(v => -v).ToArray() } }, class_label = 3 });
        JsonArray results = r["results"]!.AsArray();
        Assert.Equal(2, results.Count);
        float[] mean = results[0]!["mean"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        float[] logVar = results[0]!["log_var"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        int latent = factory.Repository.GetReady("digits-vae").Manifest.LatentShape![0];
        Assert.Equal(latent, mean.Length);
        Assert.Equal(latent, logVar.Length);

        float[] direct = await RunGraphAsync(factory, "digits-vae", "encoder", "mean", ("sample", Tensor.FromFloats(Digit, 1, 1, 8, 8)), ("class_label", Labels(3, 1)));
        Assert.True(MaxAbsDiff(mean, direct) <= 1e-5);
    }

    [Fact]
    public async Task Png_and_data_inputs_encode_alike()
    {
        using HttpClient client = factory.CreateClient();
        string png = Convert.ToBase64String(ImageCodec.EncodePng(Digit, 1, 8, 8, -1, 1));
        JsonNode r = await client.PostOkAsync("/v1/vae/digits-vae/encode", new { inputs = new object[] { new { png }, new { data = Digit } }, class_label = 3 });
        float[] a = r["results"]![0]!["mean"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        float[] b = r["results"]![1]!["mean"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        Assert.True(MaxAbsDiff(a, b) <= 0.05, "8-bit PNG quantisation moves the mean only a little");
    }

    [Fact]
    public async Task Reconstruct_decodes_the_posterior_mean()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode enc = await client.PostOkAsync("/v1/vae/digits-vae/encode", new { inputs = new[] { new { data = Digit } }, class_label = 3 });
        float[] mean = enc["results"]![0]!["mean"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        JsonNode rec = await client.PostOkAsync("/v1/vae/digits-vae/reconstruct", new { inputs = new[] { new { data = Digit } }, class_label = 3, output = "both" });
        float[] served = rec.AllData()[0];
        float[] direct = await RunGraphAsync(factory, "digits-vae", "decoder", "sample", ("latent", Tensor.FromFloats(mean, 1, mean.Length)), ("class_label", Labels(3, 1)));
        Assert.True(MaxAbsDiff(served, direct) <= 1e-5);
        Assert.NotNull(rec["samples"]![0]!["png"]);
    }

    [Fact]
    public async Task Temperature_zero_decodes_the_prior_mean_whatever_the_seed()
    {
        using HttpClient client = factory.CreateClient();
        float[][] a = (await client.PostOkAsync("/v1/vae/digits-vae/samples", new { count = 2, seed = 1, temperature = 0, class_label = 7, output = "tensor" })).AllData();
        float[][] b = (await client.PostOkAsync("/v1/vae/digits-vae/samples", new { count = 1, seed = 2, temperature = 0, class_label = 7, output = "tensor" })).AllData();
        Assert.True(MaxAbsDiff(a[0], a[1]) <= 1e-6);
        Assert.True(MaxAbsDiff(a[0], b[0]) <= 1e-6);
    }

    [Fact]
    public async Task Samples_scale_the_seeded_latent_by_temperature()
    {
        using HttpClient client = factory.CreateClient();
        float[] served = (await client.PostOkAsync("/v1/vae/digits-vae/samples", new { seed = 3, temperature = 0.6, class_label = 1, output = "tensor" })).AllData()[0];
        int latentDim = factory.Repository.GetReady("digits-vae").Manifest.LatentShape![0];
        var z = new float[latentDim];
        new NoiseStream(3, 0, NoiseStreamIds.Latent).FillNormal(z);
        float[] direct = await RunGraphAsync(factory, "digits-vae", "decoder", "sample", ("latent", Tensor.FromFloats(z.Select(v => v * 0.6f).ToArray(), 1, latentDim)), ("class_label", Labels(1, 1)));
        Assert.True(MaxAbsDiff(served, direct) <= 1e-5);
    }

    [Fact]
    public async Task Interpolation_from_an_input_starts_at_its_reconstruction()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode frames = await client.PostOkAsync("/v1/vae/digits-vae/interpolations",
            new { from = new { input = new { data = Digit } }, to = new { seed = 4 }, frames = 3, class_label = 3, method = "lerp", output = "tensor" });
        JsonNode rec = await client.PostOkAsync("/v1/vae/digits-vae/reconstruct", new { inputs = new[] { new { data = Digit } }, class_label = 3, output = "tensor" });
        Assert.True(MaxAbsDiff(frames.AllData()[0], rec.AllData()[0]) <= 1e-4);
    }

    [Theory]
    [InlineData("/v1/vae/digits-vae/samples", """{"temperature": -1}""", "temperature")]
    [InlineData("/v1/vae/digits-vae/encode", """{"inputs": []}""", "inputs")]
    [InlineData("/v1/vae/digits-vae/encode", """{"inputs": [{"data": [1, 2]}], "class_label": 1}""", "inputs[0].data")]
    [InlineData("/v1/vae/digits-vae/encode", """{"inputs": [{"png": "%%%"}], "class_label": 1}""", "inputs[0].png")]
    [InlineData("/v1/vae/digits-vae/encode", """{"inputs": [{"png": "aGVsbG8="}], "class_label": 1}""", "inputs[0].png")]
    [InlineData("/v1/vae/digits-vae/encode", """{"inputs": [{}], "class_label": 1}""", "inputs[0]")]
    [InlineData("/v1/vae/digits-vae/interpolations", """{"from": {"seed": 1}, "to": {"seed": 2}, "method": "cubic"}""", "method")]
    [InlineData("/v1/vae/digits-vae/interpolations", """{"from": {"seed": 1, "latent": [0]}, "to": {"seed": 2}}""", "from")]
    [InlineData("/v1/vae/digits-vae/interpolations", """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 1}""", "frames")]
    [InlineData("/v1/vae/digits-vae/interpolations", """{"from": {"seed": 1}, "to": {"seed": 2}, "steps": 5}""", "steps")]
    public async Task Bad_input_is_a_400_naming_the_field(string url, string body, string field)
    {
        using HttpClient client = factory.CreateClient();
        (int status, string? f, _, _) = await client.PostProblemAsync(url, body);
        Assert.Equal(400, status);
        Assert.Equal(field, f);
    }

    [Fact]
    public async Task A_png_of_the_wrong_size_says_which_size_is_needed()
    {
        using HttpClient client = factory.CreateClient();
        string png = Convert.ToBase64String(ImageCodec.EncodePng(new float[16 * 16], 1, 16, 16, -1, 1));
        (int status, string? field, string detail, _) = await client.PostProblemAsync("/v1/vae/digits-vae/encode", $$"""{"inputs": [{"png": "{{png}}"}], "class_label": 1}""");
        Assert.Equal(400, status);
        Assert.Equal("inputs[0].png", field);
        Assert.Contains("16x16", detail, StringComparison.Ordinal);
        Assert.Contains("8x8", detail, StringComparison.Ordinal);
    }
}

[Collection(RealModels.Name)]
public sealed class FlowEndpointTests(GenServiceFactory factory)
{
    [Fact]
    public async Task Encode_then_sample_at_temperature_one_inverts_exactly()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode enc = await client.PostOkAsync("/v1/flow/digits-flow/encode", new { inputs = new[] { new { data = Digit } }, class_label = 3 });
        float[] z = enc["results"]![0]!["latent"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        Assert.Equal(64, z.Length);
        JsonNode back = await client.PostOkAsync("/v1/flow/digits-flow/samples", new { latents = new[] { z }, temperature = 1, class_label = 3, output = "tensor" });
        Assert.True(MaxAbsDiff(back.AllData()[0], Digit) <= 1e-3, "inverse(forward(x)) = x");
    }

    [Fact]
    public async Task Log_likelihood_is_the_change_of_variables_formula_with_discrete_bits_per_dim()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode enc = await client.PostOkAsync("/v1/flow/digits-flow/encode", new { inputs = new[] { new { data = Digit } }, class_label = 3 });
        double[] z = enc["results"]![0]!["latent"]!.AsArray().Select(v => (double)v!.GetValue<float>()).ToArray();
        double logDet = enc["results"]![0]!["log_det"]!.GetValue<double>();
        JsonNode ll = await client.PostOkAsync("/v1/flow/digits-flow/log-likelihood", new { inputs = new[] { new { data = Digit } }, class_label = 3 });
        double logProb = ll["results"]![0]!["log_prob"]!.GetValue<double>();
        double bpd = ll["results"]![0]!["bits_per_dim"]!.GetValue<double>();

        double expected = z.Sum(v => (-0.5 * v * v) - (0.5 * Math.Log(2 * Math.PI))) + logDet;
        Assert.Equal(expected, logProb, 1e-3);
        double binWidth = factory.Repository.GetReady("digits-flow").Manifest.Likelihood!.BinWidth;
        Assert.Equal(-(logProb + (64 * Math.Log(binWidth))) / (64 * Math.Log(2)), bpd, 1e-6);
    }

    [Fact]
    public async Task A_digit_is_more_likely_than_noise()
    {
        using HttpClient client = factory.CreateClient();
        var noise = new float[64];
        new NoiseStream(1, 0, 0).FillUniform(noise);
        JsonNode ll = await client.PostOkAsync("/v1/flow/digits-flow/log-likelihood",
            new { inputs = new object[] { new { data = Digit }, new { data = noise.Select(v => (2 * v) - 1).ToArray() } }, class_label = 3 });
        double digit = ll["results"]![0]!["bits_per_dim"]!.GetValue<double>();
        double random = ll["results"]![1]!["bits_per_dim"]!.GetValue<double>();
        Assert.True(digit < random, $"digit {digit} bits/dim vs noise {random}");
    }

    [Fact]
    public async Task Default_temperature_is_documented_0_8()
    {
        using HttpClient client = factory.CreateClient();
        float[] byDefault = (await client.PostOkAsync("/v1/flow/digits-flow/samples", new { seed = 8, class_label = 5, output = "tensor" })).AllData()[0];
        float[] explicit08 = (await client.PostOkAsync("/v1/flow/digits-flow/samples", new { seed = 8, class_label = 5, temperature = 0.8, output = "tensor" })).AllData()[0];
        Assert.True(MaxAbsDiff(byDefault, explicit08) <= 1e-6);
    }

    [Fact]
    public async Task Interpolation_between_encoded_inputs_reproduces_both_ends()
    {
        using HttpClient client = factory.CreateClient();
        float[] other = Digit.Reverse().ToArray();
        JsonNode frames = await client.PostOkAsync("/v1/flow/digits-flow/interpolations",
            new { from = new { input = new { data = Digit } }, to = new { input = new { data = other } }, frames = 5, class_label = 3, output = "tensor" });
        float[][] data = frames.AllData();
        Assert.True(MaxAbsDiff(data[0], Digit) <= 1e-3);
        Assert.True(MaxAbsDiff(data[4], other) <= 1e-3);
    }
}
