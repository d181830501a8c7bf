using System.Runtime.InteropServices;
using GenService.Sampling.Autoregressive;
using GenService.Sampling.Random;

namespace GenService.Generation.Ar;

/// <summary>
/// One sample of an AR request on its way: the tokens so far ([start] + prompt + generated), its own noise stream
/// (one uniform per generated token), and how it ends. Both loops drive it the same way, so a sample's tokens do
/// not depend on which loop ran it or on the rows around it:
/// <code>
///   request level:   ArRequestLoop    — the rows of one request, one decoder call per token
///   iteration level: ArIterationLoop  — the rows of every in-flight request, one decoder call per iteration
///   both:            logits at the sample's last position ──► Accept ──► token, log p, finished?
/// </code>
/// </summary>
internal sealed class ArSequence
{
    private readonly ArJob _job;
    private readonly LogitsProcessor _processor;
    private readonly List<int> _generated = [];
    private readonly List<double> _logProbs = [];
    private readonly NoiseStream _stream;

    public ArSequence(ArJob job, int sample, LogitsProcessor processor)
    {
        _job = job;
        _processor = processor;
        Sample = sample;
        if (job.StartTokens[sample] is { } start)
        {
            Tokens.Add(start);
        }

        Tokens.AddRange(job.Prompt);
        _stream = new NoiseStream(job.Seed, (ulong)sample, NoiseStreamIds.TokenSampling);
    }

    /// <summary>The sample's index in its request.</summary>
    public int Sample { get; }

    /// <summary>Every token so far: start token, prompt, generated (the decoder's input_ids).</summary>
    public List<int> Tokens { get; } = [];

    /// <summary>Leading tokens whose keys and values are in the sequence's cache (iteration level, KV path).</summary>
    public int Cached { get; set; }

    /// <summary>The per-sequence KV cache of the iteration-level loop (null until its first call).</summary>
    public ArSequenceCache? Cache { get; set; }

    /// <summary>Set when the sample has ended.</summary>
    public ArSampleResult? Result { get; private set; }

    /// <summary>The request this sample belongs to (the iteration-level loop's bookkeeping).</summary>
    public object? Owner { get; set; }

    public int GeneratedCount => _generated.Count;

    /// <summary>
    /// Chooses the next token from the logits at the sample's last position (<paramref name="scratch"/>: vocab floats),
    /// appends it, and ends the sample on eos, a stop string, or max_new_tokens (<see cref="Result"/> is then set).
    /// </summary>
    public ArTokenGenerated Accept(ReadOnlySpan<float> last, Span<float> scratch)
    {
        float u = _stream.NextUniform();
        int token = Choose(last, u, scratch);
        double logProb = LogitsProcessor.LogSoftmaxAt(last, token);
        Tokens.Add(token);
        _generated.Add(token);
        _logProbs.Add(logProb);

        // The text so far is decoded only where it is needed: stop strings, or a finished sample.
        string? finish = null;
        string? text = _job.Stops.Count > 0 ? _job.Tokenizer?.Decode(_generated) : null;
        if (token == _job.EosTokenId)
        {
            finish = ArSampleResult.EosToken;
        }
        else if (text is not null && StopSequences.FindEarliest(text, _job.Stops, out _) is var at and >= 0)
        {
            finish = ArSampleResult.StopSequence;
            text = text[..at];
        }
        else if (_generated.Count >= _job.MaxNewTokens)
        {
            finish = ArSampleResult.Length;
        }

        if (finish is not null)
        {
            if (finish != ArSampleResult.StopSequence)
            {
                text = _job.Tokenizer?.Decode(_generated);
            }

            Result = new ArSampleResult([.. _generated], [.. _logProbs], text, finish);
        }

        return new ArTokenGenerated(Sample, _generated.Count - 1, token, logProb);
    }

    /// <summary>Image models generate pixels only: tokens at or above the level count (class/start tokens) are masked out.</summary>
    private int Choose(ReadOnlySpan<float> logits, float u, Span<float> scratch)
    {
        ReadOnlySpan<int> seq = CollectionsMarshal.AsSpan(Tokens);
        int allowed = _job.AllowedTokens;
        if (allowed >= logits.Length)
        {
            return _processor.Choose(logits, seq, u).TokenId;
        }

        Span<float> masked = scratch[..logits.Length];
        logits.CopyTo(masked);
        masked[allowed..].Fill(float.NegativeInfinity);
        return _processor.Choose(masked, seq, u).TokenId;
    }
}

/// <summary>
/// One sequence's keys and values, per cache slot (past_key_values.{i}.key/value) a [heads, capacity, head_dim]
/// block of which the first <see cref="ArSequence.Cached"/> positions are filled. Sized for max_length at once:
/// the models this serves are small, and a fixed block never moves while the sequence grows.
/// </summary>
internal sealed class ArSequenceCache(float[][] slots, int capacity)
{
    public float[][] Slots { get; } = slots;

    public int Capacity { get; } = capacity;
}
