using GenService.Generation.Budgets;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Sampling.Autoregressive;

namespace GenService.Generation.Ar;

/// <summary>
/// A validated AR sampling request. Every sample's sequence is [start token] + prompt: the start token is the class
/// start (class_start_token_offset + c) when a class_label is given, else bos (else, for a conditional model without
/// bos, a class drawn per sample from the seed; else none, and the prompt must not be empty).
/// </summary>
public sealed record ArJob
{
    public required ModelManifest Manifest { get; init; }

    internal ArDecoder Decoder { get; init; } = null!;

    public required IArTokenizer? Tokenizer { get; init; }

    public required int Count { get; init; }

    public required ulong Seed { get; init; }

    /// <summary>The start token of each sample (null: the sequence starts with the prompt).</summary>
    internal int?[] StartTokens { get; init; } = null!;

    public required int?[] ReportedLabels { get; init; }

    public required int[] Prompt { get; init; }

    internal int MaxNewTokens { get; init; }

    internal LogitsSettings Settings { get; init; } = null!;

    internal IReadOnlyList<string> Stops { get; init; } = null!;

    /// <summary>Tokens 0..AllowedTokens-1 may be generated: image_levels for image models (pixels only), else the vocabulary.</summary>
    public required int AllowedTokens { get; init; }

    internal int? EosTokenId => Manifest.Tokens!.EosTokenId;

    public bool IsImage => Manifest.Output.Kind == "image";

    /// <summary>The work this request asks for (count x (prompt + max_new_tokens)), for <see cref="WorkBudget"/>.</summary>
    public WorkRequest Work => WorkRequest.Ar(Manifest.Name, Count, Prompt.Length, MaxNewTokens);

    /// <summary>KV-cache path when the decoder has one; tests turn it off to compare with recomputation.</summary>
    internal bool UseCache { get; init; } = true;

    public static ArJob Create(ArParameters request, ILoadedModel model, int maxCount)
    {
        ModelManifest manifest = model.Manifest;
        TokensSpec tokens = manifest.Tokens
            ?? throw new InvalidOperationException($"Model '{manifest.Name}' is an ar model without a tokens section.");
        var decoder = new ArDecoder(FamilyModels.RequireGraph(model, "decoder", "samples"), tokens.VocabSize);
        IArTokenizer? tokenizer = ArTokenizers.For(manifest);
        bool image = manifest.Output.Kind == "image";

        if (request.Latents is not null)
        {
            throw new RequestValidationException("latents", "'latents' does not apply to ar models: their randomness is one uniform per token, drawn from the seed.");
        }

        int count = request.Count ?? 1;
        Validate.Count(count, maxCount);
        ulong seed = request.Seed ?? SamplePlan.NewSeed();
        (int?[] starts, int?[] reported) = ResolveStartTokens(request.ClassLabel, manifest, count, seed);

        int allowed = image ? tokens.ImageLevels ?? tokens.VocabSize : tokens.VocabSize;
        int[] prompt = PromptTokens(request, tokenizer, manifest, allowed);
        int startLength = starts[0] is null ? 0 : 1;
        int used = startLength + prompt.Length;
        if (used == 0)
        {
            throw new RequestValidationException("prompt", $"Model '{manifest.Name}' has no start token: give a 'prompt' or 'prompt_tokens' to start from.");
        }

        int room = tokens.MaxLength - used;
        if (image)
        {
            room = Math.Min(room, manifest.SampleElements - prompt.Length);
        }

        if (room < 1)
        {
            string field = request.Prompt is not null ? "prompt" : "prompt_tokens";
            throw new RequestValidationException(field, $"'{field}' is {prompt.Length} tokens, which leaves no room to generate: at most {prompt.Length + room - 1} fit (max_length {tokens.MaxLength}, start token included).");
        }

        int maxNew = Validate.IntRange(request.MaxNewTokens, room, 1, room, "max_new_tokens");
        var settings = new LogitsSettings
        {
            Temperature = Check(request.Temperature, 1, 0, 100, "temperature", minExclusive: false, "0 = greedy"),
            TopK = Validate.IntRange(request.TopK, 0, 0, tokens.VocabSize, "top_k"),
            TopP = Check(request.TopP, 1, 0, 1, "top_p", minExclusive: true, "1 = off"),
            RepetitionPenalty = Check(request.RepetitionPenalty, 1, 0, 10, "repetition_penalty", minExclusive: true, "1 = off"),
        };

        IReadOnlyList<string> stops = request.Stop ?? [];
        if (stops.Count > 0 && tokenizer is null)
        {
            throw new RequestValidationException("stop", $"'stop' applies to text models; model '{manifest.Name}' produces {manifest.Output.Kind} samples.");
        }

        if (stops.Count > StopSequences.MaxStops)
        {
            throw new RequestValidationException("stop", $"'stop' takes at most {StopSequences.MaxStops} strings; got {stops.Count}.");
        }

        for (int i = 0; i < stops.Count; i++)
        {
            if (string.IsNullOrEmpty(stops[i]) || stops[i].Length > 64)
            {
                throw new RequestValidationException($"stop[{i}]", $"'stop[{i}]' must be a non-empty string of at most 64 characters.");
            }
        }

        return new ArJob
        {
            Manifest = manifest,
            Decoder = decoder,
            Tokenizer = tokenizer,
            Count = count,
            Seed = seed,
            StartTokens = starts,
            ReportedLabels = reported,
            Prompt = prompt,
            MaxNewTokens = maxNew,
            Settings = settings,
            Stops = stops,
            AllowedTokens = allowed,
        };
    }

    /// <summary>
    /// Image AR: the prompt pixels then the generated ones, row-major; token k is level k of image_levels spread over
    /// output.range (k / (levels - 1) of the way from black to white). A sample cut short is padded with level 0.
    /// </summary>
    public float[] Pixels(IReadOnlyList<int> generated)
    {
        int levels = Manifest.Tokens!.ImageLevels ?? AllowedTokens;
        (float black, float white) = ImageOutput.Range(Manifest);
        var pixels = new float[Manifest.SampleElements];
        Array.Fill(pixels, black);
        int p = 0;
        foreach (int token in Prompt.Concat(generated))
        {
            if (p >= pixels.Length)
            {
                break;
            }

            pixels[p++] = black + ((white - black) * token / (levels - 1));
        }

        return pixels;
    }

    /// <summary>Start token per sample (shared with log-likelihood, which passes count 1 and a fixed seed).</summary>
    internal static (int?[] Starts, int?[] Reported) ResolveStartTokens(int? classLabel, ModelManifest manifest, int count, ulong seed)
    {
        TokensSpec tokens = manifest.Tokens!;
        var starts = new int?[count];
        var reported = new int?[count];
        if (classLabel is { } label)
        {
            Validate.ClassLabel(label, manifest);
            if (tokens.ClassStartTokenOffset is not { } offset)
            {
                throw new RequestValidationException("class_label", $"Model '{manifest.Name}' has no class start tokens (tokens.class_start_token_offset); leave 'class_label' out.");
            }

            Array.Fill(starts, offset + label);
            Array.Fill(reported, label);
        }
        else if (tokens.BosTokenId is { } bos)
        {
            Array.Fill(starts, bos);
        }
        else if (manifest.Conditioning is not null && tokens.ClassStartTokenOffset is { } offset)
        {
            (int[]? labels, int?[] drawn) = SamplePlan.Labels(null, manifest, count, seed);
            for (int i = 0; i < count; i++)
            {
                starts[i] = offset + labels![i];
                reported[i] = drawn[i];
            }
        }

        return (starts, reported);
    }

    private static int[] PromptTokens(ArParameters request, IArTokenizer? tokenizer, ModelManifest manifest, int allowed)
    {
        if (request.Prompt is not null && request.PromptTokens is not null)
        {
            throw new RequestValidationException("prompt", "Give either 'prompt' (text) or 'prompt_tokens' (ids), not both.");
        }

        if (request.Prompt is { } text)
        {
            if (tokenizer is null)
            {
                throw new RequestValidationException("prompt", $"Model '{manifest.Name}' produces {manifest.Output.Kind} samples and has no vocabulary: give 'prompt_tokens' instead of a text 'prompt'.");
            }

            return tokenizer.Encode(text, "prompt");
        }

        int[] ids = request.PromptTokens ?? [];
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] < 0 || ids[i] >= allowed)
            {
                string what = manifest.Output.Kind == "image" ? "pixel level tokens" : "token ids";
                throw new RequestValidationException($"prompt_tokens[{i}]", $"'prompt_tokens[{i}]' is {ids[i]}; {what} of model '{manifest.Name}' are 0..{allowed - 1}.");
            }
        }

        return ids;
    }

    private static double Check(double? value, double fallback, double min, double max, string field, bool minExclusive, string note)
    {
        double v = value ?? fallback;
        bool low = minExclusive ? !(v > min) : !(v >= min);
        if (low || !(v <= max))
        {
            string lo = minExclusive ? "(" : "[";
            throw new RequestValidationException(field, $"'{field}' must be in {lo}{min}, {max}] ({note}); got {v}.");
        }

        return v;
    }
}
