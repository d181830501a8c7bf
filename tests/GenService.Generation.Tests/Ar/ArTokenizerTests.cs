using GenService.Generation.Ar;
using GenService.Inference;
using GenService.Inference.Manifest;

namespace GenService.Generation.Tests.Ar;

/// <summary>Prompt tokenization: vocabulary longest match, and a Hugging Face BPE tokenizer.json the test writes.</summary>
public sealed class ArTokenizerTests
{
    private static ModelManifest Manifest(string directory, TokensSpec tokens) => new()
    {
        Name = "t",
        Family = ModelFamily.Ar,
        Output = new OutputSpec { Kind = "text", Shape = [tokens.MaxLength] },
        Graphs = new Dictionary<string, GraphSpec> { ["decoder"] = new() { File = "decoder.onnx" } },
        Tokens = tokens,
        Directory = directory,
    };

    [Fact]
    public void Vocabulary_is_matched_longest_first_and_specials_are_left_out()
    {
        string[] vocab = ["<s>", "</s>", "a", "b", "ab", "abc", " "];
        IArTokenizer tok = ArTokenizers.For(Manifest("/nowhere", new TokensSpec { VocabSize = 7, MaxLength = 16, BosTokenId = 0, EosTokenId = 1, Vocabulary = vocab }))!;

        Assert.Equal([5, 6, 4, 2], tok.Encode("abc aba", "prompt"));
        Assert.Equal("abc aba", tok.Decode([0, 5, 6, 4, 2, 1]));
        Assert.Equal("", tok.TokenText(1));
        Assert.True(tok.IsSpecial(0));

        // "<s>" in text is not the start token: it is three characters no entry covers.
        var e = Assert.Throws<RequestValidationException>(() => tok.Encode("ab<s>", "prompt"));
        Assert.Equal("prompt", e.Field);
        Assert.Contains("'<' at position 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bpe_tokenizer_json_applies_merges_in_rank_order()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ar-bpe-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            // Merges: a+b first, then ab+c. "abcab ca" -> [abc][ab] [c][a].
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """
                {"version": "1.0",
                 "added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "</s>", "special": true}],
                 "normalizer": null,
                 "pre_tokenizer": {"type": "WhitespaceSplit"},
                 "model": {"type": "BPE", "dropout": null, "unk_token": null,
                           "vocab": {"<s>": 0, "</s>": 1, "a": 2, "b": 3, "c": 4, "ab": 5, "abc": 6},
                           "merges": ["a b", ["ab", "c"]]}}
                """);
            IArTokenizer tok = ArTokenizers.For(Manifest(dir, new TokensSpec { VocabSize = 7, MaxLength = 16, BosTokenId = 0, EosTokenId = 1, Tokenizer = "tokenizer.json" }))!;

            Assert.Equal([6, 5, 4, 2], tok.Encode("abcab ca", "prompt"));
            Assert.Equal("abc", tok.TokenText(6));
            Assert.Equal("", tok.TokenText(0));
            Assert.True(tok.IsSpecial(1));
            Assert.Equal("abcab", tok.Decode([0, 6, 5, 1]));

            var e = Assert.Throws<RequestValidationException>(() => tok.Encode("abd", "sequences[0]"));
            Assert.Equal("sequences[0]", e.Field);
            Assert.Contains("'d'", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Unsupported_tokenizer_model_is_a_clear_not_ready_error()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ar-wp-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model": {"type": "WordPiece", "vocab": {"a": 0}}}""");
            var e = Assert.Throws<ModelNotReadyException>(() => ArTokenizers.For(Manifest(dir, new TokensSpec { VocabSize = 4, MaxLength = 8, Tokenizer = "tokenizer.json" })));
            Assert.Contains("only BPE", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
