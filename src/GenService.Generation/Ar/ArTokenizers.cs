using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using GenService.Inference;
using GenService.Inference.Manifest;
using Microsoft.ML.Tokenizers;

namespace GenService.Generation.Ar;

/// <summary>Text &lt;-&gt; token ids for a text AR model.</summary>
public interface IArTokenizer
{
    /// <summary>Token ids of <paramref name="text"/>; a 400 naming <paramref name="field"/> when it cannot be tokenized.</summary>
    int[] Encode(string text, string field);

    /// <summary>The text of the tokens, special tokens left out.</summary>
    string Decode(IReadOnlyList<int> ids);

    /// <summary>The text one token stands for ("" for special tokens).</summary>
    string TokenText(int id);

    /// <summary>True for start, end, pad and class tokens: they never appear in text.</summary>
    bool IsSpecial(int id);
}

/// <summary>
/// The tokenizer of a model, built once per loaded manifest: a <c>tokens.tokenizer</c> file when the model names
/// one (a Hugging Face tokenizer.json with a BPE model), else <c>tokens.vocabulary</c>. Image models have none.
/// </summary>
internal static class ArTokenizers
{
    // A manifest instance lives as long as its loaded model version: a reload gets a new manifest, so a new tokenizer.
    private static readonly ConditionalWeakTable<ModelManifest, IArTokenizer> Cache = [];

    /// <summary>The model's tokenizer, or null when it has neither vocabulary nor tokenizer file.</summary>
    public static IArTokenizer? For(ModelManifest manifest)
    {
        if (Cache.TryGetValue(manifest, out IArTokenizer? cached))
        {
            return cached;
        }

        TokensSpec? tokens = manifest.Tokens;
        if (tokens is null || (tokens.Tokenizer is null && tokens.Vocabulary is null))
        {
            return null;
        }

        IArTokenizer created = tokens.Tokenizer is { } file
            ? HuggingFaceBpeTokenizer.Load(manifest, Path.Combine(manifest.Directory, file))
            : new VocabularyTokenizer(tokens.Vocabulary!, SpecialIds(manifest, tokens.Vocabulary));
        return Cache.GetValue(manifest, _ => created);
    }

    /// <summary>bos, eos, class start tokens and "&lt;...&gt;" vocabulary entries (such as &lt;pad&gt;).</summary>
    internal static HashSet<int> SpecialIds(ModelManifest manifest, IReadOnlyList<string>? vocabulary)
    {
        TokensSpec t = manifest.Tokens!;
        var special = new HashSet<int>();
        if (t.BosTokenId is { } bos)
        {
            special.Add(bos);
        }

        if (t.EosTokenId is { } eos)
        {
            special.Add(eos);
        }

        if (t.ClassStartTokenOffset is { } offset && manifest.Conditioning is { } cond)
        {
            for (int c = 0; c < cond.NumClasses; c++)
            {
                special.Add(offset + c);
            }
        }

        if (vocabulary is not null)
        {
            for (int i = 0; i < vocabulary.Count; i++)
            {
                string s = vocabulary[i];
                if (s.Length > 2 && s[0] == '<' && s[^1] == '>')
                {
                    special.Add(i);
                }
            }
        }

        return special;
    }
}

/// <summary>
/// tokens.vocabulary: token id -> string. Text is tokenized by greedy longest match over the non-special strings
/// (what a character- or piece-level vocabulary expects); a character no entry covers is a 400 naming it.
/// </summary>
internal sealed class VocabularyTokenizer : IArTokenizer
{
    private readonly IReadOnlyList<string> _vocabulary;
    private readonly HashSet<int> _special;
    private readonly Dictionary<string, int> _byText = new(StringComparer.Ordinal);
    private readonly int _longest;

    public VocabularyTokenizer(IReadOnlyList<string> vocabulary, HashSet<int> special)
    {
        _vocabulary = vocabulary;
        _special = special;
        for (int i = 0; i < vocabulary.Count; i++)
        {
            // The first id of a duplicated string wins, so encoding is deterministic.
            if (!special.Contains(i) && vocabulary[i].Length > 0)
            {
                _byText.TryAdd(vocabulary[i], i);
                _longest = Math.Max(_longest, vocabulary[i].Length);
            }
        }
    }

    public int[] Encode(string text, string field)
    {
        var ids = new List<int>(text.Length);
        int pos = 0;
        while (pos < text.Length)
        {
            int found = -1, length = 0;
            for (int len = Math.Min(_longest, text.Length - pos); len >= 1; len--)
            {
                if (_byText.TryGetValue(text.Substring(pos, len), out int id))
                {
                    found = id;
                    length = len;
                    break;
                }
            }

            if (found < 0)
            {
                string shown = char.IsControl(text[pos]) || char.IsWhiteSpace(text[pos]) ? $"U+{(int)text[pos]:X4}" : text[pos].ToString();
                throw new RequestValidationException(field,
                    $"'{field}' has the character '{shown}' at position {pos}, which no token of this model's vocabulary covers; allowed: {Allowed()}.");
            }

            ids.Add(found);
            pos += length;
        }

        return [.. ids];
    }

    public string Decode(IReadOnlyList<int> ids)
    {
        var sb = new StringBuilder();
        foreach (int id in ids)
        {
            sb.Append(TokenText(id));
        }

        return sb.ToString();
    }

    public string TokenText(int id) => _special.Contains(id) || (uint)id >= (uint)_vocabulary.Count ? "" : _vocabulary[id];

    public bool IsSpecial(int id) => _special.Contains(id);

    private string Allowed()
    {
        IEnumerable<string> shown = _byText.Keys.Order(StringComparer.Ordinal).Take(64).Select(s => $"\"{s}\"");
        return string.Join(" ", shown) + (_byText.Count > 64 ? " ..." : "");
    }
}

/// <summary>
/// tokens.tokenizer: a Hugging Face <c>tokenizer.json</c> whose <c>model.type</c> is <c>BPE</c>, read into
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>. Supported: <c>model.vocab</c>, <c>model.merges</c> (either
/// "a b" strings or ["a","b"] pairs), <c>unk_token</c>, <c>continuing_subword_prefix</c>, <c>end_of_word_suffix</c>;
/// <c>pre_tokenizer</c> null, Whitespace, WhitespaceSplit or ByteLevel (GPT-2 style byte-level BPE);
/// <c>added_tokens</c> with special=true become special tokens (never produced from text, left out of decoded text).
/// Normalizers and post-processors are not applied; other model types (WordPiece, Unigram) are refused at load.
/// </summary>
internal sealed class HuggingFaceBpeTokenizer : IArTokenizer
{
    private readonly BpeTokenizer _bpe;
    private readonly HashSet<int> _special;
    private readonly int _vocabSize;

    private HuggingFaceBpeTokenizer(BpeTokenizer bpe, HashSet<int> special, int vocabSize)
    {
        _bpe = bpe;
        _special = special;
        _vocabSize = vocabSize;
    }

    public static HuggingFaceBpeTokenizer Load(ModelManifest manifest, string path)
    {
        string display = ManifestLoader.DisplayPath(manifest.Directory, Path.GetFileName(path));
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            JsonElement root = doc.RootElement;
            if (!root.TryGetProperty("model", out JsonElement model) || model.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException("has no \"model\" object");
            }

            string type = model.TryGetProperty("type", out JsonElement t) ? t.GetString() ?? "" : "BPE";
            if (type != "BPE")
            {
                throw new FormatException($"has model.type '{type}'; only BPE tokenizers are supported");
            }

            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (JsonProperty p in model.GetProperty("vocab").EnumerateObject())
            {
                vocab[p.Name] = p.Value.GetInt32();
            }

            var merges = new List<string>();
            if (model.TryGetProperty("merges", out JsonElement m) && m.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement merge in m.EnumerateArray())
                {
                    merges.Add(merge.ValueKind == JsonValueKind.Array
                        ? $"{merge[0].GetString()} {merge[1].GetString()}"
                        : merge.GetString() ?? throw new FormatException("has a merge that is neither a string nor a pair"));
                }
            }

            var specialTokens = new Dictionary<string, int>(StringComparer.Ordinal);
            var special = ArTokenizers.SpecialIds(manifest, null);
            if (root.TryGetProperty("added_tokens", out JsonElement added) && added.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement a in added.EnumerateArray())
                {
                    string content = a.GetProperty("content").GetString() ?? "";
                    int id = a.GetProperty("id").GetInt32();
                    vocab.TryAdd(content, id);
                    if (!a.TryGetProperty("special", out JsonElement s) || s.ValueKind != JsonValueKind.False)
                    {
                        specialTokens[content] = id;
                        special.Add(id);
                    }
                }
            }

            bool byteLevel = false;
            PreTokenizer? pre = null;
            if (root.TryGetProperty("pre_tokenizer", out JsonElement preNode) && preNode.ValueKind == JsonValueKind.Object)
            {
                string preType = preNode.GetProperty("type").GetString() ?? "";
                switch (preType)
                {
                    case "Whitespace":
                        pre = PreTokenizer.CreateWordOrNonWord(specialTokens);
                        break;
                    case "WhitespaceSplit":
                        pre = PreTokenizer.CreateWhiteSpace(specialTokens);
                        break;
                    case "ByteLevel":
                        byteLevel = true;
                        pre = RobertaPreTokenizer.Instance;
                        break;
                    default:
                        throw new FormatException($"has pre_tokenizer '{preType}'; supported: none, Whitespace, WhitespaceSplit, ByteLevel");
                }
            }

            var options = new BpeOptions(vocab)
            {
                Merges = merges,
                SpecialTokens = specialTokens.Count > 0 ? specialTokens : null,
                PreTokenizer = pre,
                ByteLevel = byteLevel,
                UnknownToken = Optional(model, "unk_token"),
                ContinuingSubwordPrefix = Optional(model, "continuing_subword_prefix"),
                EndOfWordSuffix = Optional(model, "end_of_word_suffix"),
            };
            int vocabSize = manifest.Tokens!.VocabSize;
            int maxId = vocab.Values.DefaultIfEmpty(0).Max();
            if (maxId >= vocabSize)
            {
                throw new FormatException($"has token id {maxId}, outside tokens.vocab_size {vocabSize}");
            }

            return new HuggingFaceBpeTokenizer(BpeTokenizer.Create(options), special, vocabSize);
        }
        catch (Exception e) when (e is FormatException or JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new ModelNotReadyException(manifest.Name, $"{display} {e.Message} (tokens.tokenizer must name a Hugging Face tokenizer.json with a BPE model).");
        }
    }

    public int[] Encode(string text, string field)
    {
        IReadOnlyList<EncodedToken> tokens = _bpe.EncodeToTokens(text, out _);
        var ids = new int[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            int id = tokens[i].Id;
            if (id < 0 || id >= _vocabSize)
            {
                throw new RequestValidationException(field, $"'{field}' has '{tokens[i].Value}', which this model's tokenizer cannot map to a token.");
            }

            ids[i] = id;
        }

        // BPE without an unknown token drops what it cannot encode; refuse instead of silently losing text.
        string roundTrip = _bpe.Decode(ids) ?? "";
        if (_bpe.UnknownToken is null && !SameText(roundTrip, text))
        {
            int at = FirstDifference(roundTrip, text);
            throw new RequestValidationException(field, $"'{field}' has the character '{(at < text.Length ? text[at] : ' ')}' at position {at}, which no token of this model's tokenizer covers.");
        }

        return ids;
    }

    public string Decode(IReadOnlyList<int> ids) => _bpe.Decode(ids.Where(id => !_special.Contains(id))) ?? "";

    public string TokenText(int id) => _special.Contains(id) ? "" : _bpe.Decode([id]) ?? "";

    public bool IsSpecial(int id) => _special.Contains(id);

    private static string? Optional(JsonElement model, string name)
        => model.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    // Whitespace pre-tokenizers drop spaces, so compare the text without them.
    private static bool SameText(string a, string b) => Strip(a) == Strip(b);

    private static string Strip(string s) => string.Concat(s.Where(c => !char.IsWhiteSpace(c)));

    private static int FirstDifference(string decoded, string text)
    {
        int i = 0, j = 0;
        while (j < text.Length)
        {
            if (char.IsWhiteSpace(text[j]))
            {
                j++;
                continue;
            }

            while (i < decoded.Length && char.IsWhiteSpace(decoded[i]))
            {
                i++;
            }

            if (i >= decoded.Length || decoded[i] != text[j])
            {
                return j;
            }

            i++;
            j++;
        }

        return text.Length;
    }
}
