using System.Text.Json;

namespace GenService.Generation.Tests.TextToImage;

/// <summary>Where the CLIP tokenizer tests find their files: this repository's Reference/ and ../shared/fixtures.</summary>
internal static class ClipFixtures
{
    /// <summary>The repository root, found by walking up from the test binaries to GenService.sln.</summary>
    public static string Root { get; } = FindRoot();

    public static string ReferenceDirectory => Path.Combine(Root, "tests", "GenService.Generation.Tests", "TextToImage", "Reference");

    /// <summary>The real CLIP vocabulary, in shared/ beside the checkout (as CI lays it out); never copied in.</summary>
    public static string RealClipDirectory
    {
        get
        {
            string dir = Path.GetFullPath(Path.Combine(Root, "..", "shared", "fixtures", "tokenizers", "clip"));
            return File.Exists(Path.Combine(dir, "vocab.json"))
                ? dir
                : throw new DirectoryNotFoundException($"the real CLIP vocabulary is not at {dir} (shared/fixtures beside the repository)");
        }
    }

    public static string TinyDirectory => Path.Combine(ReferenceDirectory, "tiny-clip", "tokenizer");

    public static string TinyJsonDirectory => Path.Combine(ReferenceDirectory, "tiny-clip-json", "tokenizer");

    private static readonly Lazy<JsonDocument> ReferenceDocument =
        new(() => JsonDocument.Parse(File.ReadAllText(Path.Combine(ReferenceDirectory, "clip_reference.json"))));

    /// <summary>clip_reference.json, written by Reference/make_clip_reference.py.</summary>
    public static JsonElement Reference => ReferenceDocument.Value.RootElement;

    /// <summary>
    /// A copy of a tokenizer folder at &lt;temp&gt;/&lt;random&gt;/<paramref name="model"/>/tokenizer, changed by
    /// <paramref name="breakIt"/>, so messages read "<paramref name="model"/>/tokenizer/file: ...".
    /// </summary>
    public static TokenizerCopy BrokenCopy(string source, string model, Action<string> breakIt)
    {
        string root = Path.Combine(Path.GetTempPath(), "clip-tok-" + Guid.NewGuid().ToString("N")[..12]);
        string dir = Path.Combine(root, model, "tokenizer");
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        }

        var copy = new TokenizerCopy(root, dir);
        breakIt(dir);
        return copy;
    }

    private static string FindRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "GenService.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"GenService.sln not found above {AppContext.BaseDirectory}.");
    }
}

/// <summary>A temporary tokenizer folder (<see cref="Path"/>), deleted with its parent folders on dispose.</summary>
internal sealed class TokenizerCopy(string root, string path) : IDisposable
{
    public string Path { get; } = path;

    public void Dispose() => Directory.Delete(root, recursive: true);
}
