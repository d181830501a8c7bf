using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Families;
using GenService.Api.Tests.Infrastructure;
using GenService.Generation;
using GenService.Generation.Ar;
using GenService.Inference;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using Microsoft.Extensions.Logging.Abstractions;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.KServe;

/// <summary>
/// A host over copies of digits-gan (class-conditional), digits-ar and digits-ddpm (with a null class), with the gan generator's batcher set to
/// batches of 4 and a queue delay of 60 s (the most a manifest allows): a batch leaves only when 4 rows are queued, so requests sent together
/// share one call, and a row that validation lets through would share it too.
/// </summary>
public sealed class BadInputHost : IAsyncLifetime
{
    public const string Gan = "digits-gan";
    public const string Ar = "digits-ar";
    public const string Ddpm = "digits-ddpm";
    public const int GanBatch = 4;

    private readonly string _root = RepositoryPaths.CopyToTemp(RepositoryPaths.RealModels, Gan, Ar, Ddpm);

    public BadInputHost()
    {
        string manifest = Path.Combine(_root, Gan, "model.json");
        JsonNode json = JsonNode.Parse(File.ReadAllText(manifest))!;
        json["batching"]!["max_batch_size"] = GanBatch;
        json["batching"]!["max_queue_delay_ms"] = 60_000;
        File.WriteAllText(manifest, json.ToJsonString());
        Factory = new GenServiceFactory(_root);
    }

    public GenServiceFactory Factory { get; }

    public ValueTask InitializeAsync() => Factory.InitializeAsync();

    public async ValueTask DisposeAsync()
    {
        await Factory.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }
}

/// <summary>
/// Bad input over HTTP and ONNX Runtime (issue 14): out-of-range class labels and token ids and non-finite numbers are
/// 400s that name the field and what is allowed (/v1 problem+json, /v2 <c>{"error"}</c>), refused before they can
/// share a batch; innocent requests sent with them all complete with the numbers they get alone; and a poison
/// sequence in a running AR iteration ends alone while the other sequences finish as they do alone.
/// </summary>
public sealed class BadInputIsolationTests(BadInputHost host) : IClassFixture<BadInputHost>
{
    private const string GanInfer = "/v2/models/digits-gan.generator/infer";
    private const string ArInfer = "/v2/models/digits-ar.decoder/infer";

    private static string GanBody(string latent, string label) =>
        $$"""{"inputs": [{"name": "latent", "shape": [1, 32], "datatype": "FP32", "data": [{{latent}}]}, {"name": "class_label", "shape": [1], "datatype": "INT64", "data": [{{label}}]}]}""";

    private static string Latent(int seed, string? at3 = null) =>
        string.Join(", ", Enumerable.Range(0, 32).Select(j => j == 3 && at3 is not null ? at3 : (((seed * 7) + j) % 11 / 10.0 - 0.5).ToString(CultureInfo.InvariantCulture)));

    private async Task<(HttpStatusCode Status, JsonNode Body)> PostAsync(HttpClient client, string url, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await client.PostAsync(url, content, Ct);
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!);
    }

    [Theory]
    [InlineData("1000000")]
    [InlineData("-1")]
    [InlineData("10")]
    public async Task A_v2_class_label_outside_conditioning_is_a_400_with_the_allowed_range(string label)
    {
        using HttpClient client = host.Factory.CreateClient();
        (HttpStatusCode status, JsonNode body) = await PostAsync(client, GanInfer, GanBody(Latent(1), label));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        string error = body["error"]!.GetValue<string>();
        Assert.Contains($"Input 'class_label' of 'digits-gan.generator' holds {label} at element 0", error, StringComparison.Ordinal);
        Assert.Contains("0..9", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(10, HttpStatusCode.OK)]
    [InlineData(11, HttpStatusCode.BadRequest)]
    [InlineData(-1, HttpStatusCode.BadRequest)]
    public async Task A_v2_class_label_may_be_the_null_class_where_the_model_has_one_and_nothing_past_it(int label, HttpStatusCode expected)
    {
        using HttpClient client = host.Factory.CreateClient();
        JsonNode meta = JsonNode.Parse(await client.GetStringAsync("/v2/models/digits-ddpm.denoiser", Ct))!;
        var inputs = new List<string>();
        foreach (JsonNode? input in meta["inputs"]!.AsArray())
        {
            string name = input!["name"]!.GetValue<string>();
            string datatype = input["datatype"]!.GetValue<string>();
            long[] shape = [.. input["shape"]!.AsArray().Select(d => Math.Max(1L, d!.GetValue<long>()))];
            long count = shape.Aggregate(1L, (a, b) => a * b);
            string value = name == "class_label" ? label.ToString(CultureInfo.InvariantCulture) : datatype.StartsWith("FP", StringComparison.Ordinal) ? "0.5" : "7";
            inputs.Add($$"""{"name": "{{name}}", "shape": [{{string.Join(", ", shape)}}], "datatype": "{{datatype}}", "data": [{{string.Join(", ", Enumerable.Repeat(value, (int)count))}}]}""");
        }

        (HttpStatusCode status, JsonNode body) = await PostAsync(client, "/v2/models/digits-ddpm.denoiser/infer", $$"""{"inputs": [{{string.Join(", ", inputs)}}]}""");

        Assert.True(status == expected, body.ToJsonString());
        if (expected == HttpStatusCode.BadRequest)
        {
            Assert.Contains("(conditioning.num_classes 10, null class 10) are whole numbers 0..10", body["error"]!.GetValue<string>(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_v2_token_id_past_the_vocabulary_is_a_400_with_the_allowed_range()
    {
        using HttpClient client = host.Factory.CreateClient();
        (HttpStatusCode status, JsonNode body) = await PostAsync(client, ArInfer,
            """{"inputs": [{"name": "input_ids", "shape": [1, 3], "datatype": "INT64", "data": [27, 5, 28]}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        string error = body["error"]!.GetValue<string>();
        Assert.Contains("holds 28 at element 2", error, StringComparison.Ordinal);
        Assert.Contains("token ids of model 'digits-ar' (tokens.vocab_size 28) are whole numbers 0..27", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1e39")]
    [InlineData("-3.5e38")]
    [InlineData("TEN_THOUSAND_DIGITS")]
    public async Task A_v2_fp32_value_that_is_not_finite_as_fp32_is_a_400_naming_the_input_and_element(string value)
    {
        using HttpClient client = host.Factory.CreateClient();
        string literal = value == "TEN_THOUSAND_DIGITS" ? "9" + new string('0', 9_999) : value;
        (HttpStatusCode status, JsonNode body) = await PostAsync(client, GanInfer, GanBody(Latent(1, at3: literal), "3"));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        string error = body["error"]!.GetValue<string>();
        Assert.Contains("'inputs[0].data' element 3 is not a finite FP32 number", error, StringComparison.Ordinal);
        Assert.True(error.Length < 400, error); // the literal is not echoed
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public async Task A_v2_binary_fp32_value_that_is_not_finite_is_a_400(float value)
    {
        using HttpClient client = host.Factory.CreateClient();
        var latent = new float[32];
        latent[5] = value;
        byte[] floats = new byte[32 * 4];
        Buffer.BlockCopy(latent, 0, floats, 0, floats.Length);
        byte[] label = BitConverter.GetBytes(2L);
        string header = """{"inputs": [{"name": "latent", "shape": [1, 32], "datatype": "FP32", "parameters": {"binary_data_size": 128}}, {"name": "class_label", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}]}""";
        byte[] head = Encoding.UTF8.GetBytes(header);
        using var content = new ByteArrayContent([.. head, .. floats, .. label]);
        content.Headers.ContentType = new("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", head.Length.ToString(CultureInfo.InvariantCulture));
        using HttpResponseMessage response = await client.PostAsync(GanInfer, content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("'inputs[0].binary_data' element 5 is not a finite FP32 number", JsonNode.Parse(text)!["error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"NaN\"")]
    [InlineData("\"-Infinity\"")]
    [InlineData("1e39")]
    [InlineData("TEN_THOUSAND_DIGITS")]
    public async Task A_v1_latent_that_is_not_finite_as_fp32_is_a_400_naming_the_element(string value)
    {
        using HttpClient client = host.Factory.CreateClient();
        string literal = value == "TEN_THOUSAND_DIGITS" ? "9" + new string('0', 9_999) : value;
        (int status, string? field, string detail, _) = await client.PostProblemAsync("/v1/gan/digits-gan/samples", $$"""{"latents": [[{{Latent(2, at3: literal)}}]], "class_label": 1}""");

        Assert.Equal(400, status);
        Assert.Equal("latents[0][3]", field);
        Assert.Contains("not a finite FP32 number", detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(10)]
    [InlineData(1000000)]
    public async Task A_v1_class_label_outside_conditioning_is_a_400(int label)
    {
        using HttpClient client = host.Factory.CreateClient();
        (int status, string? field, string detail, _) = await client.PostProblemAsync("/v1/gan/digits-gan/samples", $$"""{"count": 1, "seed": 1, "class_label": {{label}}}""");

        Assert.Equal(400, status);
        Assert.Equal("class_label", field);
        Assert.Contains("between 0 and 9", detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/ar/digits-ar/samples", """{"prompt_tokens": [0, 17], "max_new_tokens": 2}""", "prompt_tokens[1]", "0..16")]
    [InlineData("/v1/ar/digits-ar/samples", """{"prompt_tokens": [-1], "max_new_tokens": 2}""", "prompt_tokens[0]", "0..16")]
    [InlineData("/v1/ar/digits-ar/log-likelihood", """{"sequences": [[1, 2, 28]]}""", "sequences[0][2]", "0..27")]
    [InlineData("/v1/ar/digits-ar/log-likelihood", """{"sequences": [[3]], "class_label": -1}""", "class_label", "between 0 and 9")]
    public async Task A_v1_token_id_outside_the_vocabulary_is_a_400_naming_the_element(string url, string body, string field, string allowed)
    {
        using HttpClient client = host.Factory.CreateClient();
        (int status, string? at, string detail, _) = await client.PostProblemAsync(url, body);

        Assert.Equal(400, status);
        Assert.Equal(field, at);
        Assert.Contains(allowed, detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Innocent_requests_sent_with_offenders_fill_one_batch_and_get_the_numbers_they_get_alone()
    {
        using HttpClient client = host.Factory.CreateClient();
        IGraphRunner generator = host.Factory.Repository.GetReady(BadInputHost.Gan).Graph("generator")!;

        // Alone: each innocent row in a call of its own (dispatched at once, nothing else is queued).
        var alone = new float[BadInputHost.GanBatch][];
        for (int i = 0; i < alone.Length; i++)
        {
            float[] latent = [.. Latent(10 + i).Split(", ").Select(v => float.Parse(v, CultureInfo.InvariantCulture))];
            InferenceResult r = await generator.InferAsync(new InferenceRequest
            {
                Inputs = new Dictionary<string, Tensor> { ["latent"] = Tensor.FromFloats(latent, 1, 32), ["class_label"] = Labels(i, 1) },
                DispatchImmediately = true,
            }, Ct);
            alone[i] = r.Outputs["sample"].AsFloats();
        }

        // Together: offenders first, so that one let through would be first in the batch the innocents fill.
        string[] offenders = [GanBody(Latent(1), "1000000"), GanBody(Latent(1), "-1"), GanBody(Latent(1, at3: "1e39"), "2")];
        Task<(HttpStatusCode, JsonNode)>[] bad = [.. offenders.Select(b => PostAsync(client, GanInfer, b))];
        Task<(HttpStatusCode, JsonNode)>[] good = [.. Enumerable.Range(0, BadInputHost.GanBatch).Select(i => PostAsync(client, GanInfer, GanBody(Latent(10 + i), i.ToString(CultureInfo.InvariantCulture))))];

        foreach ((HttpStatusCode status, JsonNode body) in await Task.WhenAll(bad))
        {
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.False(string.IsNullOrEmpty(body["error"]!.GetValue<string>()));
        }

        (HttpStatusCode, JsonNode)[] results = await Task.WhenAll(good);
        for (int i = 0; i < results.Length; i++)
        {
            (HttpStatusCode status, JsonNode body) = results[i];
            Assert.Equal(HttpStatusCode.OK, status);
            float[] data = [.. body["outputs"]![0]!["data"]!.AsArray().Select(v => v!.GetValue<float>())];
            Assert.True(MaxAbsDiff(data, alone[i]) <= 1e-5, $"request {i}");
        }
    }

    [Fact]
    public async Task A_poison_sequence_in_a_running_ar_iteration_ends_alone_and_the_others_finish_as_they_do_alone()
    {
        ILoadedModel digits = host.Factory.Repository.GetReady(BadInputHost.Ar);
        ArJob Job(ulong seed, int label, int count, int tokens) => ArJob.Create(new ArParameters { Seed = seed, Count = count, ClassLabel = label, Temperature = 1, MaxNewTokens = tokens }, digits, 64);
        ArJob a = Job(31, 3, count: 2, tokens: 8), c = Job(33, 5, count: 1, tokens: 6), poison = Job(32, 9, count: 1, tokens: 8);
        ArIterationLoop NewLoop(ArDecoder decoder) => new(decoder, digits.Manifest.Name, digits.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);

        string[][] expected;
        using (ArIterationLoop plain = NewLoop(a.Decoder))
        {
            expected = [await TokensAsync(plain.RunAsync(a, Ct, stream: false)), await TokensAsync(plain.RunAsync(c, Ct, stream: false))];
        }

        // Class 9's start token (17 + 9) is poison to this runner: any call holding it fails, as ONNX Runtime fails a call.
        var runner = new PoisonRunner(a.Decoder.Runner, poisonToken: 26);
        var decoder = new ArDecoder(runner, a.Decoder.VocabSize);
        using ArIterationLoop loop = NewLoop(decoder);

        // A one-token primer holds the first iteration until all three are queued: they then share every call at one length.
        Task<string[]> primer = TokensAsync(loop.RunAsync(Job(30, 1, count: 1, tokens: 1) with { Decoder = decoder }, Ct, stream: false));
        await runner.WhenEntered(1);
        Task<string[]> ta = TokensAsync(loop.RunAsync(a with { Decoder = decoder }, Ct, stream: false));
        Task<string[]> tp = TokensAsync(loop.RunAsync(poison with { Decoder = decoder }, Ct, stream: false));
        Task<string[]> tc = TokensAsync(loop.RunAsync(c with { Decoder = decoder }, Ct, stream: false));
        Assert.Equal(4, loop.ActiveRequests);
        runner.Open();
        await primer;

        Assert.Equal(expected[0], await ta);
        Assert.Equal(expected[1], await tc);
        InputNotComputableException blamed = await Assert.ThrowsAsync<InputNotComputableException>(() => tp);
        Assert.Contains(PoisonRunner.Message, blamed.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", blamed.Message, StringComparison.Ordinal);
        Assert.Equal(2, runner.Poisoned); // the merged call, then the poison request's own re-run; never again
    }

    [Fact]
    public async Task When_every_request_of_an_ar_call_fails_alone_each_keeps_the_original_error_not_a_400()
    {
        ILoadedModel digits = host.Factory.Repository.GetReady(BadInputHost.Ar);
        ArJob Job(ulong seed, int label) => ArJob.Create(new ArParameters { Seed = seed, Count = 1, ClassLabel = label, Temperature = 1, MaxNewTokens = 4 }, digits, 64);
        var runner = new PoisonRunner(Job(1, 1).Decoder.Runner, poisonToken: 26);
        var decoder = new ArDecoder(runner, Job(1, 1).Decoder.VocabSize);
        using var loop = new ArIterationLoop(decoder, digits.Manifest.Name, digits.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);

        Task<string[]> primer = TokensAsync(loop.RunAsync(Job(40, 1) with { Decoder = decoder, MaxNewTokens = 1 }, Ct, stream: false));
        await runner.WhenEntered(1);
        Task<string[]>[] poisoned = [.. new ulong[] { 41, 42 }.Select(seed => TokensAsync(loop.RunAsync(Job(seed, 9) with { Decoder = decoder }, Ct, stream: false)))];
        runner.Open();
        await primer;

        foreach (Task<string[]> p in poisoned)
        {
            InvalidOperationException e = await Assert.ThrowsAsync<InvalidOperationException>(() => p);
            Assert.StartsWith(PoisonRunner.Message, e.Message, StringComparison.Ordinal);
        }

        Assert.Equal(1 + 2, runner.Poisoned); // the merged call, then one re-run per request
    }

    private static async Task<string[]> TokensAsync(IAsyncEnumerable<ArEvent> events)
    {
        await foreach (ArEvent e in events)
        {
            if (e is ArCompleted done)
            {
                return [.. done.Samples.Select(s => string.Join(",", s.Tokens))];
            }
        }

        throw new InvalidOperationException("no result");
    }

    /// <summary>The real decoder, held at a gate until <see cref="Open"/>, failing every call that holds the poison token.</summary>
    private sealed class PoisonRunner(IGraphRunner inner, long poisonToken) : WrappedRunner(inner)
    {
        public const string Message = "[ErrorCode:RuntimeException] Gather: indices element out of data bounds";
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly GenService.Testing.AwaitableCount _entered = new();
        private int _poisoned;

        public int Poisoned => Volatile.Read(ref _poisoned);

        public Task WhenEntered(int calls) => _entered.WhenReached(calls);

        public void Open() => _open.TrySetResult();

        public override async ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
        {
            _entered.Increment();
            await _open.Task.WaitAsync(cancellationToken);
            if (request.Inputs.Values.First(t => t.ElementType == TensorElementType.Int64).AsLongs().Contains(poisonToken))
            {
                Interlocked.Increment(ref _poisoned);
                throw new InvalidOperationException($"{Message}, idx={poisonToken}\n   at Microsoft.ML.OnnxRuntime.InferenceSession.Run()");
            }

            return await Inner.InferAsync(request, cancellationToken);
        }
    }
}

/// <summary>
/// A float16 graph input (the tiny fp16 text-to-image export) moves as FP32 and is cast at the session boundary: a v2
/// value beyond ±65504 would become infinity there, so it is a 400 naming the element, and a value within range runs.
/// </summary>
public sealed class Fp16InputRangeTests(TinyExportsFactory tiny) : IClassFixture<TinyExportsFactory>
{
    [Fact]
    public async Task A_v2_value_beyond_the_fp16_range_of_a_float16_input_is_a_400()
    {
        using HttpClient client = tiny.Factory.CreateClient();
        JsonNode meta = JsonNode.Parse(await client.GetStringAsync("/v2/models/fp16.vae_decoder", Ct))!;
        JsonNode input = meta["inputs"]![0]!;
        long[] shape = [.. input["shape"]!.AsArray().Select(d => d!.GetValue<long>() < 0 ? 2L : d!.GetValue<long>())];
        shape[0] = 1;
        long count = shape.Aggregate(1L, (a, b) => a * b);

        async Task<(HttpStatusCode, string)> Send(string at1)
        {
            string data = string.Join(", ", Enumerable.Range(0, (int)count).Select(i => i == 1 ? at1 : "0.25"));
            string body = $$"""{"inputs": [{"name": "{{input["name"]}}", "shape": [{{string.Join(", ", shape)}}], "datatype": "FP32", "data": [{{data}}]}]}""";
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            using HttpResponseMessage response = await client.PostAsync("/v2/models/fp16.vae_decoder/infer", content, Ct);
            return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
        }

        (HttpStatusCode status, string text) = await Send("70000");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("element 1 is not a finite FP16 number", JsonNode.Parse(text)!["error"]!.GetValue<string>(), StringComparison.Ordinal);

        (status, text) = await Send("65000");
        Assert.True(status == HttpStatusCode.OK, text);
    }
}
