using System.Buffers;
using System.Runtime.CompilerServices;
using GenService.Api.Families.Common;
using GenService.Inference.Runtime;
using GenService.Sampling.Autoregressive;

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
        var processor = new LogitsProcessor(job.Settings, vocab);
        ArSequence[] sequences = [.. Enumerable.Range(0, n).Select(i => new ArSequence(job, i, processor))];
        var timings = new InferenceTimings();
        bool useCache = job.UseCache && decoder.HasCache;
        KvCache? cache = null;
        List<ArSequence> active = [.. sequences];
        int calls = 0;
        float[] scratch = ArrayPool<float>.Shared.Rent(vocab);
        try
        {
            while (active.Count > 0)
            {
                ct.ThrowIfCancellationRequested();
                int rows = active.Count;
                bool prefill = cache is null;
                int width = !useCache || prefill ? active[0].Tokens.Count : 1;
                var ids = new long[rows * width];
                for (int r = 0; r < rows; r++)
                {
                    List<int> seq = active[r].Tokens;
                    for (int j = 0; j < width; j++)
                    {
                        ids[(r * width) + j] = seq[seq.Count - width + j];
                    }
                }

                (float[] logits, KvCache? present, InferenceResult result) = await decoder.RunAsync(ids, rows, width, cache, wantPresent: useCache, ct);
                timings.Add(result);
                calls++;

                var keep = new List<int>(rows);
                var stillActive = new List<ArSequence>(rows);
                var events = new List<ArEvent>();
                for (int r = 0; r < rows; r++)
                {
                    ArSequence s = active[r];
                    events.Add(s.Accept(new ReadOnlySpan<float>(logits, ((r * width) + width - 1) * vocab, vocab), scratch));
                    if (s.Result is null)
                    {
                        keep.Add(r);
                        stillActive.Add(s);
                    }
                    else
                    {
                        events.Add(new ArSampleFinished(s.Sample, s.Result));
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
            ArrayPool<float>.Shared.Return(scratch);
        }

        yield return new ArCompleted([.. sequences.Select(s => s.Result!)], calls, timings);
    }
}
