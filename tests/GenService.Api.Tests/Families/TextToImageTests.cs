using System.Net;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using GenService.Generation.TextToImage;
using Microsoft.Extensions.DependencyInjection;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

/// <summary>The tiny export folders of tests/GenService.Generation.Tests/TestModels/txt2img, served as they come.</summary>
public sealed class TinyExportsFactory : IAsyncLifetime
{
    public static string Folder => Path.Combine(RepositoryPaths.Root, "tests", "GenService.Generation.Tests", "TestModels", "txt2img");

    public GenServiceFactory Factory { get; } = new(Folder);

    /// <summary>The folder's reference.json (make_tiny_txt2img.py: torch networks, float64 DDIM).</summary>
    public JsonNode Reference { get; } = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "reference.json")))!;

    public ValueTask InitializeAsync() => Factory.InitializeAsync();

    public ValueTask DisposeAsync() => Factory.DisposeAsync();
}

/// <summary>
/// Export folders served without a model.json: every exporter I/O variant gives the torch reference's image, broken
/// folders are not ready with a reason naming the file, and the pipeline's request fields and their 400s.
/// </summary>
public sealed class TextToImageTests(TinyExportsFactory tiny) : IClassFixture<TinyExportsFactory>
{
    private static readonly string[] Variants =
        ["base", "int64-ids", "timestep-int64", "timestep-batch", "fp16", "latent-sample", "no-vae-encoder", "external-data", "tokenizer-json", "scheduler-ddim"];

    public static TheoryData<string> VariantNames => [.. Variants];

    private JsonNode Request(string name) => tiny.Reference["requests"]!.AsArray().First(r => r!["name"]!.GetValue<string>() == name)!;

    /// <summary>The body that replays a reference request: its prompts, guidance, size and explicit latents, DDIM eta 0.</summary>
    private object Body(JsonNode r, string? sampler = "ddim") => new
    {
        prompt = r["prompt"]!.GetValue<string>(),
        negative_prompt = r["negative_prompt"]?.GetValue<string>(),
        guidance_scale = r["guidance_scale"]!.GetValue<double>(),
        height = r["height"]!.GetValue<int>(),
        width = r["width"]!.GetValue<int>(),
        steps = r["steps_count"]!.GetValue<int>(),
        sampler,
        latents = new[] { Floats(r["latents"]!["data"]!) },
        output = "tensor",
    };

    private static float[] Floats(JsonNode array) => [.. array.AsArray().Select(v => v!.GetValue<float>())];

    /// <summary>The service clamps decoded images to [-1, 1]; the reference is the raw decoder output.</summary>
    private static float[] Clamped(float[] x) => [.. x.Select(v => Math.Clamp(v, -1f, 1f))];

    [Theory]
    [MemberData(nameof(VariantNames))]
    public async Task Every_exporter_variant_gives_the_reference_image(string variant)
    {
        JsonNode v = tiny.Reference["variants"]![variant]!;
        JsonNode r = Request(v["request"]!.GetValue<string>());
        using HttpClient client = tiny.Factory.CreateClient();
        JsonNode response = await client.PostOkAsync($"/v1/diffusion/{variant}/samples", Body(r));

        float[] expected = Clamped(Floats(v["image"]!["data"]!));
        float[] actual = response["samples"]![0]!.Data();
        Assert.Equal([3, r["height"]!.GetValue<int>(), r["width"]!.GetValue<int>()], response["shape"]!.AsArray().Select(d => d!.GetValue<int>()));
        double tolerance = v["tolerance_max_abs"]!.GetValue<double>();
        Assert.True(MaxAbsDiff(expected, actual) <= Math.Max(tolerance, 1e-4), $"{variant}: max |diff| {MaxAbsDiff(expected, actual)} > {tolerance}");
        Assert.Equal(2 * r["steps_count"]!.GetValue<int>(), response["nfe"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("guided-empty-negative-8x8")]
    [InlineData("guided-negative-8x12")]
    [InlineData("unguided-8x12")]
    public async Task Reference_requests_on_the_current_optimum_layout(string name)
    {
        JsonNode r = Request(name);
        using HttpClient client = tiny.Factory.CreateClient();
        JsonNode response = await client.PostOkAsync("/v1/diffusion/base/samples", Body(r));
        float[] expected = Clamped(Floats(r["image"]!["data"]!));
        Assert.True(MaxAbsDiff(expected, response["samples"]![0]!.Data()) <= 1e-4, $"{name}: max |diff| {MaxAbsDiff(expected, response["samples"]![0]!.Data())}");
        bool guided = r["guidance_scale"]!.GetValue<double>() > 1;
        Assert.Equal((guided ? 2 : 1) * r["steps_count"]!.GetValue<int>(), response["nfe"]!.GetValue<int>());
    }

    [Fact]
    public async Task Model_detail_shows_what_was_derived_from_the_folder()
    {
        using HttpClient client = tiny.Factory.CreateClient();
        JsonNode m = JsonNode.Parse(await client.GetStringAsync("/v1/models/base", Ct))!;
        Assert.True(m["ready"]!.GetValue<bool>(), m.ToJsonString());
        Assert.Equal("diffusion", m["family"]!.GetValue<string>());
        JsonNode p = m["pipeline"]!;
        Assert.Equal("PNDMScheduler", p["scheduler_class"]!.GetValue<string>());
        Assert.Equal("pndm", p["default_sampler"]!.GetValue<string>());
        Assert.Equal(7.5, p["default_guidance_scale"]!.GetValue<double>());
        Assert.Equal(0.5, p["scaling_factor"]!.GetValue<double>());
        Assert.Equal(2, p["vae_scale_factor"]!.GetValue<int>());
        Assert.Equal(8, p["max_tokens"]!.GetValue<int>());
        Assert.True(p["image_to_image"]!.GetValue<bool>());
        Assert.Equal("unet/model.onnx", p["parts"]!["denoiser"]!["file"]!.GetValue<string>());
        Assert.True(p["parts"]!["denoiser"]!["bytes"]!.GetValue<long>() > 0);
        Assert.DoesNotContain(m["endpoints"]!.AsArray(), e => e!.GetValue<string>().EndsWith("/interpolations", StringComparison.Ordinal));

        JsonNode ddim = JsonNode.Parse(await client.GetStringAsync("/v1/models/scheduler-ddim", Ct))!;
        Assert.Equal("ddim", ddim["pipeline"]!["default_sampler"]!.GetValue<string>());
        JsonNode old = JsonNode.Parse(await client.GetStringAsync("/v1/models/timestep-batch", Ct))!;
        Assert.Equal(0.18215, old["pipeline"]!["scaling_factor"]!.GetValue<double>());
        JsonNode noEncoder = JsonNode.Parse(await client.GetStringAsync("/v1/models/no-vae-encoder", Ct))!;
        Assert.False(noEncoder["pipeline"]!["image_to_image"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("broken-unet-missing")]
    [InlineData("broken-model-index-not-json")]
    [InlineData("broken-unet-no-encoder-hidden-states")]
    [InlineData("broken-unknown-beta-schedule")]
    [InlineData("broken-no-tokenizer-vocab")]
    [InlineData("broken-cross-attention-width")]
    public async Task A_folder_that_cannot_be_served_is_not_ready_and_says_which_file_and_field(string name)
    {
        string[] expected = File.ReadAllLines(Path.Combine(TinyExportsFactory.Folder, name, "expected_error.txt"));
        using HttpClient client = tiny.Factory.CreateClient();
        JsonNode m = JsonNode.Parse(await client.GetStringAsync($"/v1/models/{name}", Ct))!;
        Assert.False(m["ready"]!.GetValue<bool>());
        string error = m["error"]!.GetValue<string>();
        foreach (string line in expected.Where(l => l.Contains(':', StringComparison.Ordinal)))
        {
            string value = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            Assert.True(error.Contains(value, StringComparison.Ordinal), $"'{error}' does not name '{value}'");
        }

        // One broken folder never touches the others, nor the service's readiness.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v2/health/ready", Ct)).StatusCode);
    }

    [Fact]
    public async Task The_same_sample_alone_and_in_a_crowd_of_other_prompts_sizes_steps_and_samplers()
    {
        // The base UNet takes ONE scalar timestep per call: rows at other timesteps or sizes must get calls of their own.
        using HttpClient client = tiny.Factory.CreateClient();
        object[] bodies =
        [
            new { prompt = "a red cat", negative_prompt = "the cat", guidance_scale = 3.0, height = 8, width = 8, steps = 5, sampler = "ddim", seed = 1, output = "tensor" },
            new { prompt = "a blue dog", guidance_scale = 1.0, height = 8, width = 12, steps = 3, sampler = "euler", seed = 2, count = 2, output = "tensor" },
            new { prompt = "a dog on a cat", guidance_scale = 5.0, height = 12, width = 8, steps = 4, sampler = "pndm", seed = 3, output = "tensor" },
            new { prompt = "red", guidance_scale = 2.0, height = 8, width = 8, steps = 6, sampler = "dpm_solver_pp", seed = 4, output = "tensor" },
            new { prompt = "blue cat", guidance_scale = 7.5, height = 8, width = 8, steps = 3, sampler = "ddpm", seed = 5, output = "tensor" },
            new { prompt = "a red dog", height = 8, width = 8, steps = 4, sampler = "euler_ancestral", seed = 6, output = "tensor" },
        ];
        var alone = new List<float[][]>();
        foreach (object body in bodies)
        {
            alone.Add((await client.PostOkAsync("/v1/diffusion/base/samples", body)).AllData());
        }

        JsonNode[] crowd = await Task.WhenAll(bodies.Concat(bodies).Select(b => client.PostOkAsync("/v1/diffusion/base/samples", b)));
        for (int k = 0; k < crowd.Length; k++)
        {
            float[][] got = crowd[k].AllData();
            float[][] want = alone[k % bodies.Length];
            Assert.Equal(want.Length, got.Length);
            for (int i = 0; i < want.Length; i++)
            {
                Assert.True(MaxAbsDiff(want[i], got[i]) <= 1e-3, $"request {k % bodies.Length} sample {i}: {MaxAbsDiff(want[i], got[i])}");
            }
        }
    }

    [Fact]
    public async Task A_repeated_prompt_is_served_from_the_prompt_cache()
    {
        using HttpClient client = tiny.Factory.CreateClient();
        TextToImagePipeline pipeline = tiny.Factory.Services.GetRequiredService<TextToImagePipeline>();
        object body = new { prompt = "the red dog on the blue cat", negative_prompt = "a cat", steps = 2, height = 8, width = 8, seed = 9, output = "tensor" };
        float[] first = (await client.PostOkAsync("/v1/diffusion/int64-ids/samples", body)).AllData()[0];
        int cached = pipeline.CachedPrompts;
        float[] second = (await client.PostOkAsync("/v1/diffusion/int64-ids/samples", body)).AllData()[0];
        Assert.Equal(cached, pipeline.CachedPrompts);
        Assert.Equal(first, second);

        string metrics = await client.GetStringAsync("/metrics", Ct);
        Assert.Contains("genservice_prompt_cache_hits_total{model=\"int64-ids\"}", metrics, StringComparison.Ordinal);
        Assert.Contains("genservice_prompt_cache_misses_total{model=\"int64-ids\"}", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Image_to_image_starts_from_the_init_through_the_vae_encoder()
    {
        using HttpClient client = tiny.Factory.CreateClient();
        float[] init = Floats(tiny.Reference["vae_encoder"]!["sample"]!["data"]!);
        object Body(double strength) => new { prompt = "a red cat", init = new { data = init }, strength, steps = 4, sampler = "ddim", height = 8, width = 12, seed = 3, count = 2, output = "tensor" };
        JsonNode r = await client.PostOkAsync("/v1/diffusion/base/samples", Body(0.5));
        float[][] samples = r.AllData();
        Assert.Equal(2 * 2, r["nfe"]!.GetValue<int>()); // strength 0.5 of 4 steps runs 2, guided
        Assert.NotEqual(samples[0], samples[1]); // each sample draws its own latent and noise
        Assert.Equal(samples, (await client.PostOkAsync("/v1/diffusion/base/samples", Body(0.5))).AllData());

        // The older encoder output (latent_sample) works too; a folder without an encoder says why it cannot.
        await client.PostOkAsync("/v1/diffusion/latent-sample/samples", Body(0.75));
        (int status, string? field, string detail, _) = await client.PostProblemAsync("/v1/diffusion/no-vae-encoder/samples",
            System.Text.Json.JsonSerializer.Serialize(Body(0.5)));
        Assert.Equal(400, status);
        Assert.Equal("init", field);
        Assert.Contains("vae_encoder", detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"prompt": "a cat", "height": 10}""", "height")]
    [InlineData("""{"prompt": "a cat", "width": 0}""", "width")]
    [InlineData("""{"prompt": "a cat", "height": 4096, "width": 4096}""", "height")]
    [InlineData("""{"prompt": "a cat", "class_label": 1}""", "class_label")]
    [InlineData("""{"prompt": "a cat", "return_intermediates": 2}""", "return_intermediates")]
    [InlineData("""{"prompt": "a cat", "guidance_scale": 60}""", "guidance_scale")]
    [InlineData("""{"prompt": "a cat", "sampler": "lms"}""", "sampler")]
    [InlineData("""{"prompt": "a cat", "latents": [[1, 2, 3]]}""", "latents[0]")]
    [InlineData("""{"prompt": "a cat", "strength": 0.5}""", "strength")]
    [InlineData("""{"prompt": 7}""", "prompt")]
    public async Task Bad_text_to_image_requests_are_400s_naming_the_field(string body, string field)
    {
        using HttpClient client = tiny.Factory.CreateClient();
        (int status, string? got, string detail, _) = await client.PostProblemAsync("/v1/diffusion/base/samples", body);
        Assert.Equal(400, status);
        Assert.True(got == field || detail.Contains(field, StringComparison.Ordinal), $"{body}: field {got}, detail {detail}");
    }

    [Fact]
    public async Task A_long_prompt_is_truncated_and_streams_progress_per_step()
    {
        using HttpClient client = tiny.Factory.CreateClient();
        string prompt = string.Join(' ', Enumerable.Repeat("a red cat on a blue dog", 10));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/diffusion/base/samples")
        {
            Content = JsonContent(new { prompt, steps = 3, height = 8, width = 8, stream = true }),
        };
        HttpResponseMessage response = await client.SendAsync(request, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        // pndm (the folder's scheduler) with 3 steps evaluates N + 1 = 4 times: 4 progress events, then the result.
        Assert.Equal(4, text.Split("event: progress").Length - 1);
        Assert.Contains("event: result", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_scalar_timestep_unet_is_a_kserve_v2_model_whose_timestep_has_shape_empty()
    {
        using HttpClient client = tiny.Factory.CreateClient();
        JsonNode meta = JsonNode.Parse(await client.GetStringAsync("/v2/models/base.denoiser", Ct))!;
        Assert.Empty(meta["inputs"]!.AsArray().First(i => i!["name"]!.GetValue<string>() == "timestep")!["shape"]!.AsArray());

        object Body(long[] timestepShape) => new
        {
            inputs = new object[]
            {
                new { name = "sample", shape = new[] { 2, 4, 2, 2 }, datatype = "FP32", data = new float[32] },
                new { name = "timestep", shape = timestepShape, datatype = "FP32", data = new[] { 500f } },
                new { name = "encoder_hidden_states", shape = new[] { 2, 8, 16 }, datatype = "FP32", data = new float[256] },
            },
        };
        HttpResponseMessage ok = await client.PostAsync("/v2/models/base.denoiser/infer", JsonContent(Body([])), Ct);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        JsonNode output = JsonNode.Parse(await ok.Content.ReadAsStringAsync(Ct))!["outputs"]![0]!;
        Assert.Equal([2, 4, 2, 2], output["shape"]!.AsArray().Select(d => d!.GetValue<int>()));

        HttpResponseMessage bad = await client.PostAsync("/v2/models/base.denoiser/infer", JsonContent(Body([1])), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("one value for the whole call", await bad.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    private static StringContent JsonContent(object body)
        => new(System.Text.Json.JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
