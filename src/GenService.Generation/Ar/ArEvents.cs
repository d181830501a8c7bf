namespace GenService.Generation.Ar;

/// <summary>What an AR loop reports: tokens and finished samples (when streaming), then the whole result.</summary>
public abstract record ArEvent;

/// <summary>Sample <paramref name="Sample"/> generated its token number <paramref name="Index"/> (0-based).</summary>
public sealed record ArTokenGenerated(int Sample, int Index, int TokenId, double LogProb) : ArEvent;

/// <summary>Sample <paramref name="Sample"/> ended.</summary>
public sealed record ArSampleFinished(int Sample, ArSampleResult Result) : ArEvent;

/// <summary>Every sample ended; <paramref name="DecoderCalls"/> is the request's nfe.</summary>
public sealed record ArCompleted(ArSampleResult[] Samples, int DecoderCalls, InferenceTimings Timings) : ArEvent;

/// <summary>One finished sample: generated ids (eos included when it ended the sample), text, and why it stopped.</summary>
public sealed record ArSampleResult(int[] Tokens, double[] LogProbs, string? Text, string FinishReason)
{
    public const string Length = "length";
    public const string EosToken = "eos_token";
    public const string StopSequence = "stop_sequence";
}

/// <summary>One scored sequence: log p (nats) of each token given the start token and the tokens before it.</summary>
public sealed record ArSequenceScore(double LogProb, double[] TokenLogProbs, int[] Tokens);
