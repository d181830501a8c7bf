using System.Text.Json;

namespace GenService.Inference.Tests.Parity;

/// <summary>
/// Finds the committed models and their golden input/output pairs (written by models/training/*.py from PyTorch)
/// and reads them into plain arrays.
/// </summary>
internal static class GoldenFiles
{
    /// <summary>The repository's models/ folder, found by walking up from the test binaries to GenService.sln.</summary>
    public static string ModelsRoot { get; } = FindModelsRoot();

    /// <summary>"model/role" for every models/*/golden/*.json, sorted so test names are stable.</summary>
    public static IEnumerable<string> Keys() =>
        Directory.EnumerateDirectories(ModelsRoot)
            .Where(d => File.Exists(Path.Combine(d, "model.json")) && Directory.Exists(Path.Combine(d, "golden")))
            .SelectMany(d => Directory.EnumerateFiles(Path.Combine(d, "golden"), "*.json")
                .Select(f => $"{Path.GetFileName(d)}/{Path.GetFileNameWithoutExtension(f)}"))
            .Order(StringComparer.Ordinal);

    /// <summary>The ONNX file that model.json names for this role: the parity test also checks the manifest.</summary>
    public static string GraphPath(string model, string role)
    {
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(ModelsRoot, model, "model.json")));
        var file = manifest.RootElement.GetProperty("graphs").GetProperty(role).GetProperty("file").GetString()!;
        return Path.Combine(ModelsRoot, model, file);
    }

    public static IReadOnlyList<GoldenCase> Load(string model, string role)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(ModelsRoot, model, "golden", role + ".json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new GoldenCase(ReadTensors(c.GetProperty("inputs")), ReadTensors(c.GetProperty("outputs"))))
            .ToList();
    }

    private static List<GoldenTensor> ReadTensors(JsonElement obj) =>
        obj.EnumerateObject().Select(p =>
        {
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var dtype = p.Value.GetProperty("dtype").GetString();
            var data = p.Value.GetProperty("data");
            return dtype switch
            {
                "float32" => new GoldenTensor(p.Name, shape, data.EnumerateArray().Select(e => e.GetSingle()).ToArray(), null),
                "int64" => new GoldenTensor(p.Name, shape, null, data.EnumerateArray().Select(e => e.GetInt64()).ToArray()),
                _ => throw new InvalidDataException($"golden tensor '{p.Name}': unsupported dtype '{dtype}'"),
            };
        }).ToList();

    private static string FindModelsRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "GenService.sln")))
            {
                return Path.Combine(dir.FullName, "models");
            }
        }

        throw new DirectoryNotFoundException($"no GenService.sln above {AppContext.BaseDirectory}");
    }
}

internal sealed record GoldenCase(IReadOnlyList<GoldenTensor> Inputs, IReadOnlyList<GoldenTensor> Outputs);

/// <summary>One tensor of a golden case; exactly one of <see cref="Floats"/> and <see cref="Longs"/> is set.</summary>
internal sealed record GoldenTensor(string Name, long[] Shape, float[]? Floats, long[]? Longs);
