using System.Text.Json;
using GenService.Generation.TextToImage;
using GenService.Inference.Manifest;

namespace GenService.Generation.Tests.TextToImage;

/// <summary>
/// ClipTokenizer against openai's CLIP tokenizer: ids, cleaned text, NFC and lower-casing from
/// Reference/clip_reference.json, written by Reference/make_clip_reference.py (models/training/clip_bpe.py, a
/// transcription of openai's simple_tokenizer.py). Vocabularies: the real CLIP one, read from
/// ../shared/fixtures/tokenizers/clip (beside the repository; never copied in), and a tiny one the script made
/// (max length 16, pad "!"), both as vocab.json + merges.txt and as tokenizer.json.
/// </summary>
public sealed class ClipTokenizerTests
{
    private static readonly Lazy<ClipTokenizer> Real = new(() => ClipTokenizer.Load(ClipFixtures.RealClipDirectory));
    private static readonly Lazy<ClipTokenizer> Tiny = new(() => ClipTokenizer.Load(ClipFixtures.TinyDirectory));
    private static readonly Lazy<ClipTokenizer> TinyJson = new(() => ClipTokenizer.Load(ClipFixtures.TinyJsonDirectory));

    public static TheoryData<string> Vocabularies => ["real", "tiny", "tiny-json"];

    private static ClipTokenizer For(string vocabulary) => vocabulary switch
    {
        "real" => Real.Value,
        "tiny" => Tiny.Value,
        _ => TinyJson.Value,
    };

    private static JsonElement Section(string vocabulary) => ClipFixtures.Reference.GetProperty(vocabulary == "real" ? "real" : "tiny");

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void Special_ids_lengths_and_vocabulary_size_are_the_reference_ones(string vocabulary)
    {
        ClipTokenizer tok = For(vocabulary);
        JsonElement expected = Section(vocabulary);

        Assert.Equal(expected.GetProperty("max_length").GetInt32(), tok.MaxLength);
        Assert.Equal(expected.GetProperty("bos").GetInt32(), tok.BosId);
        Assert.Equal(expected.GetProperty("eos").GetInt32(), tok.EosId);
        Assert.Equal(expected.GetProperty("pad").GetInt32(), tok.PadId);
        Assert.Equal(expected.GetProperty("vocab_size").GetInt32(), tok.VocabSize);
    }

    [Fact]
    public void The_real_vocabulary_is_clips_and_the_tiny_one_pads_with_a_different_token()
    {
        // The fixture's numbers are openai's; these pin what the fixture itself says (CLIP: 49,408 tokens, 77 ids).
        Assert.Equal((77, 49406, 49407, 49407, 49408), (Real.Value.MaxLength, Real.Value.BosId, Real.Value.EosId, Real.Value.PadId, Real.Value.VocabSize));
        Assert.Equal(16, Tiny.Value.MaxLength);
        Assert.NotEqual(Tiny.Value.EosId, Tiny.Value.PadId);
    }

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void Every_prompt_gives_openais_cleaned_text_and_ids(string vocabulary)
    {
        ClipTokenizer tok = For(vocabulary);
        var failures = new List<string>();
        int count = 0;
        foreach (JsonElement c in Section(vocabulary).GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            string clean = c.GetProperty("clean").GetString()!;
            int[] unpadded = Ints(c.GetProperty("unpadded"));
            int[] ids = Ints(c.GetProperty("ids"));
            count++;

            if (ClipTokenizer.Clean(text) != clean)
            {
                failures.Add($"clean {Show(text)}: got {Show(ClipTokenizer.Clean(text))}, want {Show(clean)}");
            }

            int[] gotUnpadded = [.. tok.EncodeUnpadded(text)];
            if (!gotUnpadded.SequenceEqual(unpadded))
            {
                failures.Add($"unpadded {Show(text)}: got [{string.Join(",", gotUnpadded)}], want [{string.Join(",", unpadded)}]");
            }

            int[] got = tok.Encode(text);
            if (!got.SequenceEqual(ids))
            {
                failures.Add($"ids {Show(text)}: got [{string.Join(",", got)}], want [{string.Join(",", ids)}]");
            }
        }

        Assert.True(count >= 25, $"the fixture has {count} prompts");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void The_tokenizer_json_form_gives_the_same_ids_as_vocab_and_merges()
    {
        foreach (JsonElement c in Section("tiny").GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.Equal(Tiny.Value.Encode(text), TinyJson.Value.Encode(text));
        }
    }

    [Fact]
    public void A_long_prompt_is_cut_and_still_ends_with_eos()
    {
        ClipTokenizer tok = Real.Value;
        string prompt = string.Join(", ", Enumerable.Repeat("a red apple on a wooden table", 20));
        IReadOnlyList<int> body = tok.EncodeUnpadded(prompt);
        Assert.True(body.Count > tok.MaxLength, $"{body.Count} ids");

        int[] ids = tok.Encode(prompt);

        Assert.Equal(tok.MaxLength, ids.Length);
        Assert.Equal(tok.BosId, ids[0]);
        Assert.Equal(tok.EosId, ids[^1]);
        Assert.Equal(body.Take(tok.MaxLength - 2), ids[1..^1]);
    }

    [Fact]
    public void Short_prompts_are_padded_with_the_configured_pad_token()
    {
        ClipTokenizer tok = Tiny.Value;
        int[] ids = tok.Encode("a cat");
        int n = tok.EncodeUnpadded("a cat").Count;

        Assert.Equal(tok.BosId, ids[0]);
        Assert.Equal(tok.EosId, ids[n + 1]);
        Assert.All(ids[(n + 2)..], id => Assert.Equal(tok.PadId, id));
        Assert.Equal([tok.BosId, tok.EosId, .. Enumerable.Repeat(tok.PadId, tok.MaxLength - 2)], tok.Encode(""));
    }

    [Fact]
    public void Combining_accents_tokenize_as_the_precomposed_letters()
    {
        ClipTokenizer tok = Real.Value;

        Assert.Equal(tok.Encode("café über naïve"), tok.Encode("cafe\u0301 u\u0308ber nai\u0308ve"));
        Assert.NotEqual(tok.Encode("cafe"), tok.Encode("café"));
    }

    [Fact]
    public void Nfc_matches_unicodedata_for_every_decomposable_code_point()
    {
        JsonElement unicode = ClipFixtures.Reference.GetProperty("unicode");
        Assert.Equal(UnicodeNfc.UnicodeVersion, unicode.GetProperty("version").GetString());
        foreach (JsonElement c in unicode.GetProperty("nfc").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            string want = c.GetProperty("nfc").GetString()!;
            string got = UnicodeNfc.Normalize(text);
            Assert.True(want == got, $"NFC of {Show(text[..Math.Min(40, text.Length)])}: first difference at {FirstDifference(got, want)}");
        }
    }

    [Fact]
    public void Lower_casing_matches_pythons_str_lower()
    {
        foreach (JsonElement c in ClipFixtures.Reference.GetProperty("unicode").GetProperty("lower").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            string want = c.GetProperty("lower").GetString()!;
            string got = ClipTokenizer.PythonLower(text);
            int at = FirstDifference(got, want);
            Assert.True(want == got, $"lower of {Show(text[..Math.Min(40, text.Length)])}: first difference at {at}: got {Show(got[at..Math.Min(at + 6, got.Length)])}, want {Show(want[at..Math.Min(at + 6, want.Length)])}");
        }
    }

    [Fact]
    public void Concurrent_callers_get_the_same_ids_as_one_caller()
    {
        ClipTokenizer tok = Real.Value;
        string[] prompts = [.. Section("real").GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("text").GetString()!)];
        int[][] expected = [.. prompts.Select(tok.Encode)];

        var results = new int[prompts.Length * 8][];
        Parallel.For(0, results.Length, i => results[i] = tok.Encode(prompts[i % prompts.Length]));

        for (int i = 0; i < results.Length; i++)
        {
            Assert.Equal(expected[i % prompts.Length], results[i]);
        }
    }

    [Fact]
    public void Missing_merges_names_the_file()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "no-merges", d => File.Delete(Path.Combine(d, "merges.txt")));
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.StartsWith("no-merges/tokenizer/merges.txt: file not found", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_vocab_json_names_the_file()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "bad-json", d => File.WriteAllText(Path.Combine(d, "vocab.json"), "{\"a\": 1,"));
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.StartsWith("bad-json/tokenizer/vocab.json: not valid JSON", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pad_token_outside_the_vocabulary_names_the_file_and_field()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "bad-pad", d => File.WriteAllText(Path.Combine(d, "tokenizer_config.json"),
            """{"model_max_length": 16, "pad_token": "<x>"}"""));
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.Equal("bad-pad/tokenizer/tokenizer_config.json: pad_token '<x>' is not in the vocabulary.", e.Message);
    }

    [Fact]
    public void A_merge_of_unknown_tokens_names_the_line()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "bad-merge", d => File.AppendAllText(Path.Combine(d, "merges.txt"), "zq xw\n"));
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.Matches(@"^bad-merge/tokenizer/merges\.txt: line \d+: merge 'zq xw' uses 'zq', which is not in vocab\.json\.$", e.Message);
    }

    [Fact]
    public void A_vocabulary_without_every_byte_token_is_refused()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "no-byte", d =>
        {
            string path = Path.Combine(d, "vocab.json");
            var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(path))!;
            vocab.Remove("q</w>");
            File.WriteAllText(path, JsonSerializer.Serialize(vocab));
        });
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.StartsWith("no-byte/tokenizer/vocab.json: has no token 'q</w>' for byte 0x71", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model_max_length": 1e30}""", "model_max_length")]
    [InlineData("""{"model_max_length": 1}""", "model_max_length")]
    [InlineData("""{"bos_token": 5}""", "bos_token")]
    [InlineData("""{"eos_token": {"content": "<nope>"}}""", "eos_token '<nope>' is not in the vocabulary")]
    [InlineData("""{"do_lower_case": "yes"}""", "do_lower_case")]
    [InlineData("""{"model_max_length": 16,""", "not valid JSON")]
    public void A_broken_tokenizer_config_names_the_field(string json, string field)
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "bad-config", d => File.WriteAllText(Path.Combine(d, "tokenizer_config.json"), json));
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.StartsWith("bad-config/tokenizer/tokenizer_config.json: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(field, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_config_the_clip_defaults_apply()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "no-config", d => File.Delete(Path.Combine(d, "tokenizer_config.json")));
        ClipTokenizer tok = ClipTokenizer.Load(dir.Path);

        Assert.Equal(ClipTokenizer.DefaultMaxLength, tok.MaxLength);
        Assert.Equal(Tiny.Value.EosId, tok.PadId);
        Assert.Equal(Tiny.Value.EncodeUnpadded("a photo of a cat"), tok.EncodeUnpadded("a photo of a cat"));
    }

    [Theory]
    [InlineData("\"type\": \"BPE\"", "\"type\": \"WordPiece\"", "model.type: 'WordPiece' is not BPE")]
    [InlineData("\"end_of_word_suffix\": \"</w>\"", "\"end_of_word_suffix\": \"\"", "model.end_of_word_suffix")]
    [InlineData("\"merges\": [[", "\"merges\": [[\"zq\", \"xw\"], [", "model.merges[0]: merge 'zq xw' uses 'zq'")]
    public void A_broken_tokenizer_json_names_the_field(string find, string replace, string expected)
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyJsonDirectory, "bad-tokenizer-json", d =>
        {
            string path = Path.Combine(d, "tokenizer.json");
            string text = File.ReadAllText(path);
            Assert.Contains(find, text, StringComparison.Ordinal);
            File.WriteAllText(path, text.Replace(find, replace, StringComparison.Ordinal));
        });
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.StartsWith("bad-tokenizer-json/tokenizer/tokenizer.json: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_folder_names_the_files_it_looks_for()
    {
        using TokenizerCopy dir = ClipFixtures.BrokenCopy(ClipFixtures.TinyDirectory, "empty", d =>
        {
            foreach (string f in Directory.GetFiles(d))
            {
                File.Delete(f);
            }
        });
        var e = Assert.Throws<ManifestException>(() => ClipTokenizer.Load(dir.Path));
        Assert.StartsWith("empty/tokenizer/vocab.json: file not found", e.Message, StringComparison.Ordinal);
        Assert.Contains("tokenizer.json", e.Message, StringComparison.Ordinal);
    }

    private static int[] Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];

    private static string Show(string s) => JsonSerializer.Serialize(s);

    private static int FirstDifference(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }

        return n;
    }
}
