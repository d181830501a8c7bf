namespace GenService.Inference.Tests;

/// <summary>A temporary model repository holding copies of the committed test models.</summary>
internal sealed class TestModelFolder : IDisposable
{
    public static string Source => Path.Combine(AppContext.BaseDirectory, "TestModels");

    public TestModelFolder(params string[] models)
    {
        Root = Path.Combine(Path.GetTempPath(), "genservice-tests", Guid.NewGuid().ToString("N"), "models");
        Directory.CreateDirectory(Root);
        foreach (string m in models)
        {
            Copy(m, m);
        }
    }

    public string Root { get; }

    public string Path_(string model, string file) => Path.Combine(Root, model, file);

    /// <summary>Copies test model <paramref name="model"/> to folder <paramref name="as"/>, renaming it in model.json.</summary>
    public void Copy(string model, string @as)
    {
        string dst = Path.Combine(Root, @as);
        Directory.CreateDirectory(dst);
        foreach (string file in Directory.EnumerateFiles(Path.Combine(Source, model)))
        {
            File.Copy(file, Path.Combine(dst, Path.GetFileName(file)), overwrite: true);
        }

        if (model != @as)
        {
            EditManifest(@as, json => json.Replace($"\"name\": \"{model}\"", $"\"name\": \"{@as}\"", StringComparison.Ordinal));
        }
    }

    public void EditManifest(string model, Func<string, string> edit)
    {
        string path = Path.Combine(Root, model, "model.json");
        string before = File.ReadAllText(path);
        string after = edit(before);
        Assert.NotEqual(before, after);
        File.WriteAllText(path, after);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path.GetDirectoryName(Root)!, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }
}
