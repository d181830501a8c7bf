using GenService.Sampling.Autoregressive;
using GenService.Sampling.Random;

namespace GenService.Sampling.Tests;

public sealed class LogitsProcessorTests
{
    private static readonly float[] Logits = [1.5f, -0.5f, 3.0f, 0.2f, 3.0f, -2.0f, 0.9f, 2.2f];

    private static double[] Softmax(IReadOnlyList<float> logits)
    {
        var max = logits.Max();
        var e = logits.Select(l => Math.Exp(l - max)).ToArray();
        var z = e.Sum();
        return e.Select(v => v / z).ToArray();
    }

    [Fact]
    public void Greedy_is_argmax_with_lowest_id_on_ties()
    {
        var p = new LogitsProcessor(new LogitsSettings { Temperature = 0 }, Logits.Length);
        var choice = p.Choose(Logits, [], 0.99f);
        Assert.Equal(2, choice.TokenId); // ids 2 and 4 tie at 3.0
        Assert.Equal(Math.Log(Softmax(Logits)[2]), choice.LogProb, 1e-6);
        Assert.Equal(0, choice.ProcessedLogProb);
    }

    [Fact]
    public void Repetition_penalty_matches_hand_values()
    {
        var logits = (float[])Logits.Clone();
        LogitsProcessor.ApplyRepetitionPenalty(logits, [2, 1, 2, 5], 2.0);
        // seen once each: 2 (3.0 > 0 -> 1.5), 1 (-0.5 -> -1.0), 5 (-2.0 -> -4.0); the repeat of 2 is not applied twice
        Assert.Equal([1.5f, -1.0f, 1.5f, 0.2f, 3.0f, -4.0f, 0.9f, 2.2f], logits);
        var greedy = new LogitsProcessor(new LogitsSettings { Temperature = 0, RepetitionPenalty = 2.0 }, Logits.Length);
        Assert.Equal(4, greedy.Choose(Logits, [2], 0f).TokenId);
    }

    [Fact]
    public void Top_k_only_samples_the_k_largest()
    {
        var p = new LogitsProcessor(new LogitsSettings { TopK = 3 }, Logits.Length);
        var allowed = new HashSet<int> { 2, 4, 7 };
        var seen = new HashSet<int>();
        var stream = new NoiseStream(5, 0, NoiseStreamIds.TokenSampling);
        for (var i = 0; i < 20_000; i++)
        {
            var t = p.Choose(Logits, [], stream.NextUniform()).TokenId;
            Assert.Contains(t, allowed);
            seen.Add(t);
        }

        Assert.Equal(allowed, seen); // and all of them are reachable
    }

    [Fact]
    public void Top_k_keeps_ties_with_the_kth_value()
    {
        var logits = (float[])Logits.Clone();
        LogitsProcessor.ApplyTopK(logits, 1);
        Assert.Equal([2, 4], Enumerable.Range(0, logits.Length).Where(i => !float.IsNegativeInfinity(logits[i])));
    }

    [Theory]
    [InlineData(0.3, new[] { 2 })]          // the top token alone has p = 0.346 >= 0.3 (its tie, id 4, goes)
    [InlineData(0.5, new[] { 2, 4 })]       // 0.346 < 0.5, with the second 0.691
    [InlineData(0.8, new[] { 2, 4, 7 })]    // 0.691 + 0.155 = 0.847
    [InlineData(0.85, new[] { 0, 2, 4, 7 })]
    [InlineData(1e-6, new[] { 2 })]         // always at least one token
    public void Top_p_keeps_the_smallest_set_reaching_p(double topP, int[] expected)
    {
        var probs = Softmax(Logits);
        Assert.InRange(probs[2], 0.345, 0.346);
        var logits = (float[])Logits.Clone();
        LogitsProcessor.ApplyTopP(logits, topP);
        Assert.Equal(expected, Enumerable.Range(0, logits.Length).Where(i => !float.IsNegativeInfinity(logits[i])));

        var p = new LogitsProcessor(new LogitsSettings { TopP = topP }, Logits.Length);
        var stream = new NoiseStream(11, 0, NoiseStreamIds.TokenSampling);
        for (var i = 0; i < 5_000; i++)
        {
            Assert.Contains(p.Choose(Logits, [], stream.NextUniform()).TokenId, expected);
        }
    }

    [Fact]
    public void Sampling_follows_the_processed_distribution_and_reports_both_logprobs()
    {
        var settings = new LogitsSettings { Temperature = 0.7, TopK = 5 };
        var p = new LogitsProcessor(settings, Logits.Length);
        var processed = new float[Logits.Length];
        p.Process(Logits, [], processed);
        var expected = Softmax(processed);
        var counts = new int[Logits.Length];
        var stream = new NoiseStream(3, 0, NoiseStreamIds.TokenSampling);
        const int n = 100_000;
        for (var i = 0; i < n; i++)
        {
            var c = p.Choose(Logits, [], stream.NextUniform());
            counts[c.TokenId]++;
            if (i < 50)
            {
                Assert.Equal(Math.Log(Softmax(Logits)[c.TokenId]), c.LogProb, 1e-6);
                Assert.Equal(Math.Log(expected[c.TokenId]), c.ProcessedLogProb, 1e-6);
            }
        }

        for (var t = 0; t < Logits.Length; t++)
        {
            // binomial standard error <= 0.0016 at n = 100k; allow 5 of them
            Assert.InRange(counts[t] / (double)n, expected[t] - 0.008, expected[t] + 0.008);
        }
    }

    [Fact]
    public void Inverse_cdf_walks_ids_in_order()
    {
        float[] logits = [0, 0, float.NegativeInfinity, 0];
        Assert.Equal(0, LogitsProcessor.SampleToken(logits, 0f));
        Assert.Equal(0, LogitsProcessor.SampleToken(logits, 0.33f));
        Assert.Equal(1, LogitsProcessor.SampleToken(logits, 0.34f));
        Assert.Equal(3, LogitsProcessor.SampleToken(logits, 0.67f));
        Assert.Equal(3, LogitsProcessor.SampleToken(logits, 0.99999994f));
    }

    [Fact]
    public void Log_softmax_matches_the_definition()
    {
        var output = new float[Logits.Length];
        LogitsProcessor.LogSoftmax(Logits, output);
        var probs = Softmax(Logits);
        for (var i = 0; i < Logits.Length; i++)
        {
            Assert.Equal(Math.Log(probs[i]), output[i], 1e-6);
        }

        Assert.Equal(1.0, output.Sum(v => Math.Exp(v)), 1e-6);
    }

    [Theory]
    [InlineData(-0.1, 0, 1.0, 1.0, "temperature")]
    [InlineData(1.0, 9, 1.0, 1.0, "top_k")]
    [InlineData(1.0, 0, 0.0, 1.0, "top_p")]
    [InlineData(1.0, 0, 1.0, 0.0, "repetition_penalty")]
    public void Bad_settings_name_the_field(double temperature, int topK, double topP, double penalty, string field)
    {
        var settings = new LogitsSettings { Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new LogitsProcessor(settings, Logits.Length));
        Assert.Equal(field, ex.ParamName);
    }
}
