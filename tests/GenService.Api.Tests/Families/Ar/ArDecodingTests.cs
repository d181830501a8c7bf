using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GenService.Generation;
using GenService.Generation.Ar;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;

namespace GenService.Api.Tests.Families.Ar;

/// <summary>Sampling filters, cancellation and the decoder wrapper, on the real words-ar/digits-ar graphs.</summary>
[Collection(ArModels.Name)]
public sealed class ArDecodingTests(ArFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Logits of the token after [bos, "s"], straight from the decoder.</summary>
    private async Task<float[]> NextLogitsAsync()
    {
        ILoadedModel words = fixture.Factory.Repository.GetReady(ArFixture.Words);
        var decoder = new ArDecoder(words.Graph("decoder")!, words.Manifest.Tokens!.VocabSize);
        (float[] logits, _, _) = await decoder.RunAsync([0, 21], 1, 2, null, wantPresent: false, Ct);
        return logits[decoder.VocabSize..];
    }

    /// <summary>512 first tokens after "s": 8 requests of 64 samples, different seeds.</summary>
    private async Task<List<int>> FirstTokensAsync(object filters)
    {
        using HttpClient client = fixture.CreateClient();
        var drawn = new List<int>();
        for (ulong seed = 1; seed <= 8; seed++)
        {
            JsonElement body = JsonSerializer.SerializeToElement(filters);
            var request = new Dictionary<string, object?> { ["prompt"] = "s", ["count"] = 64, ["seed"] = seed, ["max_new_tokens"] = 1 };
            foreach (JsonProperty p in body.EnumerateObject())
            {
                request[p.Name] = p.Value;
            }

            using HttpResponseMessage r = await client.PostAsJsonAsync($"/v1/ar/{ArFixture.Words}/samples", request, Ct);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            JsonElement json = await r.Content.ReadFromJsonAsync<JsonElement>(Ct);
            drawn.AddRange(json.GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("tokens")[0].GetInt32()));
        }

        return drawn;
    }

    [Fact]
    public async Task Top_k_samples_only_the_k_most_likely_tokens()
    {
        float[] logits = await NextLogitsAsync();
        HashSet<int> allowed = [.. Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).Take(3)];
        List<int> drawn = await FirstTokensAsync(new { top_k = 3, temperature = 2.0 });
        Assert.All(drawn, t => Assert.Contains(t, allowed));
        Assert.Equal(3, drawn.Distinct().Count()); // at temperature 2 all three turn up in 512 draws
    }

    [Fact]
    public async Task Top_p_samples_only_the_nucleus()
    {
        float[] logits = await NextLogitsAsync();
        double max = logits.Max();
        double[] p = [.. logits.Select(l => Math.Exp(l - max))];
        double total = p.Sum();
        var allowed = new HashSet<int>();
        double mass = 0;
        foreach (int i in Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]))
        {
            allowed.Add(i);
            mass += p[i] / total;
            if (mass >= 0.6)
            {
                break;
            }
        }

        List<int> drawn = await FirstTokensAsync(new { top_p = 0.6 });
        Assert.All(drawn, t => Assert.Contains(t, allowed));
        Assert.True(allowed.Count == 1 || drawn.Distinct().Count() > 1, "the nucleus has several tokens but only one was drawn");

        // Without filters the draws leave the nucleus (so the check above could fail).
        List<int> free = await FirstTokensAsync(new { temperature = 1.5 });
        Assert.Contains(free, t => !allowed.Contains(t));
    }

    [Fact]
    public async Task Cancellation_stops_generation_within_one_token()
    {
        ILoadedModel digits = fixture.Factory.Repository.GetReady(ArFixture.Digits);
        ArJob job = ArJob.Create(new ArParameters { Seed = 4, Count = 2 }, digits, 64);
        var counting = new CountingRunner(job.Decoder.Runner);
        job = job with { Decoder = new ArDecoder(counting, job.Decoder.VocabSize) };
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        int tokens = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (ArEvent e in new ArRequestLoop(GenerationTelemetry.None).RunAsync(job, stream: true, cts.Token))
            {
                if (e is ArTokenGenerated && ++tokens == 2)
                {
                    await cts.CancelAsync(); // after the first step's two rows
                }
            }
        });
        Assert.Equal(1, counting.Calls);
    }

    [Fact]
    public async Task Unconditional_image_sampling_starts_from_bos_and_reports_no_class()
    {
        using HttpClient client = fixture.CreateClient();
        JsonElement body = await (await client.PostAsJsonAsync($"/v1/ar/{ArFixture.Digits}/samples", new { seed = 5, max_new_tokens = 3, output = "tensor" }, Ct)).Content.ReadFromJsonAsync<JsonElement>(Ct);
        JsonElement s = body.GetProperty("samples")[0];
        Assert.False(s.TryGetProperty("class_label", out _));
        Assert.False(s.TryGetProperty("png", out _));
        Assert.Equal(64, s.GetProperty("data").GetArrayLength());
        Assert.Equal(-1f, s.GetProperty("data")[63].GetSingle()); // padded with level 0
    }

    private sealed class CountingRunner(IGraphRunner inner) : WrappedRunner(inner)
    {
        private int _calls;

        public int Calls => _calls;

        public override ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            return Inner.InferAsync(request, cancellationToken);
        }
    }
}
