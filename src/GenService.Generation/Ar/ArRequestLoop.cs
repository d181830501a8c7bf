using System.Buffers;
using System.Runtime.CompilerServices;
using GenService.Generation.Loops;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using GenService.Sampling.Autoregressive;

namespace GenService.Generation.Ar;

/// <summary>
/// Request-level AR (<see cref="LoopMode.Request"/>, the fallback and the comparison point): all unfinished samples
/// of one request go to the decoder together, one call per token; the graph's dynamic batcher merges the calls of
/// concurrent requests whose shapes agree.
/// <code>
///   seq_i = [start_i] + prompt                          (all rows the same length)
///   loop:  logits = decoder(rows)                       KV: prefill once, then the last token + the cache
///          for each row i: token = choose(logits_i[last], u_i)   u_i = NoiseStream(seed, i, Tokens).NextUniform()
///          eos / stop string / max_new_tokens end row i; its cache rows are sliced away
/// </code>
/// One uniform per generated token from sample i's own stream (greedy draws it too), so sample i never depends on
/// count, batching or the other rows. The request's cancellation token (client disconnect) stops it within a token.
/// </summary>
internal sealed class ArRequestLoop(GenerationTelemetry telemetry) : IArLoop
{
    public LoopMode Mode => LoopMode.Request;

    public async IAsyncEnumerable<ArEvent> RunAsync(ArJob job, bool stream, [EnumeratorCancellation] CancellationToken ct)
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
        Exception? stopped = new OperationCanceledException("The caller stopped reading the events.");
        try
        {
            while (active.Count > 0)
            {
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

                float[] logits;
                KvCache? present;
                try
                {
                    ct.ThrowIfCancellationRequested();
                    InferenceResult result;
                    (logits, present, result) = await decoder.RunAsync(ids, rows, width, cache, wantPresent: useCache, ct);
                    timings.Add(result);
                }
                catch (Exception e)
                {
                    stopped = e;
                    throw;
                }

                calls++;
                var keep = new List<int>(rows);
                var stillActive = new List<ArSequence>(rows);
                var events = new List<ArEvent>();
                for (int r = 0; r < rows; r++)
                {
                    ArSequence s = active[r];
                    ArTokenGenerated token = s.Accept(new ReadOnlySpan<float>(logits, ((r * width) + width - 1) * vocab, vocab), scratch);
                    if (s.Result is null)
                    {
                        keep.Add(r);
                        stillActive.Add(s);
                    }

                    if (stream)
                    {
                        events.Add(token);
                        if (s.Result is not null)
                        {
                            events.Add(new ArSampleFinished(s.Sample, s.Result));
                        }
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

            stopped = null;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
            telemetry.Ended(ModelFamily.Ar, job.Manifest.Name, n, sequences.Sum(s => (long)s.GeneratedCount), calls, Mode, stopped);
        }

        yield return new ArCompleted([.. sequences.Select(s => s.Result!)], calls, timings);
    }
}
