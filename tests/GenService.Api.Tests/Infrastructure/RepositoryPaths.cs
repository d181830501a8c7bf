namespace GenService.Api.Tests.Infrastructure;

/// <summary>Folders of this repository, found by walking up from the test binaries to GenService.sln.</summary>
public static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>The shipped models (models/ beside GenService.sln).</summary>
    public static string RealModels => Path.Combine(Root, "models");

    /// <summary>The tiny models these tests generate (TestModels/make_test_models.py).</summary>
    public static string TestModels => Path.Combine(Root, "tests", "GenService.Api.Tests", "TestModels");

    private static string FindRoot()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "GenService.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"GenService.sln not found above {AppContext.BaseDirectory}.");
    }

    /// <summary>Copies model folders into a fresh temporary repository (tests that break or change models).</summary>
    public static string CopyToTemp(string source, params string[] models)
    {
        string target = Path.Combine(Path.GetTempPath(), "genservice-tests-" + Guid.NewGuid().ToString("N")[..12]);
        foreach (string model in models)
        {
            CopyFolder(Path.Combine(source, model), Path.Combine(target, model));
        }

        return target;
    }

    /// <summary>A folder and everything under it (an export folder has a folder per part).</summary>
    public static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (string dir in Directory.GetDirectories(from))
        {
            CopyFolder(dir, Path.Combine(to, Path.GetFileName(dir)));
        }
    }
}
