using System.Buffers;

namespace GenService.Sampling.Autoregressive;

/// <summary>Request fields of AR sampling. Off values: temperature 1, top_k 0, top_p 1, repetition_penalty 1.</summary>
public sealed record LogitsSettings
{
    /// <summary>0 = greedy (argmax); otherwise logits are divided by it.</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>Keep the k most likely tokens (ties with the k-th kept too); 0 = off.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus: keep the smallest most-likely set whose probability reaches top_p; 1 = off.</summary>
    public double TopP { get; init; } = 1;

    /// <summary>Hugging Face's CTRL-style penalty on tokens already in the sequence; 1 = off.</summary>
    public double RepetitionPenalty { get; init; } = 1;

    public bool IsGreedy => Temperature == 0;

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the request field and its range.</summary>
    public void Validate(int vocabSize)
    {
        if (!(Temperature >= 0 && Temperature <= 100))
        {
            throw new ArgumentOutOfRangeException("temperature", Temperature, "temperature must be in 0..100 (0 = greedy).");
        }

        if (TopK < 0 || TopK > vocabSize)
        {
            throw new ArgumentOutOfRangeException("top_k", TopK, $"top_k must be in 0..{vocabSize} (the vocabulary size; 0 = off).");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException("top_p", TopP, "top_p must be in (0, 1] (1 = off).");
        }

        if (!(RepetitionPenalty > 0 && RepetitionPenalty <= 10))
        {
            throw new ArgumentOutOfRangeException("repetition_penalty", RepetitionPenalty, "repetition_penalty must be in (0, 10] (1 = off).");
        }
    }
}

/// <summary>
/// A chosen token. <see cref="LogProb"/> is its log-probability under the model's own distribution
/// (log_softmax of the raw logits: what the API reports as <c>logprob</c>, comparable with /log-likelihood);
/// <see cref="ProcessedLogProb"/> is under the distribution actually sampled from (after penalty, temperature,
/// top-k, top-p; 0 for greedy, a point mass).
/// </summary>
public readonly record struct TokenChoice(int TokenId, double LogProb, double ProcessedLogProb);

/// <summary>
/// Next-token choice in Hugging Face's order: repetition penalty, temperature, top-k, top-p, then one inverse-CDF
/// draw over token ids in ascending order with one uniform (from <see cref="Random.NoiseStream"/>, stream
/// <see cref="Random.NoiseStreamIds.TokenSampling"/>). Greedy (temperature 0) takes the argmax after the
/// repetition penalty, lowest id on ties. Stateless and thread-safe; scratch comes from <see cref="ArrayPool{T}"/>.
/// </summary>
public sealed class LogitsProcessor
{
    private readonly LogitsSettings _settings;

    public LogitsProcessor(LogitsSettings settings, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        settings.Validate(vocabSize);
        _settings = settings;
        VocabSize = vocabSize;
    }

    public int VocabSize { get; }

    /// <summary>Chooses the next token from one position's logits; <paramref name="sequence"/> is every token so far (prompt and start token included, as HF's input_ids).</summary>
    public TokenChoice Choose(ReadOnlySpan<float> logits, ReadOnlySpan<int> sequence, float uniform)
    {
        CheckVocab(logits);
        var buffer = ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            var processed = buffer.AsSpan(0, logits.Length);
            int token;
            double processedLogProb;
            if (_settings.IsGreedy)
            {
                logits.CopyTo(processed);
                ApplyRepetitionPenalty(processed, sequence, _settings.RepetitionPenalty);
                token = ArgMax(processed);
                processedLogProb = 0;
            }
            else
            {
                Process(logits, sequence, processed);
                token = SampleToken(processed, uniform);
                processedLogProb = LogSoftmaxAt(processed, token);
            }

            return new TokenChoice(token, LogSoftmaxAt(logits, token), processedLogProb);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>The sampling distribution's logits: removed tokens are -infinity. Not for greedy settings.</summary>
    public void Process(ReadOnlySpan<float> logits, ReadOnlySpan<int> sequence, Span<float> processed)
    {
        CheckVocab(logits);
        if (processed.Length != logits.Length)
        {
            throw new ArgumentException("processed must have the logits' length.", nameof(processed));
        }

        if (_settings.IsGreedy)
        {
            throw new InvalidOperationException("Greedy decoding has no sampling distribution; use Choose.");
        }

        logits.CopyTo(processed);
        ApplyRepetitionPenalty(processed, sequence, _settings.RepetitionPenalty);
        if (_settings.Temperature != 1)
        {
            var inv = (float)(1 / _settings.Temperature);
            for (var i = 0; i < processed.Length; i++)
            {
                processed[i] *= inv;
            }
        }

        if (_settings.TopK > 0 && _settings.TopK < processed.Length)
        {
            ApplyTopK(processed, _settings.TopK);
        }

        if (_settings.TopP < 1)
        {
            ApplyTopP(processed, _settings.TopP);
        }
    }

    /// <summary>HF RepetitionPenaltyLogitsProcessor: for each distinct token seen, logit &gt; 0 ? logit / p : logit * p.</summary>
    public static void ApplyRepetitionPenalty(Span<float> logits, ReadOnlySpan<int> sequence, double penalty)
    {
        if (penalty == 1)
        {
            return;
        }

        var seen = ArrayPool<bool>.Shared.Rent(logits.Length);
        try
        {
            Array.Clear(seen, 0, logits.Length);
            foreach (var token in sequence)
            {
                if ((uint)token >= (uint)logits.Length || seen[token])
                {
                    continue; // ids outside the vocabulary were rejected upstream; never penalise twice
                }

                seen[token] = true;
                var l = logits[token];
                logits[token] = l > 0 ? (float)(l / penalty) : (float)(l * penalty);
            }
        }
        finally
        {
            ArrayPool<bool>.Shared.Return(seen);
        }
    }

    /// <summary>HF TopKLogitsWarper: -infinity below the k-th largest logit (ties with it survive).</summary>
    public static void ApplyTopK(Span<float> logits, int k)
    {
        var sorted = ArrayPool<float>.Shared.Rent(logits.Length);
        try
        {
            var s = sorted.AsSpan(0, logits.Length);
            logits.CopyTo(s);
            s.Sort();
            var threshold = s[logits.Length - k];
            for (var i = 0; i < logits.Length; i++)
            {
                if (logits[i] < threshold)
                {
                    logits[i] = float.NegativeInfinity;
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(sorted);
        }
    }

    /// <summary>
    /// HF TopPLogitsWarper: tokens in descending probability (lower id first on ties) are kept while the
    /// probability mass before them is below top_p, so the kept set is the smallest prefix reaching top_p;
    /// the most likely token always stays.
    /// </summary>
    public static void ApplyTopP(Span<float> logits, double topP)
    {
        var n = logits.Length;
        var order = ArrayPool<int>.Shared.Rent(n);
        var keys = ArrayPool<float>.Shared.Rent(n);
        try
        {
            var idx = order.AsSpan(0, n);
            var max = float.NegativeInfinity;
            for (var i = 0; i < n; i++)
            {
                idx[i] = i;
                keys[i] = logits[i];
                max = Math.Max(max, logits[i]);
            }

            // Span.Sort is unstable: the comparer orders by logit descending, then id ascending.
            idx.Sort(new DescendingThenById(keys));
            var total = 0.0;
            for (var i = 0; i < n; i++)
            {
                total += Math.Exp(logits[i] - max);
            }

            var before = 0.0;
            for (var j = 0; j < n; j++)
            {
                var token = idx[j];
                if (j > 0 && before / total >= topP)
                {
                    logits[token] = float.NegativeInfinity;
                    continue;
                }

                before += Math.Exp(logits[token] - max);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(order);
            ArrayPool<float>.Shared.Return(keys);
        }
    }

    /// <summary>
    /// Inverse-CDF draw: with p the softmax of <paramref name="processedLogits"/> over ids 0..V-1 in order, the first
    /// id whose cumulative probability exceeds u (u in [0, 1)). Tokens at -infinity are never chosen.
    /// </summary>
    public static int SampleToken(ReadOnlySpan<float> processedLogits, float uniform)
    {
        if (!(uniform >= 0 && uniform < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(uniform), uniform, "The uniform must be in [0, 1).");
        }

        var max = Max(processedLogits);
        if (float.IsNegativeInfinity(max) || float.IsNaN(max))
        {
            throw new ArgumentException("No token has a finite logit.", nameof(processedLogits));
        }

        var total = 0.0;
        for (var i = 0; i < processedLogits.Length; i++)
        {
            total += Math.Exp(processedLogits[i] - max);
        }

        var target = uniform * total;
        var cumulative = 0.0;
        var lastAllowed = -1;
        for (var i = 0; i < processedLogits.Length; i++)
        {
            var p = Math.Exp(processedLogits[i] - max);
            if (p == 0)
            {
                continue;
            }

            lastAllowed = i;
            cumulative += p;
            if (cumulative > target)
            {
                return i;
            }
        }

        return lastAllowed; // rounding left target a hair above the sum
    }

    /// <summary>Index of the largest value; the lowest index on ties (NaN never wins).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best] || float.IsNaN(values[best]))
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>log_softmax, stable (max subtracted), accumulated in double.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> logits, Span<float> output)
    {
        if (output.Length != logits.Length)
        {
            throw new ArgumentException("output must have the logits' length.", nameof(output));
        }

        var logZ = LogSumExp(logits);
        for (var i = 0; i < logits.Length; i++)
        {
            output[i] = (float)(logits[i] - logZ);
        }
    }

    /// <summary>log_softmax(logits)[index] without writing the whole vector.</summary>
    public static double LogSoftmaxAt(ReadOnlySpan<float> logits, int index) => logits[index] - LogSumExp(logits);

    public static double LogSumExp(ReadOnlySpan<float> logits)
    {
        double max = Max(logits);
        if (double.IsNegativeInfinity(max))
        {
            return max;
        }

        var sum = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            sum += Math.Exp(logits[i] - max);
        }

        return max + Math.Log(sum);
    }

    private static float Max(ReadOnlySpan<float> values)
    {
        var max = float.NegativeInfinity;
        foreach (var v in values)
        {
            if (v > max || float.IsNaN(v))
            {
                max = v;
            }
        }

        return max;
    }

    private void CheckVocab(ReadOnlySpan<float> logits)
    {
        if (logits.Length != VocabSize)
        {
            throw new ArgumentException($"Expected {VocabSize} logits (the vocabulary), got {logits.Length}.", nameof(logits));
        }
    }

    private readonly struct DescendingThenById(float[] logits) : IComparer<int>
    {
        public int Compare(int x, int y)
        {
            var byLogit = logits[y].CompareTo(logits[x]);
            return byLogit != 0 ? byLogit : x.CompareTo(y);
        }
    }
}
