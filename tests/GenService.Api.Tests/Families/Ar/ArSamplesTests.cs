using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GenService.Generation;
using GenService.Generation.Ar;
using GenService.Inference.Repository;
using SkiaSharp;

namespace GenService.Api.Tests.Families.Ar;

/// <summary>POST /v1/ar/{model}/samples and /log-likelihood against PyTorch reference numbers (ar_reference.json).</summary>
[Collection(ArModels.Name)]
public sealed class ArSamplesTests(ArFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private JsonElement Ref(string model) => fixture.Reference.GetProperty(model);

    private static int[] Ints(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetInt32())];

    private async Task<JsonElement> PostOk(string url, object body)
    {
        using HttpClient client = fixture.CreateClient();
        using HttpResponseMessage response = await client.PostAsJsonAsync(url, body, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    [Theory]
    [InlineData(ArFixture.Words)]
    [InlineData(ArFixture.Digits)]
    public void Reference_fixture_matches_the_models_under_test(string model)
    {
        Assert.True(Ref(model).GetProperty("sha256").GetString() == fixture.DecoderSha256(model),
            $"{model}/decoder.onnx changed since ar_reference.json was written: rerun /usr/bin/python3 tests/GenService.Api.Tests/Reference/ar/make_ar_reference.py");
    }

    [Fact]
    public async Task Greedy_decode_equals_pytorch_token_for_token_with_the_kv_cache()
    {
        foreach (JsonElement c in Ref(ArFixture.Words).GetProperty("greedy").EnumerateArray())
        {
            string prompt = c.GetProperty("prompt").GetString()!;
            JsonElement body = await PostOk($"/v1/ar/{ArFixture.Words}/samples", new { prompt, temperature = 0, seed = 1 });
            JsonElement sample = body.GetProperty("samples")[0];
            Assert.Equal(Ints(c.GetProperty("tokens")), Ints(sample.GetProperty("tokens")));
            Assert.Equal(c.GetProperty("finish_reason").GetString(), sample.GetProperty("finish_reason").GetString());
            Assert.Equal(c.GetProperty("text").GetString(), sample.GetProperty("text").GetString());
            Assert.Equal(c.GetProperty("tokens").GetArrayLength(), body.GetProperty("nfe").GetInt32());
        }
    }

    [Fact]
    public async Task Greedy_decode_equals_pytorch_token_for_token_by_recomputation()
    {
        foreach (JsonElement c in Ref(ArFixture.Digits).GetProperty("greedy").EnumerateArray())
        {
            int? label = c.GetProperty("class_label").ValueKind == JsonValueKind.Null ? null : c.GetProperty("class_label").GetInt32();
            int[] prompt = Ints(c.GetProperty("prompt_tokens"));
            JsonElement body = await PostOk($"/v1/ar/{ArFixture.Digits}/samples",
                new { class_label = label, prompt_tokens = prompt, temperature = 0, output = "both" });
            JsonElement sample = body.GetProperty("samples")[0];
            int[] expected = Ints(c.GetProperty("tokens"));
            Assert.Equal(expected, Ints(sample.GetProperty("tokens")));
            Assert.Equal("length", sample.GetProperty("finish_reason").GetString());

            // data = prompt pixels then generated ones, level k -> k/8 - 1 over [-1, 1].
            float[] data = [.. sample.GetProperty("data").EnumerateArray().Select(x => x.GetSingle())];
            int[] all = [.. prompt, .. expected];
            Assert.Equal(64, data.Length);
            for (int p = 0; p < 64; p++)
            {
                Assert.Equal((all[p] / 8f) - 1f, data[p], 1e-6f);
            }
        }
    }

    [Fact]
    public async Task Repetition_penalty_greedy_equals_the_hugging_face_rule()
    {
        JsonElement c = Ref(ArFixture.Words).GetProperty("greedy_repetition_penalty");
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Words}/samples",
            new { prompt = c.GetProperty("prompt").GetString(), temperature = 0, repetition_penalty = c.GetProperty("repetition_penalty").GetDouble() });
        Assert.Equal(Ints(c.GetProperty("tokens")), Ints(body.GetProperty("samples")[0].GetProperty("tokens")));
    }

    [Fact]
    public async Task Seeded_samples_equal_an_independent_numpy_philox_and_pytorch_reference()
    {
        // Temperature, top-k, top-p and repetition penalty together, KV path; token k of sample i from the k-th
        // uniform of NoiseStream(seed, i, Tokens).
        JsonElement w = Ref(ArFixture.Words).GetProperty("sampled");
        JsonElement words = await PostOk($"/v1/ar/{ArFixture.Words}/samples", new
        {
            prompt = w.GetProperty("prompt").GetString(),
            seed = w.GetProperty("seed").GetUInt64(),
            count = w.GetProperty("samples").GetArrayLength(),
            temperature = w.GetProperty("temperature").GetDouble(),
            top_k = w.GetProperty("top_k").GetInt32(),
            top_p = w.GetProperty("top_p").GetDouble(),
            repetition_penalty = w.GetProperty("repetition_penalty").GetDouble(),
        });
        AssertSamples(w.GetProperty("samples"), words.GetProperty("samples"));

        // Recompute path, pixels only (start/class tokens masked).
        JsonElement d = Ref(ArFixture.Digits).GetProperty("sampled");
        JsonElement digits = await PostOk($"/v1/ar/{ArFixture.Digits}/samples", new
        {
            class_label = d.GetProperty("class_label").GetInt32(),
            seed = d.GetProperty("seed").GetUInt64(),
            count = d.GetProperty("samples").GetArrayLength(),
            temperature = d.GetProperty("temperature").GetDouble(),
        });
        AssertSamples(d.GetProperty("samples"), digits.GetProperty("samples"));
    }

    [Fact]
    public async Task Repetition_penalty_greedy_equals_the_hugging_face_rule_by_recomputation()
    {
        JsonElement c = Ref(ArFixture.Digits).GetProperty("greedy_repetition_penalty");
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Digits}/samples", new
        {
            class_label = c.GetProperty("class_label").GetInt32(),
            temperature = 0,
            repetition_penalty = c.GetProperty("repetition_penalty").GetDouble(),
        });
        Assert.Equal(Ints(c.GetProperty("tokens")), Ints(body.GetProperty("samples")[0].GetProperty("tokens")));
    }

    private static void AssertSamples(JsonElement expected, JsonElement actual)
    {
        Assert.Equal(expected.GetArrayLength(), actual.GetArrayLength());
        for (int i = 0; i < expected.GetArrayLength(); i++)
        {
            Assert.Equal(Ints(expected[i].GetProperty("tokens")), Ints(actual[i].GetProperty("tokens")));
            Assert.Equal(expected[i].GetProperty("finish_reason").GetString(), actual[i].GetProperty("finish_reason").GetString());
        }
    }

    [Fact]
    public async Task Top_k_1_and_a_tiny_top_p_sample_the_greedy_token()
    {
        JsonElement c = Ref(ArFixture.Words).GetProperty("greedy")[1];
        int[] greedy = Ints(c.GetProperty("tokens"));
        string prompt = c.GetProperty("prompt").GetString()!;
        foreach (object body in new object[] { new { prompt, top_k = 1, seed = 5, count = 3 }, new { prompt, top_p = 1e-6, seed = 6, count = 3 } })
        {
            JsonElement result = await PostOk($"/v1/ar/{ArFixture.Words}/samples", body);
            foreach (JsonElement s in result.GetProperty("samples").EnumerateArray())
            {
                Assert.Equal(greedy, Ints(s.GetProperty("tokens")));
            }
        }
    }

    [Fact]
    public async Task Sample_i_depends_on_seed_and_index_only_not_on_count()
    {
        var request = new { prompt = "b", temperature = 1.2, top_k = 12, seed = 99, count = 4 };
        JsonElement four = await PostOk($"/v1/ar/{ArFixture.Words}/samples", request);
        JsonElement one = await PostOk($"/v1/ar/{ArFixture.Words}/samples", request with { count = 1 });
        Assert.Equal(Ints(four.GetProperty("samples")[0].GetProperty("tokens")), Ints(one.GetProperty("samples")[0].GetProperty("tokens")));
        Assert.Equal(99UL, four.GetProperty("seed").GetUInt64());

        // Four samples at temperature 1.2 are not all the same word (they would be if the rows shared a stream).
        Assert.True(four.GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("text").GetString()).Distinct().Count() > 1);
    }

    [Fact]
    public async Task Eos_ends_a_sample_and_is_the_last_token()
    {
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Words}/samples", new { seed = 3, count = 8 });
        foreach (JsonElement s in body.GetProperty("samples").EnumerateArray())
        {
            int[] tokens = Ints(s.GetProperty("tokens"));
            string reason = s.GetProperty("finish_reason").GetString()!;
            Assert.Contains(reason, new[] { "eos_token", "length" });
            Assert.Equal(reason == "eos_token", tokens[^1] == 1);
            Assert.DoesNotContain(1, tokens[..^1]);
            Assert.DoesNotContain("<", s.GetProperty("text").GetString()!, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Max_new_tokens_ends_with_length()
    {
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Words}/samples", new { prompt = "", temperature = 0, max_new_tokens = 2 });
        JsonElement s = body.GetProperty("samples")[0];
        int[] greedy = Ints(Ref(ArFixture.Words).GetProperty("greedy")[0].GetProperty("tokens"));
        Assert.Equal(greedy[..2], Ints(s.GetProperty("tokens")));
        Assert.Equal("length", s.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Stop_string_cuts_the_text_and_ends_the_sample()
    {
        // The greedy continuation of "ca" is known; stop at its third character.
        JsonElement c = Ref(ArFixture.Words).GetProperty("greedy")[1];
        string text = c.GetProperty("text").GetString()!;
        string stop = text.Substring(2, 1);
        int cut = text.IndexOf(stop, StringComparison.Ordinal);
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Words}/samples", new { prompt = "ca", temperature = 0, stop = new[] { stop, "zzzz" } });
        JsonElement s = body.GetProperty("samples")[0];
        Assert.Equal("stop_sequence", s.GetProperty("finish_reason").GetString());
        Assert.Equal(text[..cut], s.GetProperty("text").GetString());
        Assert.Equal(Ints(c.GetProperty("tokens"))[..(cut + 1)], Ints(s.GetProperty("tokens")));
    }

    [Fact]
    public async Task Tokenizer_file_model_encodes_the_prompt_like_the_vocabulary()
    {
        JsonElement c = Ref(ArFixture.Words).GetProperty("greedy")[1];
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.WordsBpe}/samples", new { prompt = c.GetProperty("prompt").GetString(), temperature = 0 });
        JsonElement s = body.GetProperty("samples")[0];
        Assert.Equal(Ints(c.GetProperty("tokens")), Ints(s.GetProperty("tokens")));
        Assert.Equal(c.GetProperty("text").GetString(), s.GetProperty("text").GetString());

        using HttpClient client = fixture.CreateClient();
        using HttpResponseMessage bad = await client.PostAsJsonAsync($"/v1/ar/{ArFixture.WordsBpe}/samples", new { prompt = "cA" }, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        JsonElement problem = await bad.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Equal("prompt", problem.GetProperty("field").GetString());
        Assert.Contains("'A'", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Image_model_returns_an_8x8_png_and_a_grid()
    {
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Digits}/samples", new { class_label = 4, count = 2, seed = 11 });
        Assert.Equal([1, 8, 8], Ints(body.GetProperty("shape")));
        Assert.Equal(64, body.GetProperty("nfe").GetInt32());
        foreach (JsonElement s in body.GetProperty("samples").EnumerateArray())
        {
            Assert.Equal(4, s.GetProperty("class_label").GetInt32());
            Assert.Equal(64, s.GetProperty("tokens").GetArrayLength());
            Assert.All(Ints(s.GetProperty("tokens")), t => Assert.InRange(t, 0, 16));
            using SKBitmap png = SKBitmap.Decode(Convert.FromBase64String(s.GetProperty("png").GetString()!));
            Assert.Equal((8, 8), (png.Width, png.Height));
        }

        using HttpClient client = fixture.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/ar/{ArFixture.Digits}/samples") { Content = JsonContent.Create(new { count = 4, seed = 1, max_new_tokens = 10 }) };
        request.Headers.Accept.ParseAdd("image/png");
        using HttpResponseMessage grid = await client.SendAsync(request, Ct);
        Assert.Equal("image/png", grid.Content.Headers.ContentType?.MediaType);
        using SKBitmap bitmap = SKBitmap.Decode(await grid.Content.ReadAsByteArrayAsync(Ct));
        Assert.Equal((17, 17), (bitmap.Width, bitmap.Height)); // 2x2 tiles of 8 px, 1 px apart

        // A partial image (10 tokens) is padded with level 0 = black.
        Assert.Equal(0, bitmap.GetPixel(7, 7).Red);
    }

    [Theory]
    [InlineData(ArFixture.Words, """{"max_new_tokens": 0}""", "max_new_tokens")]
    [InlineData(ArFixture.Words, """{"max_new_tokens": 32}""", "max_new_tokens")]
    [InlineData(ArFixture.Words, """{"prompt": "abc", "max_new_tokens": 29}""", "max_new_tokens")]
    [InlineData(ArFixture.Words, """{"top_p": 0}""", "top_p")]
    [InlineData(ArFixture.Words, """{"top_p": 1.5}""", "top_p")]
    [InlineData(ArFixture.Words, """{"top_k": -1}""", "top_k")]
    [InlineData(ArFixture.Words, """{"temperature": -0.1}""", "temperature")]
    [InlineData(ArFixture.Words, """{"repetition_penalty": 0}""", "repetition_penalty")]
    [InlineData(ArFixture.Words, """{"prompt": "ca7"}""", "prompt")]
    [InlineData(ArFixture.Words, """{"prompt": "ca", "prompt_tokens": [3]}""", "prompt")]
    [InlineData(ArFixture.Words, """{"prompt_tokens": [3, 29]}""", "prompt_tokens[1]")]
    [InlineData(ArFixture.Words, """{"prompt": "abcdefghijklmnopqrstuvwxyzabcde"}""", "prompt")]
    [InlineData(ArFixture.Words, """{"stop": ["a", "b", "c", "d", "e"]}""", "stop")]
    [InlineData(ArFixture.Words, """{"stop": [""]}""", "stop[0]")]
    [InlineData(ArFixture.Words, """{"class_label": 1}""", "class_label")]
    [InlineData(ArFixture.Words, """{"output": "png"}""", "output")]
    [InlineData(ArFixture.Words, """{"count": 0}""", "count")]
    [InlineData(ArFixture.Digits, """{"class_label": 10}""", "class_label")]
    [InlineData(ArFixture.Digits, """{"class_label": -1}""", "class_label")]
    [InlineData(ArFixture.Digits, """{"prompt": "12"}""", "prompt")]
    [InlineData(ArFixture.Digits, """{"prompt_tokens": [17]}""", "prompt_tokens[0]")]
    [InlineData(ArFixture.Digits, """{"stop": ["x"]}""", "stop")]
    [InlineData(ArFixture.Digits, """{"max_new_tokens": 65}""", "max_new_tokens")]
    public async Task Bad_parameters_are_400s_naming_the_field_and_range(string model, string json, string field)
    {
        using HttpClient client = fixture.CreateClient();
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await client.PostAsync($"/v1/ar/{model}/samples", content, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        JsonElement problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Contains($"'{field.Split('[')[0]}", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Range_messages_state_the_allowed_range()
    {
        using HttpClient client = fixture.CreateClient();
        using HttpResponseMessage r = await client.PostAsJsonAsync($"/v1/ar/{ArFixture.Words}/samples", new { prompt = "abc", max_new_tokens = 40 }, Ct);
        JsonElement problem = await r.Content.ReadFromJsonAsync<JsonElement>(Ct);
        Assert.Contains("between 1 and 28", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal); // 32 - bos - 3
        using HttpResponseMessage p = await client.PostAsJsonAsync($"/v1/ar/{ArFixture.Words}/samples", new { top_p = 2 }, Ct);
        Assert.Contains("(0, 1]", (await p.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("detail").GetString()!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wrong_family_is_a_404_naming_the_real_one()
    {
        using HttpClient client = fixture.CreateClient();
        using HttpResponseMessage r = await client.PostAsJsonAsync($"/v1/diffusion/{ArFixture.Words}/samples", new { }, Ct);
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Contains("/v1/ar/", await r.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sse_streams_token_events_then_done_per_sample()
    {
        JsonElement c = Ref(ArFixture.Words).GetProperty("greedy")[1];
        int[] greedy = Ints(c.GetProperty("tokens"));
        using HttpClient client = fixture.CreateClient();
        using HttpResponseMessage r = await client.PostAsJsonAsync($"/v1/ar/{ArFixture.Words}/samples",
            new { prompt = "ca", temperature = 0, count = 2, seed = 8, stream = true }, Ct);
        Assert.Equal("text/event-stream", r.Content.Headers.ContentType?.MediaType);
        List<(string Event, JsonElement Data)> events = ParseSse(await r.Content.ReadAsStringAsync(Ct));

        for (int sample = 0; sample < 2; sample++)
        {
            var tokens = events.Where(e => e.Event == "token" && e.Data.GetProperty("sample").GetInt32() == sample).ToList();
            Assert.Equal(greedy, tokens.Select(e => e.Data.GetProperty("token").GetProperty("id").GetInt32()));
            Assert.Equal(Enumerable.Range(0, greedy.Length), tokens.Select(e => e.Data.GetProperty("index").GetInt32()));
            Assert.All(tokens, e => Assert.True(e.Data.GetProperty("token").GetProperty("logprob").GetDouble() <= 0));
            Assert.Equal(c.GetProperty("text").GetString(), string.Concat(tokens.Select(e => e.Data.GetProperty("token").GetProperty("text").GetString())));

            int doneAt = events.FindIndex(e => e.Event == "done" && e.Data.GetProperty("sample").GetInt32() == sample);
            Assert.True(doneAt > events.IndexOf(tokens[^1]));
            JsonElement done = events[doneAt].Data;
            Assert.Equal("eos_token", done.GetProperty("finish_reason").GetString());
            Assert.Equal(greedy.Length, done.GetProperty("generated_tokens").GetInt32());
            Assert.Equal(8UL, done.GetProperty("seed").GetUInt64());
        }

        Assert.Equal(2, events.Count(e => e.Event == "done"));
        Assert.Equal("done", events[^1].Event);
    }

    [Fact]
    public async Task Sse_token_logprobs_agree_with_log_likelihood()
    {
        using HttpClient client = fixture.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/ar/{ArFixture.Words}/samples")
        {
            Content = JsonContent.Create(new { seed = 21, temperature = 0.9, max_new_tokens = 6 }),
        };
        request.Headers.Accept.ParseAdd("text/event-stream");
        using HttpResponseMessage r = await client.SendAsync(request, Ct);
        var tokens = ParseSse(await r.Content.ReadAsStringAsync(Ct)).Where(e => e.Event == "token").Select(e => e.Data.GetProperty("token")).ToList();
        int[] ids = [.. tokens.Select(t => t.GetProperty("id").GetInt32())];
        JsonElement ll = await PostOk($"/v1/ar/{ArFixture.Words}/log-likelihood", new { sequences = new[] { ids } });
        double[] expected = [.. ll.GetProperty("results")[0].GetProperty("token_log_probs").EnumerateArray().Select(x => x.GetDouble())];
        for (int j = 0; j < ids.Length; j++)
        {
            Assert.Equal(expected[j], tokens[j].GetProperty("logprob").GetDouble(), 1e-4);
        }
    }

    [Fact]
    public async Task Sse_tokens_arrive_while_generating_and_the_client_can_leave_midway()
    {
        // The stream is read incrementally and dropped after two tokens (of 64); that the server's loop then stops
        // within one token is shown with a counting runner in ArDecodingTests.Cancellation_stops_generation_within_one_token.
        using HttpClient client = fixture.CreateClient();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/ar/{ArFixture.Digits}/samples")
        {
            Content = JsonContent.Create(new { count = 1, seed = 2, stream = true }),
        };
        using HttpResponseMessage r = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        await using Stream body = await r.Content.ReadAsStreamAsync(cts.Token);
        using var reader = new StreamReader(body);
        int tokenEvents = 0;
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line == "event: token" && ++tokenEvents == 2)
            {
                break;
            }
        }

        await cts.CancelAsync();
        Assert.Equal(2, tokenEvents);

        // The server is unharmed by the dropped stream.
        JsonElement after = await PostOk($"/v1/ar/{ArFixture.Digits}/samples", new { max_new_tokens = 1, seed = 2 });
        Assert.Single(Ints(after.GetProperty("samples")[0].GetProperty("tokens")));
    }

    [Fact]
    public async Task Log_likelihood_matches_pytorch_for_text_and_ids()
    {
        JsonElement r = Ref(ArFixture.Words).GetProperty("log_likelihood");
        JsonElement body = await PostOk($"/v1/ar/{ArFixture.Words}/log-likelihood", new { sequences = r.GetProperty("sequences") });
        AssertLikelihoods(r.GetProperty("results"), body.GetProperty("results"));

        JsonElement d = Ref(ArFixture.Digits).GetProperty("log_likelihood");
        JsonElement digits = await PostOk($"/v1/ar/{ArFixture.Digits}/log-likelihood",
            new { sequences = d.GetProperty("sequences"), class_label = d.GetProperty("class_label").GetInt32() });
        AssertLikelihoods(d.GetProperty("results"), digits.GetProperty("results"));
    }

    [Theory]
    [InlineData("""{"sequences": []}""", "sequences")]
    [InlineData("""{"sequences": [[3, 40]]}""", "sequences[0][1]")]
    [InlineData("""{"sequences": [[]]}""", "sequences[0]")]
    [InlineData("""{"sequences": ["ok", "no!"]}""", "sequences[1]")]
    [InlineData("""{"sequences": [{"a": 1}]}""", "sequences[0]")]
    [InlineData("""{"sequences": ["abcdefghijklmnopqrstuvwxyzabcdef"]}""", "sequences[0]")]
    public async Task Log_likelihood_rejects_bad_sequences(string json, string field)
    {
        using HttpClient client = fixture.CreateClient();
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await client.PostAsync($"/v1/ar/{ArFixture.Words}/log-likelihood", content, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(field, (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("field").GetString());
    }

    [Fact]
    public async Task Kv_cache_path_equals_recompute_path()
    {
        ILoadedModel words = fixture.Factory.Repository.GetReady(ArFixture.Words);
        var request = new ArParameters { Count = 5, Seed = 2024, Prompt = "s", Temperature = 1.0, TopP = 0.95 };
        ArJob cached = ArJob.Create(request, words, 64);
        Assert.True(cached.Decoder.HasCache);
        ArCompleted a = await Complete(cached);
        ArCompleted b = await Complete(cached with { UseCache = false });
        Assert.Equal(a.DecoderCalls, b.DecoderCalls);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(b.Samples[i].Tokens, a.Samples[i].Tokens);
            Assert.Equal(b.Samples[i].FinishReason, a.Samples[i].FinishReason);
            for (int j = 0; j < a.Samples[i].LogProbs.Length; j++)
            {
                Assert.Equal(b.Samples[i].LogProbs[j], a.Samples[i].LogProbs[j], 1e-4);
            }
        }

        // Rows finish at different times, so the cache was sliced along the way.
        Assert.True(a.Samples.Select(s => s.Tokens.Length).Distinct().Count() > 1);
    }

    private static async Task<ArCompleted> Complete(ArJob job)
    {
        await foreach (ArEvent e in new ArRequestLoop(GenerationTelemetry.None).RunAsync(job, stream: true, Ct))
        {
            if (e is ArCompleted done)
            {
                return done;
            }
        }

        throw new InvalidOperationException("no result");
    }

    private static void AssertLikelihoods(JsonElement expected, JsonElement actual)
    {
        Assert.Equal(expected.GetArrayLength(), actual.GetArrayLength());
        for (int i = 0; i < expected.GetArrayLength(); i++)
        {
            double[] want = [.. expected[i].GetProperty("token_log_probs").EnumerateArray().Select(x => x.GetDouble())];
            double[] got = [.. actual[i].GetProperty("token_log_probs").EnumerateArray().Select(x => x.GetDouble())];
            Assert.Equal(want.Length, got.Length);
            for (int j = 0; j < want.Length; j++)
            {
                Assert.Equal(want[j], got[j], 1e-4);
            }

            Assert.Equal(expected[i].GetProperty("log_prob").GetDouble(), actual[i].GetProperty("log_prob").GetDouble(), 1e-4 * want.Length);
            Assert.Equal(Ints(expected[i].GetProperty("tokens")), Ints(actual[i].GetProperty("tokens")));
        }
    }

    private static List<(string Event, JsonElement Data)> ParseSse(string text)
    {
        var events = new List<(string, JsonElement)>();
        string? name = null;
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..].Trim();
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((name ?? "message", JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone()));
                name = null;
            }
        }

        return events;
    }
}
