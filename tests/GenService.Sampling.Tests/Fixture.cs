using System.Text.Json;

namespace GenService.Sampling.Tests;

/// <summary>Loads the JSON fixtures written by Reference/make_reference.py.</summary>
internal static class Fixture
{
    private static readonly Dictionary<string, JsonDocument> Cache = [];
    private static readonly Lock Gate = new();

    public static JsonElement Load(string name)
    {
        lock (Gate)
        {
            if (!Cache.TryGetValue(name, out var doc))
            {
                doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", name)));
                Cache[name] = doc;
            }

            return doc.RootElement;
        }
    }

    public static float[] Floats(JsonElement array) => array.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();

    public static double[] Doubles(JsonElement array) => array.EnumerateArray().Select(e => e.GetDouble()).ToArray();

    /// <summary>max |a - b| / (max |b| + 1e-6): the relative error the reference tests bound.</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, scale = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }

        return diff / (scale + 1e-6);
    }
}
