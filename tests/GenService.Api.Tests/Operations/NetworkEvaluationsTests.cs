using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Families;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace GenService.Api.Tests.Operations;

/// <summary>
/// <c>genservice.network.evaluations</c> ("network evaluations per sample, summed") counts for every family what the
/// request computed: one pass per sample and graph for gan, vae and flow, steps (x2 under guidance) per diffusion
/// sample, text-to-image included (UNet rows, as its `nfe`), one decoder row per generated AR token, one pass per
/// scored sequence.
/// </summary>
[Collection(RealModels.Name)]
public sealed class NetworkEvaluationsTests(GenServiceFactory factory)
{
    /// <summary>POSTs <paramref name="body"/> to the route and returns (what it answered, the evaluations recorded for <paramref name="model"/>).</summary>
    private async Task<(JsonNode Body, long Evaluations)> MeasureAsync(string family, string model, string route, object body)
    {
        IMeterFactory meters = factory.Services.GetRequiredService<IMeterFactory>();
        long total = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Meter.Name == GenServiceMetrics.MeterName && instrument.Name == "genservice.network.evaluations")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? m = null, f = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                (m, f) = tag.Key switch { "model" => ((string?)tag.Value, f), "family" => (m, (string?)tag.Value), _ => (m, f) };
            }

            if (m == model && f == family)
            {
                Interlocked.Add(ref total, value);
            }
        });
        listener.Start();
        using HttpClient client = factory.CreateClient();
        JsonNode response = await client.PostOkAsync($"/v1/{family}/{model}/{route}", body);
        return (response, Interlocked.Read(ref total));
    }

    private static readonly float[] Digit = [.. Enumerable.Range(0, 64).Select(i => (i % 5 / 2f) - 1f)];

    [Theory]
    [InlineData("gan", "digits-gan", "samples", """{"count": 3, "seed": 1}""", 3)]
    [InlineData("gan", "digits-gan", "interpolations", """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 4}""", 4)]
    [InlineData("vae", "digits-vae", "samples", """{"count": 2, "seed": 1}""", 2)]
    [InlineData("flow", "digits-flow", "samples", """{"count": 5, "seed": 1}""", 5)]
    public async Task Single_pass_families_count_one_evaluation_per_sample(string family, string model, string route, string body, long expected)
    {
        (_, long evaluations) = await MeasureAsync(family, model, route, JsonNode.Parse(body)!);
        Assert.Equal(expected, evaluations);
    }

    [Fact]
    public async Task The_way_back_counts_each_graph_pass_per_input()
    {
        object[] two = [new { data = Digit }, new { data = Digit.Select(v => -v).ToArray() }];
        Assert.Equal(2, (await MeasureAsync("vae", "digits-vae", "encode", new { inputs = two, class_label = 3 })).Evaluations);
        Assert.Equal(4, (await MeasureAsync("vae", "digits-vae", "reconstruct", new { inputs = two, class_label = 3 })).Evaluations); // encoder + decoder
        Assert.Equal(2, (await MeasureAsync("flow", "digits-flow", "encode", new { inputs = two, class_label = 3 })).Evaluations);
        Assert.Equal(2, (await MeasureAsync("flow", "digits-flow", "log-likelihood", new { inputs = two, class_label = 3 })).Evaluations);

        // An end given as an input is encoded (1), then every frame decoded (3).
        var interpolation = new { from = new { input = new { data = Digit } }, to = new { seed = 2 }, frames = 3, class_label = 3 };
        Assert.Equal(4, (await MeasureAsync("vae", "digits-vae", "interpolations", interpolation)).Evaluations);
    }

    [Theory]
    [InlineData(1.0, 1)]
    [InlineData(2.5, 2)]
    public async Task A_diffusion_sample_counts_its_steps_and_guidance_doubles_them(double guidance, int rowsPerStep)
    {
        (JsonNode body, long evaluations) = await MeasureAsync("diffusion", "digits-ddpm", "samples", new { count = 3, seed = 4, steps = 6, class_label = 2, guidance_scale = guidance, output = "tensor" });
        Assert.Equal(6 * rowsPerStep, body["nfe"]!.GetValue<int>());
        Assert.Equal(3 * 6 * rowsPerStep, evaluations);
    }

    [Theory]
    [InlineData(1.0, 1)]
    [InlineData(3.0, 2)]
    public async Task A_text_to_image_sample_counts_its_unet_rows_like_its_nfe(double guidance, int rowsPerStep)
    {
        // The UNet rows only (the `nfe` field's unit): the prompt encoding and the VAE decode are not network
        // evaluations of the sampler, and a cached prompt would make them vary between equal requests.
        (JsonNode body, long evaluations) = await MeasureAsync("diffusion", "digits-txt2img", "samples",
            new { prompt = "a seven", count = 2, seed = 3, steps = 5, sampler = "ddim", guidance_scale = guidance, output = "tensor" });
        Assert.Equal(5 * rowsPerStep, body["nfe"]!.GetValue<int>());
        Assert.Equal(2 * 5 * rowsPerStep, evaluations);
    }

    [Fact]
    public async Task An_ar_sample_counts_its_generated_tokens_and_scoring_counts_its_sequences()
    {
        (JsonNode body, long evaluations) = await MeasureAsync("ar", "words-ar", "samples", new { count = 4, seed = 9, prompt = "b", max_new_tokens = 6 });
        long tokens = body["samples"]!.AsArray().Sum(s => s!["tokens"]!.AsArray().Count);
        Assert.True(tokens >= 4);
        Assert.Equal(tokens, evaluations);

        Assert.Equal(3, (await MeasureAsync("ar", "words-ar", "log-likelihood", new { sequences = new[] { "cat", "dog", "bird" } })).Evaluations);
    }
}
