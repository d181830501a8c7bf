using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using GenService.Inference.Manifest;
using Microsoft.ML.Tokenizers;

namespace GenService.Generation.TextToImage;

/// <summary>
/// CLIP's tokenizer, as a Stable Diffusion text encoder expects its input: a prompt becomes exactly
/// <see cref="MaxLength"/> ids, <c>[bos] + bpe_ids[..MaxLength-2] + [eos] + [pad]...</c>, which is what
/// StableDiffusionPipeline gets from Hugging Face's CLIPTokenizer called with <c>padding="max_length",
/// truncation=True</c> (a long prompt is cut and still ends with eos).
/// <para>
/// The ids are openai's (CLIP's <c>simple_tokenizer.py</c>; models/training/clip_bpe.py is the Python reference the
/// tests compare with): the text is cleaned (NFC, HTML entities decoded twice, whitespace collapsed, trimmed,
/// lower-cased as Python's <c>str.lower</c> does), split by CLIP's pattern
/// <c>&lt;|startoftext|&gt;|&lt;|endoftext|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// (case-insensitive), each piece's UTF-8 bytes mapped to characters by GPT-2's bytes_to_unicode, then byte-pair
/// merged by rank with "&lt;/w&gt;" on the last symbol. Every byte has a base token, so no text is ever lost to
/// an unknown token.
/// </para>
/// <para>
/// The merging is Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (byte-level, end-of-word suffix "&lt;/w&gt;",
/// the two specials as special tokens), which gives openai's ids exactly once it is fed CLIP's pieces; it also
/// keeps a bounded word cache (10,000 words of up to 15 characters). What the library does not do the CLIP way is
/// done here: the cleaning, and the splitting, which is a hand-written scanner over code points because .NET's
/// Regex matches \p{L} per UTF-16 unit, so a letter outside the BMP (𝓗, 𠀀) would split a word that Python's
/// regex module keeps whole.
/// </para>
/// <para>
/// Differences from openai's cleaning, all on text no prompt writer types on purpose: ftfy.fix_text is NFC only
/// here (no mojibake repair, no curly-quote uncurling, no ligature or full-width folding, no removal of control
/// characters or terminal escapes); HTML entities are .NET's <see cref="WebUtility.HtmlDecode(string)"/>, which
/// knows HTML 4's names and needs the ';' where Python's html.unescape knows HTML 5's (and "&amp;amp" without
/// ';'); NFC and Python's lower-casing are Unicode 14 (UnicodeNfc.Tables.cs), the letter/number classes .NET's.
/// Hugging Face's CLIPTokenizer does not decode HTML entities at all; this one follows openai.
/// </para>
/// </summary>
internal sealed class ClipTokenizer
{
    public const int DefaultMaxLength = 77;
    public const string StartOfText = "<|startoftext|>";
    public const string EndOfText = "<|endoftext|>";
    private const string EndOfWord = "</w>";

    private readonly BpeTokenizer _bpe;

    private ClipTokenizer(BpeTokenizer bpe, int maxLength, int bosId, int eosId, int padId, int vocabSize)
    {
        _bpe = bpe;
        MaxLength = maxLength;
        BosId = bosId;
        EosId = eosId;
        PadId = padId;
        VocabSize = vocabSize;
    }

    /// <summary>Ids per prompt (tokenizer_config.json's model_max_length, 77 by default).</summary>
    public int MaxLength { get; }

    public int BosId { get; }

    public int EosId { get; }

    public int PadId { get; }

    /// <summary>Largest token id + 1: the text encoder's embedding table must have at least this many rows.</summary>
    public int VocabSize { get; }

    /// <summary>
    /// Reads a diffusers/Optimum <c>tokenizer/</c> folder: <c>vocab.json</c> + <c>merges.txt</c> (what diffusers'
    /// CLIPTokenizer reads; used when both are there), else a Hugging Face <c>tokenizer.json</c> of a CLIP tokenizer;
    /// and <c>tokenizer_config.json</c> when present.
    /// </summary>
    /// <exception cref="ManifestException">A file is missing or broken; the message names the file and the field.</exception>
    public static ClipTokenizer Load(string tokenizerDirectory)
    {
        string directory = Path.GetFullPath(tokenizerDirectory);
        string Display(string file) => ManifestLoader.DisplayPath(directory, file);

        Dictionary<string, int> vocab;
        List<string> merges;
        string vocabDisplay;
        if (File.Exists(Path.Combine(directory, "vocab.json")) || File.Exists(Path.Combine(directory, "merges.txt")) ||
            !File.Exists(Path.Combine(directory, "tokenizer.json")))
        {
            vocabDisplay = Display("vocab.json");
            vocab = ReadVocab(Path.Combine(directory, "vocab.json"), vocabDisplay);
            merges = ReadMerges(Path.Combine(directory, "merges.txt"), Display("merges.txt"), vocab, vocabDisplay);
        }
        else
        {
            vocabDisplay = Display("tokenizer.json");
            (vocab, merges) = ReadTokenizerJson(Path.Combine(directory, "tokenizer.json"), vocabDisplay);
        }

        CheckByteTokens(vocab, vocabDisplay);
        Config config = ReadConfig(Path.Combine(directory, "tokenizer_config.json"), Display("tokenizer_config.json"), vocab);

        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string special in (ReadOnlySpan<string>)[StartOfText, EndOfText])
        {
            if (vocab.TryGetValue(special, out int id))
            {
                specials[special] = id;
            }
        }

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges,
                SpecialTokens = specials,
                PreTokenizer = ClipPreTokenizer.Instance,
                ByteLevel = true,
                EndOfWordSuffix = EndOfWord,
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new ManifestException($"{vocabDisplay}: not a usable BPE vocabulary: {e.Message}", e);
        }

        int vocabSize = vocab.Values.Max() + 1;
        return new ClipTokenizer(bpe, config.MaxLength, config.Bos, config.Eos, config.Pad, vocabSize);
    }

    /// <summary>Exactly <see cref="MaxLength"/> ids: bos, the prompt's ids (cut to MaxLength - 2), eos, then pad.</summary>
    public int[] Encode(string text)
    {
        IReadOnlyList<int> body = EncodeUnpadded(text);
        var ids = new int[MaxLength];
        ids[0] = BosId;
        int n = Math.Min(body.Count, MaxLength - 2);
        for (int i = 0; i < n; i++)
        {
            ids[i + 1] = body[i];
        }

        ids[n + 1] = EosId;
        Array.Fill(ids, PadId, n + 2, MaxLength - n - 2);
        return ids;
    }

    /// <summary>The prompt's ids without bos, eos or padding, and not cut (to say how long a prompt is).</summary>
    public IReadOnlyList<int> EncodeUnpadded(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string clean = Clean(text);
        return clean.Length == 0 ? [] : _bpe.EncodeToIds(clean, considerPreTokenization: true, considerNormalization: false);
    }

    /// <summary>
    /// openai's <c>whitespace_clean(basic_clean(text)).lower()</c>: NFC (ftfy's part that applies to ordinary text),
    /// HTML entities decoded twice, whitespace runs to one space, trimmed, lower-cased like Python's str.lower.
    /// </summary>
    internal static string Clean(string text)
    {
        string s = UnicodeNfc.Normalize(text);
        if (s.Contains('&'))
        {
            s = WebUtility.HtmlDecode(WebUtility.HtmlDecode(s));
        }

        return PythonLower(CollapseWhitespace(s));
    }

    /// <summary>
    /// Python's str.strip() (whose whitespace also has U+001C..U+001F), then regex's \s+ (White_Space) to " ".
    /// </summary>
    private static string CollapseWhitespace(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsPythonSpace(s[start]))
        {
            start++;
        }

        while (end > start && IsPythonSpace(s[end - 1]))
        {
            end--;
        }

        var sb = new StringBuilder(end - start);
        bool pendingSpace = false;
        for (int i = start; i < end; i++)
        {
            char c = s[i];
            if (char.IsWhiteSpace(c))
            {
                pendingSpace = true;
                continue;
            }

            if (pendingSpace)
            {
                sb.Append(' ');
                pendingSpace = false;
            }

            sb.Append(c);
        }

        return sb.ToString();
    }

    private static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary>
    /// Python's str.lower: full lower-case mapping, which differs from .NET's per-character invariant mapping in
    /// two places: 'İ' (U+0130) becomes "i̇" (i + U+0307), and a capital sigma at the end of a word becomes 'ς'.
    /// </summary>
    internal static string PythonLower(string s)
    {
        bool ascii = true;
        foreach (char c in s)
        {
            if (c >= 0x80)
            {
                ascii = false;
                break;
            }
        }

        if (ascii)
        {
            return s.ToLowerInvariant();
        }

        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length;)
        {
            if (Rune.DecodeFromUtf16(s.AsSpan(i), out Rune r, out int used) != System.Buffers.OperationStatus.Done)
            {
                sb.Append(s[i]); // a lone surrogate stays as it is
                i++;
                continue;
            }

            if (r.Value == 0x130)
            {
                sb.Append("i\u0307");
            }
            else if (r.Value == 0x3A3)
            {
                sb.Append(IsFinalSigma(s, i, used) ? 'ς' : 'σ');
            }
            else
            {
                sb.Append(Rune.ToLowerInvariant(r));
            }

            i += used;
        }

        return sb.ToString();
    }

    /// <summary>Unicode's Final_Sigma: a cased letter before (skipping case-ignorables), none after.</summary>
    private static bool IsFinalSigma(string s, int index, int length)
    {
        int j = index;
        bool casedBefore = false;
        while (j > 0)
        {
            Rune.DecodeLastFromUtf16(s.AsSpan(0, j), out Rune r, out int used);
            j -= used;
            if (!IsCaseIgnorable(r))
            {
                casedBefore = IsCased(r);
                break;
            }
        }

        if (!casedBefore)
        {
            return false;
        }

        for (int k = index + length; k < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(k), out Rune r, out int used);
            k += used;
            if (!IsCaseIgnorable(r))
            {
                return !IsCased(r);
            }
        }

        return true;
    }

    private static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
        || Rune.ToLowerInvariant(r) != r || Rune.ToUpperInvariant(r) != r;

    private static bool IsCaseIgnorable(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark
        or UnicodeCategory.EnclosingMark or UnicodeCategory.Format or UnicodeCategory.ModifierLetter
        or UnicodeCategory.ModifierSymbol
        // Word_Break MidLetter, MidNumLet and Single_Quote.
        || r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
            or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;

    private static Dictionary<string, int> ReadVocab(string path, string display)
    {
        if (!File.Exists(path))
        {
            throw new ManifestException($"{display}: file not found (a CLIP tokenizer folder has vocab.json + merges.txt, or tokenizer.json).");
        }

        using JsonDocument doc = ParseJson(path, display);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new ManifestException($"{display}: must be a JSON object of token -> id.");
        }

        return ReadVocabObject(doc.RootElement, display, "");
    }

    private static Dictionary<string, int> ReadVocabObject(JsonElement obj, string display, string field)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty p in obj.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
            {
                throw new ManifestException($"{display}: {field}\"{p.Name}\": the id must be a non-negative integer, got {p.Value.GetRawText()}.");
            }

            vocab[p.Name] = id;
        }

        if (vocab.Count == 0)
        {
            throw new ManifestException($"{display}: {(field.Length > 0 ? field.TrimEnd('.') + " is" : "is")} empty.");
        }

        return vocab;
    }

    private static List<string> ReadMerges(string path, string display, Dictionary<string, int> vocab, string vocabDisplay)
    {
        if (!File.Exists(path))
        {
            throw new ManifestException($"{display}: file not found (a CLIP tokenizer folder has vocab.json + merges.txt, or tokenizer.json).");
        }

        string[] lines = File.ReadAllLines(path, Encoding.UTF8);
        var merges = new List<string>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if ((i == 0 && line.StartsWith("#version", StringComparison.Ordinal)) || line.Length == 0)
            {
                continue;
            }

            string[] parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            {
                throw new ManifestException($"{display}: line {i + 1}: a merge is two tokens separated by one space, got '{line}'.");
            }

            CheckMerge(parts[0], parts[1], vocab, $"{display}: line {i + 1}", vocabDisplay);
            merges.Add(line);
        }

        return merges;
    }

    private static void CheckMerge(string left, string right, Dictionary<string, int> vocab, string where, string vocabDisplay)
    {
        foreach (string token in (ReadOnlySpan<string>)[left, right, left + right])
        {
            if (!vocab.ContainsKey(token))
            {
                throw new ManifestException($"{where}: merge '{left} {right}' uses '{token}', which is not in {Path.GetFileName(vocabDisplay)}.");
            }
        }
    }

    private static (Dictionary<string, int> Vocab, List<string> Merges) ReadTokenizerJson(string path, string display)
    {
        using JsonDocument doc = ParseJson(path, display);
        JsonElement root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out JsonElement model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new ManifestException($"{display}: model: missing (a Hugging Face tokenizer.json has a \"model\" object).");
        }

        string? type = model.TryGetProperty("type", out JsonElement t) ? t.GetString() : null;
        if (type != "BPE")
        {
            throw new ManifestException($"{display}: model.type: '{type ?? "(missing)"}' is not BPE; a CLIP tokenizer is a byte-level BPE.");
        }

        string? suffix = model.TryGetProperty("end_of_word_suffix", out JsonElement s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        if (suffix != EndOfWord)
        {
            throw new ManifestException($"{display}: model.end_of_word_suffix: '{suffix ?? "(missing)"}', a CLIP tokenizer has \"{EndOfWord}\".");
        }

        if (!model.TryGetProperty("vocab", out JsonElement vocabNode) || vocabNode.ValueKind != JsonValueKind.Object)
        {
            throw new ManifestException($"{display}: model.vocab: missing or not an object of token -> id.");
        }

        Dictionary<string, int> vocab = ReadVocabObject(vocabNode, display, "model.vocab.");
        if (root.TryGetProperty("added_tokens", out JsonElement added) && added.ValueKind == JsonValueKind.Array)
        {
            int index = 0;
            foreach (JsonElement a in added.EnumerateArray())
            {
                if (a.ValueKind != JsonValueKind.Object ||
                    !a.TryGetProperty("content", out JsonElement content) || content.ValueKind != JsonValueKind.String ||
                    !a.TryGetProperty("id", out JsonElement id) || !id.TryGetInt32(out int value) || value < 0)
                {
                    throw new ManifestException($"{display}: added_tokens[{index}]: needs a string \"content\" and a non-negative integer \"id\".");
                }

                vocab.TryAdd(content.GetString()!, value);
                index++;
            }
        }

        if (!model.TryGetProperty("merges", out JsonElement mergesNode) || mergesNode.ValueKind != JsonValueKind.Array)
        {
            throw new ManifestException($"{display}: model.merges: missing or not an array.");
        }

        var merges = new List<string>(mergesNode.GetArrayLength());
        int i = 0;
        foreach (JsonElement m in mergesNode.EnumerateArray())
        {
            string? left = null, right = null;
            if (m.ValueKind == JsonValueKind.String)
            {
                string[] parts = m.GetString()!.Split(' ');
                if (parts.Length == 2)
                {
                    (left, right) = (parts[0], parts[1]);
                }
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 &&
                     m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                (left, right) = (m[0].GetString(), m[1].GetString());
            }

            if (string.IsNullOrEmpty(left) || string.IsNullOrEmpty(right) || left.Contains(' ') || right.Contains(' '))
            {
                throw new ManifestException($"{display}: model.merges[{i}]: a merge is \"a b\" or [\"a\", \"b\"], got {m.GetRawText()}.");
            }

            CheckMerge(left, right, vocab, $"{display}: model.merges[{i}]", display);
            merges.Add($"{left} {right}");
            i++;
        }

        return (vocab, merges);
    }

    /// <summary>Every UTF-8 byte must have its base token, alone and word-final: then no text is ever unknown.</summary>
    private static void CheckByteTokens(Dictionary<string, int> vocab, string display)
    {
        for (int b = 0; b < 256; b++)
        {
            string ch = ByteToUnicode[b].ToString();
            foreach (string token in (ReadOnlySpan<string>)[ch, ch + EndOfWord])
            {
                if (!vocab.ContainsKey(token))
                {
                    throw new ManifestException($"{display}: has no token '{token}' for byte 0x{b:X2}; a CLIP vocabulary has every byte-level character, alone and with \"{EndOfWord}\".");
                }
            }
        }
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards.</summary>
    private static readonly char[] ByteToUnicode = BuildByteToUnicode();

    private static char[] BuildByteToUnicode()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + next++);
        }

        return map;
    }

    private sealed record Config(int MaxLength, int Bos, int Eos, int Pad);

    private static Config ReadConfig(string path, string display, Dictionary<string, int> vocab)
    {
        int maxLength = DefaultMaxLength;
        string bos = StartOfText, eos = EndOfText;
        string? pad = null;
        if (File.Exists(path))
        {
            using JsonDocument doc = ParseJson(path, display);
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ManifestException($"{display}: the top level must be a JSON object.");
            }

            if (root.TryGetProperty("model_max_length", out JsonElement m) && m.ValueKind != JsonValueKind.Null)
            {
                // Hugging Face writes 1e30 for "no limit"; a CLIP text encoder has a fixed number of positions.
                if (m.ValueKind != JsonValueKind.Number || !m.TryGetInt32(out maxLength) || maxLength is < 2 or > 4096)
                {
                    throw new ManifestException($"{display}: model_max_length: {m.GetRawText()} is not a length from 2 to 4096 (CLIP's is 77).");
                }
            }

            bos = Token(root, "bos_token", display) ?? bos;
            eos = Token(root, "eos_token", display) ?? eos;
            pad = Token(root, "pad_token", display);
            string? unk = Token(root, "unk_token", display);
            if (unk is not null && !vocab.ContainsKey(unk))
            {
                throw new ManifestException($"{display}: unk_token '{unk}' is not in the vocabulary.");
            }

            // Read for its type only: Hugging Face's CLIPTokenizer (slow and fast) lower-cases whatever it says.
            if (root.TryGetProperty("do_lower_case", out JsonElement lower) && lower.ValueKind is not (JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
            {
                throw new ManifestException($"{display}: do_lower_case: must be true or false, got {lower.GetRawText()}.");
            }
        }

        pad ??= eos;
        return new Config(maxLength, Id(bos, "bos_token"), Id(eos, "eos_token"), Id(pad, "pad_token"));

        int Id(string token, string field) => vocab.TryGetValue(token, out int id)
            ? id
            : throw new ManifestException($"{display}: {field} '{token}' is not in the vocabulary{(File.Exists(path) ? "" : " (the CLIP default; the file is absent)")}.");
    }

    /// <summary>A special token: a string, or an object with "content" (Hugging Face's AddedToken); null when absent.</summary>
    private static string? Token(JsonElement root, string field, string display)
    {
        if (!root.TryGetProperty(field, out JsonElement v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind == JsonValueKind.String)
        {
            return v.GetString();
        }

        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out JsonElement c) && c.ValueKind == JsonValueKind.String)
        {
            return c.GetString();
        }

        throw new ManifestException($"{display}: {field}: must be a string or an object with a string \"content\", got {v.GetRawText()}.");
    }

    private static JsonDocument ParseJson(string path, string display)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ManifestException($"{display}: not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>
    /// CLIP's split of cleaned text, the pattern in the class summary evaluated per code point. Alternatives are
    /// tried in the pattern's order at each position; case-insensitivity only matters for 'ſ' (U+017F), the one
    /// lower-case character whose simple case folding is an ASCII letter of the literals ('s').
    /// </summary>
    private sealed class ClipPreTokenizer : PreTokenizer
    {
        public static readonly ClipPreTokenizer Instance = new();

        private static readonly string[] Literals = [StartOfText, EndOfText, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => PreTokenize(text.AsSpan());

        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text)
        {
            var pieces = new List<(int, int)>(text.Length / 3 + 1);
            int i = 0;
            while (i < text.Length)
            {
                Rune r = RuneAt(text, i, out int used);
                if (Rune.IsWhiteSpace(r))
                {
                    i += used;
                    continue;
                }

                int start = i;
                int literal = MatchLiteral(text[i..]);
                if (literal > 0)
                {
                    i += literal;
                }
                else if (Rune.IsLetter(r))
                {
                    i += used;
                    while (i < text.Length && Rune.IsLetter(RuneAt(text, i, out used)))
                    {
                        i += used;
                    }
                }
                else if (Rune.IsNumber(r))
                {
                    i += used;
                }
                else
                {
                    i += used;
                    while (i < text.Length)
                    {
                        Rune next = RuneAt(text, i, out used);
                        if (Rune.IsWhiteSpace(next) || Rune.IsLetter(next) || Rune.IsNumber(next))
                        {
                            break;
                        }

                        i += used;
                    }
                }

                pieces.Add((start, i - start));
            }

            return pieces;
        }

        private static Rune RuneAt(ReadOnlySpan<char> text, int i, out int used)
        {
            if (Rune.DecodeFromUtf16(text[i..], out Rune r, out used) != System.Buffers.OperationStatus.Done)
            {
                // A lone surrogate: Python's regex sees a code point of category Cs (neither letter, number nor space).
                return Rune.ReplacementChar;
            }

            return r;
        }

        /// <summary>Length of the first literal alternative that matches at the start of <paramref name="text"/>, else 0.</summary>
        private static int MatchLiteral(ReadOnlySpan<char> text)
        {
            if (text[0] is not ('<' or '\''))
            {
                return 0;
            }

            foreach (string literal in Literals)
            {
                if (literal.Length <= text.Length && FoldedEquals(text[..literal.Length], literal))
                {
                    return literal.Length;
                }
            }

            return 0;
        }

        private static bool FoldedEquals(ReadOnlySpan<char> text, string literal)
        {
            for (int i = 0; i < literal.Length; i++)
            {
                char c = text[i] == 'ſ' ? 's' : text[i];
                if (c != literal[i])
                {
                    return false;
                }
            }

            return true;
        }
    }
}
