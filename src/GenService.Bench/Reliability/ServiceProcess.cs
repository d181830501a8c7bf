using System.Diagnostics;
using System.Globalization;

namespace GenService.Bench.Reliability;

/// <summary>
/// The service as its own process, started the way the container starts it (<c>dotnet GenService.Api.dll</c> from the
/// Release build, configuration through environment variables), so that its resident memory is measured apart from
/// the load generator's and a SIGTERM reaches it as Kubernetes sends one.
/// </summary>
internal sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();
    private long _logBytes;
    private long _stackLines;
    private int _startupRequests;

    private ServiceProcess(Process process, string url)
    {
        _process = process;
        Url = url;
    }

    public string Url { get; }

    public int Pid => _process.Id;

    /// <summary>Bytes the service has written to its console log (stdout and stderr) so far.</summary>
    public long LogBytes => Interlocked.Read(ref _logBytes);

    /// <summary>Requests (not probes) this class sent while waiting for the models to be ready: the app counts them as work.</summary>
    public int StartupRequests => _startupRequests;

    /// <summary>The service's console lines that contain "Stopped:" or "Shutting down:" (its shutdown sequence).</summary>
    public IReadOnlyList<string> ShutdownLines => [.. _lines];

    /// <summary>Log lines that are stack-trace frames ("   at ..."), so far.</summary>
    public long StackTraceLines => Interlocked.Read(ref _stackLines);

    /// <summary>
    /// Starts GenService.Api on <paramref name="port"/> and waits for /v2/health/ready: the Release build, or
    /// <paramref name="dll"/> (a published app), run as <paramref name="uid"/> when given (through setpriv, as a
    /// container's USER would), with the container's environment plus <paramref name="environment"/>.
    /// </summary>
    public static async Task<ServiceProcess> StartAsync(string root, int port, IReadOnlyDictionary<string, string> environment, string? dll = null, int? uid = null)
    {
        dll ??= Path.Combine(root, "src", "GenService.Api", "bin", "Release", "net10.0", "GenService.Api.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"Build the service first: dotnet build src/GenService.Api -c Release ({dll} is missing).");
        }

        string url = $"http://127.0.0.1:{port}";
        string dotnet = Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
        string[] command = uid is { } user
            ? ["--reuid", user.ToString(CultureInfo.InvariantCulture), "--regid", user.ToString(CultureInfo.InvariantCulture), "--clear-groups", dotnet, dll]
            : [dll];
        var start = new ProcessStartInfo(uid is null ? "dotnet" : "setpriv", command)
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["ASPNETCORE_URLS"] = url;
        start.Environment["DOTNET_CLI_HOME"] = Path.GetTempPath();   // a non-root user has no home to write to
        start.Environment["GenService__ModelRepository"] = Path.Combine(root, "models");
        start.Environment["Serilog__MinimumLevel__Default"] = "Warning";
        foreach ((string key, string value) in environment)
        {
            start.Environment[key] = value;
        }

        Process process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");

        // Keep the pipes drained (a full pipe would block the service's logger); only the log's size is kept.
        var service = new ServiceProcess(process, url);
        process.OutputDataReceived += (_, e) =>
        {
            Interlocked.Add(ref service._logBytes, (e.Data?.Length ?? 0) + 1);
            if (e.Data?.TrimStart().StartsWith("at ", StringComparison.Ordinal) == true)
            {
                Interlocked.Increment(ref service._stackLines);
            }

            if (e.Data is { } line && (line.Contains("Stopped:", StringComparison.Ordinal) || line.Contains("Shutting down:", StringComparison.Ordinal)))
            {
                service._lines.Enqueue(line);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            Interlocked.Add(ref service._logBytes, (e.Data?.Length ?? 0) + 1);
            if (e.Data is { Length: > 0 } line)
            {
                Console.Error.WriteLine("  [service] " + line);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(2) };
        for (int i = 0; i < 600; i++)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The service exited with {process.ExitCode} before it was ready.");
            }

            try
            {
                using HttpResponseMessage ready = await client.GetAsync("/v2/health/ready");
                if (ready.IsSuccessStatusCode && await AllModelsReadyAsync(client, service))
                {
                    return service;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Not answering yet.
            }

            await Task.Delay(250);
        }

        await service.DisposeAsync();
        throw new TimeoutException("The service was not ready within 150 s.");
    }

    private static async Task<bool> AllModelsReadyAsync(HttpClient client, ServiceProcess service)
    {
        string models = await client.GetStringAsync("/v1/models");
        service._startupRequests++;
        return !models.Contains("\"ready\":false", StringComparison.Ordinal);
    }

    /// <summary>Resident set size (VmRSS) in MiB, from /proc.</summary>
    public double RssMiB()
    {
        foreach (string line in File.ReadLines($"/proc/{_process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
            }
        }

        return double.NaN;
    }

    /// <summary>Samples <see cref="RssMiB"/> every <paramref name="period"/> until cancelled.</summary>
    public async Task<List<(double Seconds, double MiB)>> SampleRssAsync(TimeSpan period, CancellationToken cancellationToken)
    {
        var samples = new List<(double, double)>();
        long start = Stopwatch.GetTimestamp();
        using var timer = new PeriodicTimer(period);
        try
        {
            do
            {
                samples.Add((Stopwatch.GetElapsedTime(start).TotalSeconds, RssMiB()));
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }

        return samples;
    }

    /// <summary>Sends SIGTERM (as Kubernetes and `docker stop` do) and waits for the exit; returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        using (Process kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
