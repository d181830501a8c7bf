using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Repository;

namespace GenService.Api.Tests.Families.Ar;

/// <summary>
/// The service over a temporary repository holding words-ar (KV-cache decoder), digits-ar (recompute decoder) and
/// words-bpe: words-ar's decoder with a Hugging Face BPE tokenizer.json instead of its vocabulary (same ids), so
/// the tokenizer-file path runs against a real model. The PyTorch reference numbers come from
/// Reference/ar/ar_reference.json (make_ar_reference.py).
/// <para>
/// GENSERVICE_AR_TEST_MODELS / GENSERVICE_AR_TEST_REFERENCE point elsewhere (a models folder and its reference
/// JSON) to run the same tests against other checkpoints, e.g. while the shipped models are being retrained.
/// </para>
/// </summary>
public sealed class ArFixture : IAsyncLifetime
{
    public const string Words = "words-ar";
    public const string Digits = "digits-ar";
    public const string WordsBpe = "words-bpe";

    private string? _root;
    private GenServiceFactory? _factory;

    public GenServiceFactory Factory => _factory ?? throw new InvalidOperationException("The fixture did not start.");

    public JsonElement Reference { get; private set; }

    public string SourceModels { get; } = Environment.GetEnvironmentVariable("GENSERVICE_AR_TEST_MODELS") is { Length: > 0 } m ? m : RepositoryPaths.RealModels;

    public string ReferencePath { get; } = Environment.GetEnvironmentVariable("GENSERVICE_AR_TEST_REFERENCE") is { Length: > 0 } r
        ? r
        : Path.Combine(RepositoryPaths.Root, "tests", "GenService.Api.Tests", "Reference", "ar", "ar_reference.json");

    public HttpClient CreateClient() => Factory.CreateClient();

    public async ValueTask InitializeAsync()
    {
        Reference = JsonDocument.Parse(await File.ReadAllTextAsync(ReferencePath)).RootElement;
        _root = RepositoryPaths.CopyToTemp(SourceModels, Words, Digits);
        MakeBpeModel(Path.Combine(_root, Words), Path.Combine(_root, WordsBpe));
        _factory = new GenServiceFactory(_root);
        await _factory.InitializeAsync();
        foreach (string model in new[] { Words, Digits, WordsBpe })
        {
            ModelEntry? entry = _factory.Repository.Find(model);
            if (entry?.State != ModelState.Ready)
            {
                throw new InvalidOperationException($"{model} (from {SourceModels}) is not ready: {entry?.State.ToString() ?? "not found"} {entry?.Error}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_factory is not null)
        {
            await _factory.DisposeAsync();
        }

        if (_root is not null)
        {
            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (IOException)
            {
                // A session may still hold a file on some platforms; the temp folder is harmless.
            }
        }
    }

    /// <summary>sha256 of a copied model's decoder, to tell a stale reference fixture from a wrong answer.</summary>
    public string DecoderSha256(string model)
    {
        using FileStream f = File.OpenRead(Path.Combine(_root!, model, "decoder.onnx"));
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    /// <summary>
    /// A tokenizer.json in Hugging Face's format: BPE over words-ar's ids ("a" = 3 ... "z" = 28), the three
    /// specials as added tokens, a WhitespaceSplit pre-tokenizer and no merges (every id is one character, and
    /// merges would need ids the decoder does not have).
    /// </summary>
    private static void MakeBpeModel(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        JsonObject manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(from, "model.json")))!.AsObject();
        JsonObject tokens = manifest["tokens"]!.AsObject();
        JsonArray vocabulary = tokens["vocabulary"]!.AsArray();
        var vocab = new JsonObject();
        var added = new JsonArray();
        for (int i = 0; i < vocabulary.Count; i++)
        {
            string s = vocabulary[i]!.GetValue<string>();
            vocab[s] = i;
            if (s.StartsWith('<'))
            {
                added.Add(new JsonObject { ["id"] = i, ["content"] = s, ["special"] = true });
            }
        }

        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "WhitespaceSplit" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray(), ["unk_token"] = null },
        };
        File.WriteAllText(Path.Combine(to, "tokenizer.json"), tokenizer.ToJsonString());
        tokens.Remove("vocabulary");
        tokens["tokenizer"] = "tokenizer.json";
        manifest["name"] = WordsBpe;
        File.WriteAllText(Path.Combine(to, "model.json"), manifest.ToJsonString());
    }
}

[CollectionDefinition(Name)]
public sealed class ArModels : ICollectionFixture<ArFixture>
{
    public const string Name = "ar models";
}
