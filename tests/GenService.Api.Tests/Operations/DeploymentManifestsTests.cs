using System.Diagnostics;
using GenService.Api.Tests.Infrastructure;

namespace GenService.Api.Tests.Operations;

/// <summary>
/// The deployment files are checked on every CI run, without a container engine or a cluster: the kustomize overlays
/// rendered and every object (KServe's included) validated against its schema (.ci/validate-k8s), the Compose files
/// against the Compose schema, Prometheus' config with promtool and the Grafana dashboard's queries
/// (.ci/validate-compose). Each script installs what it lacks (apt-get, npm) and exits non-zero on any failure. One
/// class, so the two never run apt-get at the same time.
/// </summary>
public sealed class DeploymentManifestsTests
{
    [Theory]
    [InlineData(".ci/validate-k8s", "validate-k8s: passed")]
    [InlineData(".ci/validate-compose", "validate-compose: OK")]
    public async Task The_deployment_files_pass_their_schemas_and_checks(string script, string verdict)
    {
        var start = new ProcessStartInfo("bash", [script])
        {
            WorkingDirectory = RepositoryPaths.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> errors = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);

        // A first run on a clean machine installs its tools (tens of seconds); the bound only stops a hung script.
        using var hung = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        hung.CancelAfter(TimeSpan.FromMinutes(10));
        await process.WaitForExitAsync(hung.Token);
        string text = await output + await errors;
        Assert.True(process.ExitCode == 0, $"{script} exited with {process.ExitCode}:\n{text}");
        Assert.Contains(verdict, text, StringComparison.Ordinal);
    }
}
