using GenService.Generation.Budgets;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Sampling.Autoregressive;

namespace GenService.Generation.Ar;

/// <summary>
/// log p of given sequences: token j's log-probability (nats, log_softmax over the whole vocabulary) given the
/// start token and tokens 0..j-1. The decoder sees [start] + tokens[..^1] once (past length 0), so sequences of
/// one length share one call; no end token is added. Each scored sequence counts one network evaluation.
/// </summary>
public sealed class ArLikelihoodScorer(GenerationTelemetry telemetry, WorkBudget? budget = null)
{
    /// <summary>Scores <paramref name="sequences"/> (the field <c>sequences</c>) from the start token of <paramref name="classLabel"/> (else bos).</summary>
    public async Task<(List<ArSequenceScore> Results, InferenceTimings Timings)> ScoreAsync(
        IReadOnlyList<ArScoredSequence>? sequences, int? classLabel, ILoadedModel model, int maxCount, CancellationToken ct)
    {
        ModelManifest manifest = model.Manifest;
        TokensSpec tokens = manifest.Tokens!;
        var decoder = new ArDecoder(FamilyModels.RequireGraph(model, "decoder", "log-likelihood"), tokens.VocabSize);
        IArTokenizer? tokenizer = ArTokenizers.For(manifest);
        if (sequences is not { Count: > 0 })
        {
            throw new RequestValidationException("sequences", "'sequences' is missing or empty: give a list of token id lists, or of strings for text models.");
        }

        Validate.Count(sequences.Count, maxCount, "sequences");
        (int?[] starts, _) = ArJob.ResolveStartTokens(classLabel, manifest, 1, 0);
        if (starts[0] is not { } start)
        {
            throw new RequestValidationException("class_label", $"Model '{manifest.Name}' has no bos token: give a 'class_label' whose start token begins the sequences.");
        }

        var parsed = new int[sequences.Count][];
        for (int i = 0; i < sequences.Count; i++)
        {
            parsed[i] = Parse(sequences[i], $"sequences[{i}]", tokenizer, manifest);
            if (parsed[i].Length + 1 > tokens.MaxLength)
            {
                throw new RequestValidationException($"sequences[{i}]", $"'sequences[{i}]' has {parsed[i].Length} tokens; with the start token at most {tokens.MaxLength - 1} fit (max_length {tokens.MaxLength}).");
            }
        }

        using WorkBudget.Lease? work = budget?.Admit(WorkRequest.Scored(manifest.Name, parsed.Length, parsed.Sum(p => (long)p.Length)));
        var results = new ArSequenceScore[parsed.Length];
        var timings = new InferenceTimings();
        int vocab = tokens.VocabSize;
        foreach (IGrouping<int, int> group in Enumerable.Range(0, parsed.Length).GroupBy(i => parsed[i].Length))
        {
            int width = group.Key; // [start] + tokens[..^1]
            int[] members = [.. group];
            var ids = new long[members.Length * width];
            for (int r = 0; r < members.Length; r++)
            {
                int[] seq = parsed[members[r]];
                ids[r * width] = start;
                for (int j = 1; j < width; j++)
                {
                    ids[(r * width) + j] = seq[j - 1];
                }
            }

            (float[] logits, _, var result) = await decoder.RunAsync(ids, members.Length, width, past: null, wantPresent: false, ct);
            timings.Add(result);
            for (int r = 0; r < members.Length; r++)
            {
                int[] seq = parsed[members[r]];
                var perToken = new double[width];
                double total = 0;
                for (int j = 0; j < width; j++)
                {
                    var row = new ReadOnlySpan<float>(logits, ((r * width) + j) * vocab, vocab);
                    perToken[j] = LogitsProcessor.LogSoftmaxAt(row, seq[j]);
                    total += perToken[j];
                }

                results[members[r]] = new ArSequenceScore(total, perToken, seq);
            }
        }

        telemetry.Evaluated(ModelFamily.Ar, manifest.Name, parsed.Length);
        return ([.. results], timings);
    }

    private static int[] Parse(ArScoredSequence sequence, string field, IArTokenizer? tokenizer, ModelManifest manifest)
    {
        int vocab = manifest.Tokens!.VocabSize;
        int[] ids;
        if (sequence.Text is { } text)
        {
            if (tokenizer is null)
            {
                throw new RequestValidationException(field, $"Model '{manifest.Name}' has no vocabulary: give '{field}' as a list of token ids.");
            }

            ids = tokenizer.Encode(text, field);
        }
        else
        {
            ids = sequence.Ids ?? throw new RequestValidationException(field, $"'{field}' must be a list of token ids or a string.");
        }

        if (ids.Length == 0)
        {
            throw new RequestValidationException(field, $"'{field}' is empty; give at least one token.");
        }

        for (int j = 0; j < ids.Length; j++)
        {
            if (ids[j] < 0 || ids[j] >= vocab)
            {
                throw new RequestValidationException($"{field}[{j}]", $"'{field}[{j}]' is {ids[j]}; token ids of model '{manifest.Name}' are 0..{vocab - 1}.");
            }
        }

        return ids;
    }
}
