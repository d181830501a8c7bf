using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using GenService.Generation;
using GenService.Inference.Manifest;
using GenService.Inference.Tensors;
using GenService.Sampling.Diffusion;
using GenService.Sampling.Random;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

[Collection(RealModels.Name)]
public sealed class DiffusionEndpointTests(GenServiceFactory factory)
{
    private const string Url = "/v1/diffusion/digits-ddpm/samples";

    [Theory]
    [InlineData("ddim", "leading")]
    [InlineData("ddpm", "trailing")]
    [InlineData("dpm_solver_pp", "linspace")]
    [InlineData("euler", "leading")]
    [InlineData("euler_ancestral", "trailing")]
    [InlineData("pndm", "linspace")]
    public async Task Served_samples_equal_the_sampler_library_driving_the_denoiser_directly(string sampler, string spacing)
    {
        using HttpClient client = factory.CreateClient();
        const int steps = 6;
        const ulong seed = 31;
        JsonNode r = await client.PostOkAsync(Url, new { count = 2, seed, class_label = 5, steps, sampler, timestep_spacing = spacing, output = "tensor" });
        // pndm on digits-ddpm (no skip_prk_steps in its scheduler: diffusers' default false) runs 12 Runge-Kutta
        // evaluations over the 4 noisiest timesteps, then PLMS over the other N - 3: N + 9.
        Assert.Equal(sampler == "pndm" ? steps + 9 : steps, r["nfe"]!.GetValue<int>());

        // The same loop, written out here from the library and the graph: x_T = eps * init_sigma, then steps.
        ModelManifest manifest = factory.Repository.GetReady("digits-ddpm").Manifest;
        IDiffusionSampler s = DiffusionSamplers.Create(manifest.Scheduler!, new SamplerSettings(WireChoices.Sampler.Parse(sampler)!.Value, steps, WireChoices.Spacing.Parse(spacing)));
        const int i = 1;
        var x = new float[64];
        new NoiseStream(seed, i, NoiseStreamIds.Latent).FillNormal(x);
        for (int j = 0; j < 64; j++)
        {
            x[j] *= (float)s.InitNoiseSigma;
        }

        var stepNoise = new NoiseStream(seed, i, NoiseStreamIds.DiffusionStepNoise);
        ISamplerState state = s.CreateState(64);
        var input = new float[64];
        var noise = new float[64];
        for (int k = 0; k < s.Timesteps.Count; k++)
        {
            s.ScaleModelInput(x, k, input);
            float[] eps = await RunGraphAsync(factory, "digits-ddpm", "denoiser", "prediction",
                ("sample", Tensor.FromFloats((float[])input.Clone(), 1, 1, 8, 8)),
                ("timestep", Tensor.FromLongs([(long)Math.Round(s.Timesteps[k])], 1)),
                ("class_label", Labels(5, 1)));
            if (s.NeedsNoise(k))
            {
                stepNoise.FillNormal(noise);
            }
            else
            {
                Array.Clear(noise);
            }

            s.Step(state, eps, k, x, noise, new float[64]);
        }

        Assert.True(MaxAbsDiff(r.AllData()[i], x) <= 1e-4);
    }

    [Fact]
    public async Task Sample_i_is_the_same_alone_or_in_a_crowd()
    {
        using HttpClient client = factory.CreateClient();
        var body = new { count = 3, seed = 77, class_label = 2, steps = 8, sampler = "euler_ancestral", output = "tensor" };
        Task<JsonNode>[] crowd = [.. Enumerable.Range(0, 6).Select(_ => client.PostOkAsync(Url, body))];
        JsonNode alone = await client.PostOkAsync(Url, new { count = 1, seed = 77, class_label = 2, steps = 8, sampler = "euler_ancestral", output = "tensor" });
        foreach (JsonNode r in await Task.WhenAll(crowd))
        {
            Assert.True(MaxAbsDiff(r.AllData()[0], alone.AllData()[0]) <= 1e-3);
        }
    }

    [Fact]
    public async Task Guidance_doubles_the_network_evaluations_and_changes_the_sample()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode plain = await client.PostOkAsync(Url, new { seed = 4, class_label = 9, steps = 5, output = "tensor" });
        JsonNode guided = await client.PostOkAsync(Url, new { seed = 4, class_label = 9, steps = 5, guidance_scale = 3.0, output = "tensor" });
        Assert.Equal(5, plain["nfe"]!.GetValue<int>());
        Assert.Equal(10, guided["nfe"]!.GetValue<int>());
        Assert.True(MaxAbsDiff(plain.AllData()[0], guided.AllData()[0]) > 1e-3);
    }

    [Fact]
    public async Task Img2img_with_low_strength_stays_near_the_init()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode r = await client.PostOkAsync(Url, new { count = 4, seed = 1, class_label = 3, steps = 50, init = new { data = Digit }, strength = 0.1, output = "tensor" });
        Assert.Equal(5, r["nfe"]!.GetValue<int>()); // 10% of 50 steps
        JsonNode fresh = await client.PostOkAsync(Url, new { count = 4, seed = 1, class_label = 3, steps = 50, output = "tensor" });
        double Mse(float[][] xs) => xs.Average(x => x.Zip(Digit, (a, b) => (a - b) * (a - b)).Average());
        double edited = Mse(r.AllData()), unrelated = Mse(fresh.AllData());
        Assert.True(edited < 0.5 * unrelated, $"img2img mse {edited} vs fresh samples {unrelated}");
    }

    [Fact]
    public async Task Return_intermediates_gives_k_snapshots_ending_at_the_sample()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode r = await client.PostOkAsync(Url, new { seed = 2, class_label = 0, steps = 10, return_intermediates = 3, output = "both" });
        JsonArray snaps = r["samples"]![0]!["intermediates"]!.AsArray();
        Assert.Equal(3, snaps.Count);
        Assert.Equal(9, snaps[2]!["step"]!.GetValue<int>());
        float[] last = snaps[2]!["sample"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        Assert.True(MaxAbsDiff(last, r.AllData()[0]) <= 1e-6);
        Assert.NotNull(snaps[0]!["predicted_original_png"]);
    }

    [Fact]
    public async Task Stream_sends_one_progress_event_per_step_then_the_result()
    {
        using HttpClient client = factory.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, Url) { Content = JsonContent.Create(new { seed = 3, class_label = 1, steps = 4 }) };
        request.Headers.Accept.ParseAdd("text/event-stream");
        HttpResponseMessage response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        string text = await response.Content.ReadAsStringAsync(Ct);
        string[] events = [.. text.Split('\n').Where(l => l.StartsWith("event:", StringComparison.Ordinal)).Select(l => l[6..].Trim())];
        Assert.Equal(["progress", "progress", "progress", "progress", "result"], events);
        string resultData = text.Split('\n').Last(l => l.StartsWith("data:", StringComparison.Ordinal))[5..];
        JsonNode result = JsonNode.Parse(resultData)!;
        Assert.Equal(4, result["nfe"]!.GetValue<int>());
        Assert.NotNull(result["samples"]![0]!["png"]);
    }

    [Fact]
    public async Task Interpolation_frames_are_ddim_samples_of_the_slerped_noise()
    {
        using HttpClient client = factory.CreateClient();
        JsonNode frames = await client.PostOkAsync("/v1/diffusion/digits-ddpm/interpolations",
            new { from = new { seed = 10 }, to = new { seed = 11 }, frames = 3, class_label = 4, steps = 5, output = "tensor" });
        JsonNode start = await client.PostOkAsync(Url, new { seed = 10, class_label = 4, steps = 5, sampler = "ddim", output = "tensor" });
        Assert.True(MaxAbsDiff(frames.AllData()[0], start.AllData()[0]) <= 1e-4);
    }

    [Theory]
    [InlineData("""{"steps": 0}""", "steps")]
    [InlineData("""{"steps": 1001}""", "steps")]
    [InlineData("""{"sampler": "heun"}""", "sampler")]
    [InlineData("""{"sampler": "euler", "eta": 0.5}""", "eta")]
    [InlineData("""{"eta": 1.5}""", "eta")]
    [InlineData("""{"timestep_spacing": "cosine"}""", "timestep_spacing")]
    [InlineData("""{"guidance_scale": 3}""", "guidance_scale")]
    [InlineData("""{"guidance_scale": -1, "class_label": 1}""", "guidance_scale")]
    [InlineData("""{"strength": 0.5}""", "strength")]
    [InlineData("""{"init": {"data": [0]}, "class_label": 1}""", "init.data")]
    [InlineData("""{"init": {"data": [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}, "strength": 1.5}""", "strength")]
    [InlineData("""{"return_intermediates": 51}""", "return_intermediates")]
    [InlineData("""{"class_label": 10}""", "class_label")]
    public async Task Bad_input_is_a_400_naming_the_field(string body, string field)
    {
        using HttpClient client = factory.CreateClient();
        (int status, string? f, _, _) = await client.PostProblemAsync(Url, body);
        Assert.Equal(400, status);
        Assert.Equal(field, f);
    }
}
