using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GenService.Api.Families.Common;
using GenService.Inference.Runtime;
using GenService.Sampling.Autoregressive;
using GenService.Sampling.Random;

namespace GenService.Api.Families.Ar;

/// <summary>What the generation loop reports: a token, a finished sample, then the whole result.</summary>
internal abstract record ArEvent;

internal sealed record ArTokenGenerated(int Sample, int Index, int TokenId, double LogProb) : ArEvent;

internal sealed record ArSampleFinished(int Sample, ArSampleResult Result) : ArEvent;

internal sealed record ArCompleted(ArSampleResult[] Samples, int DecoderCalls, InferenceTimings Timings) : ArEvent;

/// <summary>One finished sample: generated ids (eos included when it ended the sample), text, and why it stopped.</summary>
internal sealed record ArSampleResult(int[] Tokens, double[] LogProbs, string? Text, string FinishReason);

/// <summary>
/// The decoding loop. All unfinished samples of a request go to the decoder together, one call per token:
/// <code>
///   seq_i = [start_i] + prompt                          (all rows the same length)
///   loop:  logits = decoder(rows)                       KV: prefill once, then the last token + the cache
///          for each row i: token = choose(logits_i[last], u_i)   u_i = NoiseStream(seed, i, Tokens).NextUniform()
///          eos / stop string / max_new_tokens end row i; its cache rows are sliced away
/// </code>
/// One uniform per generated token from sample i's own stream (greedy draws it too), so sample i never depends on
/// count, batching or the other rows. The request's cancellation token (client disconnect) stops it within a token.
/// </summary>
internal static class ArGenerator
{
    public const string Length = "length";
    public const string EosToken = "eos_token";
    public const string StopSequence = "stop_sequence";

    public static async IAsyncEnumerable<ArEvent> RunAsync(ArJob job, [EnumeratorCancellation] CancellationToken ct)
    {
        ArDecoder decoder = job.Decoder;
        int n = job.Count;
        int vocab = decoder.VocabSize;
        var sequences = new List<int>[n];
        var generated = new List<int>[n];
        var logProbs = new List<double>[n];
        var streams = new NoiseStream[n];
        var results = new ArSampleResult?[n];
        for (int i = 0; i < n; i++)
        {
            sequences[i] = [];
            if (job.StartTokens[i] is { } start)
            {
                sequences[i].Add(start);
            }

            sequences[i].AddRange(job.Prompt);
            generated[i] = [];
            logProbs[i] = [];
            streams[i] = new NoiseStream(job.Seed, (ulong)i, SeedStreams.Tokens);
        }

        var processor = new LogitsProcessor(job.Settings, vocab);
        var timings = new InferenceTimings();
        bool useCache = job.UseCache && decoder.HasCache;
        KvCache? cache = null;
        List<int> active = [.. Enumerable.Range(0, n)];
        int calls = 0;
        float[] masked = ArrayPool<float>.Shared.Rent(vocab);
        try
        {
            while (active.Count > 0)
            {
                ct.ThrowIfCancellationRequested();
                int rows = active.Count;
                bool prefill = cache is null;
                int width = !useCache || prefill ? sequences[active[0]].Count : 1;
                var ids = new long[rows * width];
                for (int r = 0; r < rows; r++)
                {
                    List<int> seq = sequences[active[r]];
                    for (int j = 0; j < width; j++)
                    {
                        ids[(r * width) + j] = seq[seq.Count - width + j];
                    }
                }

                (float[] logits, KvCache? present, InferenceResult result) = await decoder.RunAsync(ids, rows, width, cache, wantPresent: useCache, ct);
                timings.Add(result);
                calls++;

                var keep = new List<int>(rows);
                var stillActive = new List<int>(rows);
                var events = new List<ArEvent>();
                for (int r = 0; r < rows; r++)
                {
                    int i = active[r];
                    var last = new ReadOnlySpan<float>(logits, ((r * width) + width - 1) * vocab, vocab);
                    float u = streams[i].NextUniform();
                    int token = Choose(processor, last, sequences[i], u, job.AllowedTokens, masked.AsSpan(0, vocab));
                    double logProb = LogitsProcessor.LogSoftmaxAt(last, token);
                    sequences[i].Add(token);
                    generated[i].Add(token);
                    logProbs[i].Add(logProb);
                    events.Add(new ArTokenGenerated(i, generated[i].Count - 1, token, logProb));

                    // The text so far is decoded only where it is needed: stop strings, or a finished sample.
                    string? finish = null;
                    string? text = job.Stops.Count > 0 ? job.Tokenizer?.Decode(generated[i]) : null;
                    if (token == job.EosTokenId)
                    {
                        finish = EosToken;
                    }
                    else if (text is not null && StopSequences.FindEarliest(text, job.Stops, out _) is var at and >= 0)
                    {
                        finish = StopSequence;
                        text = text[..at];
                    }
                    else if (generated[i].Count >= job.MaxNewTokens)
                    {
                        finish = Length;
                    }

                    if (finish is not null && finish != StopSequence)
                    {
                        text = job.Tokenizer?.Decode(generated[i]);
                    }

                    if (finish is null)
                    {
                        keep.Add(r);
                        stillActive.Add(i);
                    }
                    else
                    {
                        results[i] = new ArSampleResult([.. generated[i]], [.. logProbs[i]], text, finish);
                        events.Add(new ArSampleFinished(i, results[i]!));
                    }
                }

                foreach (ArEvent e in events)
                {
                    yield return e;
                }

                active = stillActive;
                if (useCache && present is not null && active.Count > 0)
                {
                    cache = keep.Count == rows ? present : present.SelectRows(keep);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(masked);
        }

        yield return new ArCompleted([.. results.Select(r => r!)], calls, timings);
    }

    /// <summary>Image models generate pixels only: tokens at or above the level count (class/start tokens) are masked out.</summary>
    private static int Choose(LogitsProcessor processor, ReadOnlySpan<float> logits, List<int> sequence, float u, int allowed, Span<float> scratch)
    {
        ReadOnlySpan<int> seq = CollectionsMarshal.AsSpan(sequence);
        if (allowed >= logits.Length)
        {
            return processor.Choose(logits, seq, u).TokenId;
        }

        logits.CopyTo(scratch);
        scratch[allowed..].Fill(float.NegativeInfinity);
        return processor.Choose(scratch, seq, u).TokenId;
    }
}
