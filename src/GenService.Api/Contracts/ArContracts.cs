using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using GenService.Generation.Ar;
using GenService.Inference;

namespace GenService.Api.Contracts;

/// <summary>Body of POST /v1/ar/{model}/samples (docs/http-api.md, "ar" rows).</summary>
internal sealed class ArSampleRequest : SampleRequest
{
    [Description("Text to continue (text models; tokenized with the model's vocabulary or tokenizer file). Not with prompt_tokens.")]
    public string? Prompt { get; set; }

    [Description("Token ids to continue, after the start token (image models: the first pixels, as level tokens). Not with prompt.")]
    public int[]? PromptTokens { get; set; }

    [Description("Tokens to generate, 1..(max_length - 1 - prompt length); default: all that fit.")]
    public int? MaxNewTokens { get; set; }

    [Description("0 = greedy (argmax); otherwise logits are divided by it, up to 100. Default 1.")]
    public double? Temperature { get; set; }

    [Description("Keep only the k most likely tokens, 0..vocab_size (0 = off).")]
    public int? TopK { get; set; }

    [Description("Nucleus sampling: keep the smallest most-likely set reaching this probability, (0, 1] (1 = off).")]
    public double? TopP { get; set; }

    [Description("Hugging Face (CTRL) repetition penalty on tokens already in the sequence, (0, 10] (1 = off).")]
    public double? RepetitionPenalty { get; set; }

    [Description("Up to 4 strings (text models); generation stops at the first and the text excludes it.")]
    public List<string>? Stop { get; set; }

    [Description("Stream SSE `token` events, then `done` per sample (also with Accept: text/event-stream).")]
    public bool? Stream { get; set; }

    public ArParameters ToParameters() => Shared(new ArParameters
    {
        Prompt = Prompt,
        PromptTokens = PromptTokens,
        MaxNewTokens = MaxNewTokens,
        Temperature = Temperature,
        TopK = TopK,
        TopP = TopP,
        RepetitionPenalty = RepetitionPenalty,
        Stop = Stop,
    });
}

/// <summary>Body of POST /v1/ar/{model}/log-likelihood.</summary>
internal sealed class ArLogLikelihoodRequest
{
    [Description("Sequences to score: each a list of token ids, or a string (text models). The start token is prepended; no end token is added.")]
    public List<JsonElement>? Sequences { get; set; }

    [Description("Class whose start token begins every sequence; absent: the bos token.")]
    public int? ClassLabel { get; set; }

    /// <summary>Each sequence as text or ids; a 400 naming the element when it is neither a string nor a list of integers.</summary>
    public List<ArScoredSequence>? ToSequences()
    {
        if (Sequences is null)
        {
            return null;
        }

        var parsed = new List<ArScoredSequence>(Sequences.Count);
        for (int i = 0; i < Sequences.Count; i++)
        {
            JsonElement element = Sequences[i];
            string field = $"sequences[{i}]";
            switch (element.ValueKind)
            {
                case JsonValueKind.String:
                    parsed.Add(new ArScoredSequence(element.GetString(), null));
                    break;
                case JsonValueKind.Array:
                    var ids = new int[element.GetArrayLength()];
                    int j = 0;
                    foreach (JsonElement v in element.EnumerateArray())
                    {
                        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out ids[j]))
                        {
                            throw new RequestValidationException($"{field}[{j}]", $"'{field}[{j}]' must be an integer token id.");
                        }

                        j++;
                    }

                    parsed.Add(new ArScoredSequence(null, ids));
                    break;
                default:
                    throw new RequestValidationException(field, $"'{field}' must be a list of token ids or a string.");
            }
        }

        return parsed;
    }
}

/// <summary>One scored sequence: log p (nats) of each token given the start token and the tokens before it.</summary>
internal sealed record ArLikelihood(double LogProb, double[] TokenLogProbs, int[] Tokens);

/// <summary>A generated token as SSE sends it: id, its text (text models) and log p under the model.</summary>
internal sealed record ArTokenInfo(
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("text")] string? Text,
    [property: JsonPropertyName("logprob")] double Logprob);

/// <summary>SSE `token` event.</summary>
internal sealed record ArTokenEvent(
    [property: JsonPropertyName("sample")] int Sample,
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("token")] ArTokenInfo Token);

/// <summary>SSE `done` event, one per sample.</summary>
internal sealed record ArDoneEvent(
    [property: JsonPropertyName("sample")] int Sample,
    [property: JsonPropertyName("finish_reason")] string FinishReason,
    [property: JsonPropertyName("generated_tokens")] int GeneratedTokens,
    [property: JsonPropertyName("seed")] ulong Seed,
    [property: JsonPropertyName("text")] string? Text);
