namespace GenService.Generation.Ar;

/// <summary>An AR sampling request as sent (the API's ar fields); <see cref="ArJob.Create"/> validates it.</summary>
public sealed record ArParameters : SampleParameters
{
    /// <summary>Text to continue (text models), tokenized with the model's vocabulary or tokenizer file.</summary>
    public string? Prompt { get; init; }

    /// <summary>Token ids to continue, after the start token.</summary>
    public int[]? PromptTokens { get; init; }

    /// <summary>1..(max_length - start - prompt); default: all that fit.</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>0 = greedy; default 1.</summary>
    public double? Temperature { get; init; }

    /// <summary>0..vocab_size (0 = off).</summary>
    public int? TopK { get; init; }

    /// <summary>(0, 1] (1 = off).</summary>
    public double? TopP { get; init; }

    /// <summary>(0, 10] (1 = off).</summary>
    public double? RepetitionPenalty { get; init; }

    /// <summary>Up to 4 strings (text models).</summary>
    public IReadOnlyList<string>? Stop { get; init; }
}

/// <summary>One sequence to score: its text (text models) or its token ids.</summary>
public sealed record ArScoredSequence(string? Text, int[]? Ids);
