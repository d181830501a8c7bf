using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using GenService.Bench.TextToImage;

namespace GenService.Bench.Reliability;

/// <summary>
/// Reliability runs (scripts, not tests; results in docs/reliability.md). Each starts the Release build of the
/// service as its own process over the shipped models/ and measures what it answers under stress:
/// <list type="bullet">
/// <item>overload: capacity from a closed loop, then an open-loop burst at 10x it: every accepted request completes,
/// rejected ones are fast 429s with Retry-After, nothing else comes back, memory stays bounded.</item>
/// <item>fairness: a light caller's latency alone, then next to a heavy caller (own API keys) that keeps the
/// diffusion loop full: the light caller's p50/p99.</item>
/// <item>poison: two callers sending out-of-range v2 inputs next to innocent gan and diffusion requests.</item>
/// <item>sigterm: SIGTERM under load to the app run as the container runs it (deploy/check-container-run.sh): no
/// accepted request lost.</item>
/// <item>soak: a mix of every family at ~70% of its measured capacity for --seconds (default 600): error rate and
/// resident-memory growth (minute 2 against the last minute).</item>
/// </list>
/// <code>
///   dotnet build src/GenService.Api -c Release
///   dotnet run --project src/GenService.Bench -c Release -- reliability overload|fairness|poison|soak [--seconds N] [--port P]
/// </code>
/// </summary>
internal static class ReliabilityBench
{
    private const string HeavyKey = "reliability-heavy-key";
    private const string LightKey = "reliability-light-key";

    public static async Task<int> RunAsync(string root, string[] args)
    {
        string scenario = args.Length > 0 ? args[0] : "";
        double? seconds = Option(args, "--seconds") is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : null;
        int port = Option(args, "--port") is { } p ? int.Parse(p, CultureInfo.InvariantCulture) : 5187;
        Console.WriteLine($"# GenService reliability: {scenario}, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");
        switch (scenario)
        {
            case "overload":
                await OverloadAsync(root, port, seconds ?? 20);
                return 0;
            case "fairness":
                await FairnessAsync(root, port, seconds ?? 30);
                return 0;
            case "poison":
                await PoisonAsync(root, port, seconds ?? 15);
                return 0;
            case "sigterm":
                // Non-zero when a request the app took went unanswered (deploy/check-container-run.sh fails then).
                return await SigtermAsync(root, port, Option(args, "--dll"), Option(args, "--uid") is { } id ? int.Parse(id, CultureInfo.InvariantCulture) : null, Option(args, "--models")) ? 0 : 1;
            case "soak":
                await SoakAsync(root, port, seconds ?? 600);
                return 0;
            default:
                Console.Error.WriteLine("usage: reliability overload|fairness|poison|soak [--seconds N] [--port P] | sigterm [--dll DLL --uid UID --models DIR]");
                return 2;
        }
    }

    // Text-to-image at 20 steps: the service's most expensive route, so the burst overloads the UNet loop.
    private static Shot TextToImage(int n) => new(
        "txt2img",
        "/v1/diffusion/digits-txt2img/samples",
        Json(new { prompt = TextToImageBench.Captions[n % TextToImageBench.Captions.Length], steps = 20, seed = n, output = "tensor" }));

    private static async Task OverloadAsync(string root, int port, double seconds)
    {
        await using ServiceProcess service = await ServiceProcess.StartAsync(root, port, new Dictionary<string, string>());
        using HttpClient client = Load.Client(service.Url);
        double idleRss = service.RssMiB();

        var capacityRun = new Load(client);
        await capacityRun.ClosedLoopAsync(16, 5, (w, i) => TextToImage((w * 1000) + i));
        capacityRun = new Load(client);
        double elapsed = await capacityRun.ClosedLoopAsync(16, 15, (w, i) => TextToImage((w * 1000) + i + 500));
        double capacity = capacityRun.Answers.Count(a => a.Status == 200) / elapsed;
        double loadedRss = service.RssMiB();
        Console.WriteLine(FormattableString.Invariant($"capacity (closed loop, 16 clients, 15 s after 5 s warm-up): {capacity:0.0} req/s, {Others(capacityRun.Answers, 200)} non-200"));

        double rate = 10 * capacity;
        var burst = new Load(client);
        using var rssStop = new CancellationTokenSource();
        Task<List<(double Seconds, double MiB)>> rss = service.SampleRssAsync(TimeSpan.FromMilliseconds(250), rssStop.Token);
        await burst.OpenLoopAsync(rate, seconds, seed: 7, (_, n) => TextToImage(100_000 + n));
        await rssStop.CancelAsync();
        List<(double Seconds, double MiB)> rssSamples = await rss;

        // After the burst: the service still answers a plain request at once.
        var after = new Load(client);
        await after.ClosedLoopAsync(1, 3, (_, i) => TextToImage(900_000 + i));

        Console.WriteLine(FormattableString.Invariant($"burst: open loop (Poisson) at {rate:0.0} req/s = 10x capacity for {seconds:0} s, {burst.Answers.Count} requests"));
        Console.WriteLine();
        Console.WriteLine(StatusTable(burst.Answers));
        Console.WriteLine(FormattableString.Invariant($"429s with Retry-After: {burst.Answers.Count(a => a.Status == 429 && a.RetryAfter)} of {burst.Answers.Count(a => a.Status == 429)}"));
        Console.WriteLine(FormattableString.Invariant($"after the burst, alone (closed loop, 1 client, 3 s): {StatusTable(after.Answers).Split('\n').Last()}"));
        Console.WriteLine(FormattableString.Invariant($"RSS: idle {idleRss:0} MiB, after the capacity run {loadedRss:0} MiB, burst peak {rssSamples.Max(x => x.MiB):0} MiB, after the burst {service.RssMiB():0} MiB"));
    }

    private static async Task FairnessAsync(string root, int port, double seconds)
    {
        // Two callers told apart by their API keys (user role), as two tenants of one endpoint would be.
        var environment = new Dictionary<string, string>
        {
            ["GenService__Auth__Keys__0__Name"] = "heavy",
            ["GenService__Auth__Keys__0__Sha256"] = Sha256Hex(HeavyKey),
            ["GenService__Auth__Keys__0__Role"] = "user",
            ["GenService__Auth__Keys__1__Name"] = "light",
            ["GenService__Auth__Keys__1__Sha256"] = Sha256Hex(LightKey),
            ["GenService__Auth__Keys__1__Role"] = "user",
        };
        await using ServiceProcess service = await ServiceProcess.StartAsync(root, port, environment);
        using HttpClient client = Load.Client(service.Url);
        const string route = "/v1/diffusion/digits-ddpm/samples";
        Shot Light(int n) => new("light", route, Json(new { count = 1, steps = 10, seed = n, class_label = n % 10, output = "tensor" }), LightKey);
        Shot Heavy(int n) => new("heavy", route, Json(new { count = 64, steps = 200, seed = n, class_label = n % 10, output = "tensor" }), HeavyKey);

        var warm = new Load(client);
        await warm.ClosedLoopAsync(1, 3, (_, i) => Light(i));
        var alone = new Load(client);
        await alone.ClosedLoopAsync(1, seconds / 2, (_, i) => Light(1000 + i));

        var both = new Load(client);
        using var stop = new CancellationTokenSource();
        Task heavy = both.ClosedLoopAsync(8, seconds + 5, (w, i) => Heavy((w * 1000) + i));
        await Task.Delay(TimeSpan.FromSeconds(5));   // let the heavy caller fill the loop first
        var light = new Load(client);
        await light.ClosedLoopAsync(1, seconds, (_, i) => Light(5000 + i));
        await heavy;

        // The same light requests sent with the heavy caller's key: one caller, one FIFO, i.e. what a single queue
        // without per-caller turns would give the light requests.
        var sameCaller = new Load(client);
        Task heavyAgain = sameCaller.ClosedLoopAsync(8, seconds + 5, (w, i) => Heavy(100_000 + (w * 1000) + i));
        await Task.Delay(TimeSpan.FromSeconds(5));
        var lightAsHeavy = new Load(client);
        await lightAsHeavy.ClosedLoopAsync(1, seconds, (_, i) => Light(9000 + i) with { Key = HeavyKey });
        await heavyAgain;

        Console.WriteLine($"heavy caller: 8 workers, closed loop, 64 samples x 200 ddim steps per request (key 'heavy'); light caller: 1 worker, 1 sample x 10 steps (key 'light'), {seconds:0} s");
        Console.WriteLine();
        Console.WriteLine("| run | light requests | light p50 ms | light p99 ms | light max ms | light non-200 | heavy requests (200) | heavy non-200 |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
        Console.WriteLine(FairnessRow("light alone", alone.Answers, []));
        Console.WriteLine(FairnessRow("light next to heavy", light.Answers, both.Answers));
        Console.WriteLine(FairnessRow("light sent as the heavy caller (one FIFO)", lightAsHeavy.Answers, sameCaller.Answers));
    }

    private static string FairnessRow(string name, IReadOnlyList<Answer> light, IReadOnlyList<Answer> heavy)
    {
        double[] ok = [.. light.Where(a => a.Status == 200).Select(a => a.Ms)];
        return FormattableString.Invariant(
            $"| {name} | {light.Count} | {Stats.Percentile(ok, 0.5):0} | {Stats.Percentile(ok, 0.99):0} | {(ok.Length > 0 ? ok.Max() : double.NaN):0} | {Others(light, 200)} | {heavy.Count(a => a.Status == 200)} | {Others(heavy, 200)} {Statuses(heavy)} |");
    }

    /// <summary>
    /// The issue's measurement, repeated: two callers send out-of-range v2 inputs (a GAN class label of 1,000,000, a
    /// class label of -1, an FP32 literal past its range) while innocent gan and diffusion requests run beside them.
    /// </summary>
    private static async Task PoisonAsync(string root, int port, double seconds)
    {
        // The default log level (a request line per request), so the log's growth is what a deployment would see.
        await using ServiceProcess service = await ServiceProcess.StartAsync(root, port, new Dictionary<string, string> { ["Serilog__MinimumLevel__Default"] = "Information" });
        using HttpClient client = Load.Client(service.Url);
        string latent = string.Join(',', Enumerable.Repeat("0.1", 31));
        string Infer(string first, long label) =>
            "{\"inputs\":[{\"name\":\"latent\",\"shape\":[1,32],\"datatype\":\"FP32\",\"data\":[" + first + "," + latent + "]},"
            + "{\"name\":\"class_label\",\"shape\":[1],\"datatype\":\"INT64\",\"data\":[" + label.ToString(CultureInfo.InvariantCulture) + "]}]}";
        Shot Poison(int n) => new("poison", "/v2/models/digits-gan.generator/infer", (n % 3) switch
        {
            0 => Infer("0.1", 1_000_000),
            1 => Infer("0.1", -1),
            _ => Infer("1e39", 3),
        });
        Shot Innocent(int n) => (n % 2) == 0
            ? new("gan (innocent)", "/v1/gan/digits-gan/samples", Json(new { count = 4, seed = n, class_label = n % 10, output = "tensor" }))
            : new("diffusion (innocent)", "/v1/diffusion/digits-ddpm/samples", Json(new { count = 1, steps = 10, seed = n, class_label = n % 10, output = "tensor" }));

        long logBefore = service.LogBytes;
        var load = new Load(client);
        await Task.WhenAll(
            load.ClosedLoopAsync(2, seconds, (w, i) => Poison((w * 1_000_000) + i)),
            load.ClosedLoopAsync(6, seconds, (w, i) => Innocent((w * 1_000_000) + i)));
        Console.WriteLine($"2 poison callers (v2 digits-gan.generator: class_label 1000000, class_label -1, FP32 1e39, in turn) and 6 innocent workers (v1 gan 4 samples, v1 digits-ddpm 10 steps), closed loops, {seconds:0} s");
        Console.WriteLine();
        Console.WriteLine(StatusTable(load.Answers));
        Console.WriteLine(FormattableString.Invariant($"service log written during the run (default level, a line per request): {(service.LogBytes - logBefore) / 1024.0:0.0} KiB for {load.Answers.Count} requests, {service.StackTraceLines} lines of stack traces"));
    }

    /// <summary>
    /// The container's stop, under load: the app started as the image starts it (a published folder, its user, a
    /// read-only models folder, the image's environment), SIGTERM after 5 s of load, the load kept on until the
    /// process exits. Every request that got in must complete: the only other answers allowed are 503s (refused once
    /// shutdown began) and refused connections (after the listener closed).
    /// </summary>
    private static async Task<bool> SigtermAsync(string root, int port, string? dll, int? uid, string? models)
    {
        var environment = new Dictionary<string, string>
        {
            ["DOTNET_gcServer"] = "1",                                    // as the Dockerfile sets it
            ["GenService__Shutdown__ReadinessDelaySeconds"] = "2",        // as deploy/ sets it (5 s there)
            ["GenService__Shutdown__DrainTimeoutSeconds"] = "25",
            // The shutdown sequence's own lines, among them the accounting it logs when it stops.
            ["Serilog__MinimumLevel__Override__GenService.Inference.Shutdown"] = "Information",
        };
        if (models is not null)
        {
            environment["GenService__ModelRepository"] = models;
        }

        await using ServiceProcess service = await ServiceProcess.StartAsync(root, port, environment, dll, uid);
        using HttpClient client = Load.Client(service.Url);
        using HttpClient probe = Load.Client(service.Url);
        Shot Work(int n) => (n % 2) == 0
            ? TextToImage(n)
            : new("diffusion", "/v1/diffusion/digits-ddpm/samples", Json(new { count = 4, steps = 50, seed = n, class_label = n % 10, output = "tensor" }));

        var load = new Load(client);
        using var stop = new CancellationTokenSource();
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        double Now() => System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        Task work = load.ClosedLoopAsync(8, 600, (w, i) => Work((w * 100_000) + i), stop.Token);
        var readiness = new List<(double At, int Status)>();
        Task poll = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                double at = Now();
                int status;
                try
                {
                    using HttpResponseMessage r = await probe.GetAsync("/v2/health/ready");
                    status = (int)r.StatusCode;
                }
                catch (HttpRequestException)
                {
                    status = 0;
                }

                readiness.Add((at, status));
                await Task.Delay(50);
            }
        });

        await Task.Delay(TimeSpan.FromSeconds(5));
        double sigterm = Now();
        int exitCode = await service.TerminateAsync(TimeSpan.FromSeconds(60));
        double exited = Now();
        await stop.CancelAsync();
        await work;
        await poll;

        IReadOnlyList<Answer> answers = load.Answers;
        double firstNotReady = readiness.Where(r => r.At >= sigterm && r.Status != 200).Select(r => r.At).DefaultIfEmpty(double.NaN).Min();
        double first503 = answers.Where(a => a.Status == 503).Select(a => a.At).DefaultIfEmpty(double.NaN).Min();
        Console.WriteLine(FormattableString.Invariant($"the published app as the container runs it: {(dll ?? "the Release build")}, {(uid is { } u ? $"uid {u}" : "this user")}, models {(models ?? "models/")}; 8 workers, closed loop (txt2img 20 steps, digits-ddpm 4 x 50 steps)"));
        Console.WriteLine(FormattableString.Invariant($"SIGTERM at {sigterm:0.00} s; readiness not 200 from {firstNotReady - sigterm:+0.00;-0.00} s; first 503 to a request at {first503 - sigterm:+0.00;-0.00} s; exit at {exited - sigterm:+0.00} s with code {exitCode}"));
        Console.WriteLine();
        Console.WriteLine("| answer | requests | sent (s after SIGTERM) | p50 ms | max ms |");
        Console.WriteLine("| --- | --- | --- | --- | --- |");
        foreach (var g in answers.GroupBy(a => a.Status == 0 ? "no response: " + a.Failure : a.Status.ToString(CultureInfo.InvariantCulture)).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            double[] ms = [.. g.Select(a => a.Ms)];
            Console.WriteLine(FormattableString.Invariant($"| {g.Key} | {ms.Length} | {g.Min(a => a.At) - sigterm:+0.00;-0.00} .. {g.Max(a => a.At) - sigterm:+0.00;-0.00} | {Stats.Percentile(ms, 0.5):0} | {ms.Max():0} |"));
        }

        int lost = answers.Count(a => (a.Status >= 500 && a.Status != 503) || (a.Status == 0 && a.Failure != "refused"));
        int completedAfter = answers.Count(a => a.Status == 200 && a.At + (a.Ms / 1000) > sigterm);
        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant($"no answer or a 5xx other than 503 (a connection broken after it was opened: mid-request, or still in the accept queue when the listener closed): {lost}; requests completed 200 after the SIGTERM: {completedAfter}"));

        // The service's side: what it took in, finished and refused (its "Stopped:" line), against what the clients got.
        // Taken == answers other than 503 and finished == taken mean every request the app read was answered; a
        // connection with no response then never reached the app (it was still in the kernel's accept queue).
        Console.WriteLine();
        foreach (string line in service.ShutdownLines)
        {
            Console.WriteLine("    " + line);
        }

        var totals = System.Text.RegularExpressions.Regex.Match(string.Join('\n', service.ShutdownLines), @"Stopped: (\d+) requests taken since start, (\d+) finished, (\d+) unfinished; (\d+) refused");
        int answered = answers.Count(a => a.Status is not (0 or 503)) + service.StartupRequests;
        int refused = answers.Count(a => a.Status == 503);
        if (!totals.Success)
        {
            Console.WriteLine("service: no \"Stopped:\" line in its log (it did not stop cleanly)");
            return false;
        }

        long[] t = [.. Enumerable.Range(1, 4).Select(i => long.Parse(totals.Groups[i].Value, CultureInfo.InvariantCulture))];
        bool match = t[0] == answered && t[1] == t[0] && t[2] == 0 && t[3] == refused;
        Console.WriteLine(FormattableString.Invariant($"service: taken {t[0]}, finished {t[1]}, unfinished {t[2]}, refused {t[3]}; clients: answered other than 503 {answered} (load {answered - service.StartupRequests} + {service.StartupRequests} startup /v1/models), 503 {refused}: {(match ? "every request the app took was answered" : "MISMATCH")}"));
        // A connection with no response while the app's count matches never reached the app (reported above, not a loss).
        return match && !answers.Any(a => a.Status >= 500 && a.Status != 503);
    }

    private static async Task SoakAsync(string root, int port, double seconds)
    {
        await using ServiceProcess service = await ServiceProcess.StartAsync(root, port, new Dictionary<string, string>());
        using HttpClient client = Load.Client(service.Url);

        // One request of each family in turn: every loop, batcher and codec stays in use.
        Shot Mix(int n) => (n % 6) switch
        {
            0 => new("gan", "/v1/gan/digits-gan/samples", Json(new { count = 4, seed = n, class_label = n % 10 })),
            1 => new("vae", "/v1/vae/digits-vae/samples", Json(new { count = 4, seed = n, class_label = n % 10 })),
            2 => new("flow", "/v1/flow/digits-flow/samples", Json(new { count = 4, seed = n, class_label = n % 10 })),
            3 => new("diffusion", "/v1/diffusion/digits-ddpm/samples", Json(new { count = 1, steps = 20, seed = n, class_label = n % 10 })),
            4 => new("ar", "/v1/ar/words-ar/samples", Json(new { count = 2, seed = n, temperature = 0.8 })),
            _ => TextToImage(n) with { Class = "txt2img" },
        };

        var warm = new Load(client);
        await warm.ClosedLoopAsync(8, 10, (w, i) => Mix((w * 10_000) + i));
        var capacityRun = new Load(client);
        double elapsed = await capacityRun.ClosedLoopAsync(8, 20, (w, i) => Mix((w * 10_000) + i + 5000));
        double capacity = capacityRun.Answers.Count(a => a.Status == 200) / elapsed;
        double rate = 0.7 * capacity;
        Console.WriteLine(FormattableString.Invariant($"capacity of the mix (closed loop, 8 clients, 20 s after 10 s warm-up): {capacity:0.0} req/s; soak at 70 %: {rate:0.0} req/s for {seconds:0} s"));

        var soak = new Load(client);
        using var rssStop = new CancellationTokenSource();
        Task<List<(double Seconds, double MiB)>> rss = service.SampleRssAsync(TimeSpan.FromSeconds(5), rssStop.Token);
        await soak.OpenLoopAsync(rate, seconds, seed: 11, (_, n) => Mix(1_000_000 + n));
        await rssStop.CancelAsync();
        List<(double Seconds, double MiB)> samples = await rss;

        Console.WriteLine();
        Console.WriteLine("| minute | requests | non-200 | p50 ms | p99 ms | RSS MiB (mean) |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        int minutes = (int)Math.Ceiling(seconds / 60);
        for (int m = 0; m < minutes; m++)
        {
            Answer[] inMinute = [.. soak.Answers.Where(a => a.At >= m * 60 && a.At < (m + 1) * 60)];
            double[] ok = [.. inMinute.Where(a => a.Status == 200).Select(a => a.Ms)];
            double mib = samples.Where(x => x.Seconds >= m * 60 && x.Seconds < (m + 1) * 60).Select(x => x.MiB).DefaultIfEmpty(double.NaN).Average();
            Console.WriteLine(FormattableString.Invariant($"| {m + 1} | {inMinute.Length} | {Others(inMinute, 200)} | {Stats.Percentile(ok, 0.5):0} | {Stats.Percentile(ok, 0.99):0} | {mib:0} |"));
        }

        Console.WriteLine();
        Console.WriteLine(StatusTable(soak.Answers));
        double first = samples.Where(x => x.Seconds >= 60 && x.Seconds < 120).Select(x => x.MiB).DefaultIfEmpty(double.NaN).Average();
        double last = samples.Where(x => x.Seconds >= seconds - 60).Select(x => x.MiB).DefaultIfEmpty(double.NaN).Average();
        int errors = soak.Answers.Count(a => a.Status != 200);
        Console.WriteLine(FormattableString.Invariant($"error rate: {errors} of {soak.Answers.Count} ({100.0 * errors / Math.Max(1, soak.Answers.Count):0.000} %)"));
        Console.WriteLine(FormattableString.Invariant($"RSS: minute 2 mean {first:0} MiB, last minute mean {last:0} MiB, growth {100 * (last - first) / first:+0.0;-0.0} % (peak {samples.Max(x => x.MiB):0} MiB)"));
    }

    /// <summary>Per class and status: count, p50, p99, max latency (ms).</summary>
    private static string StatusTable(IReadOnlyList<Answer> answers)
    {
        var text = new StringBuilder("| class | status | requests | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- | --- |");
        foreach (var group in answers.GroupBy(a => (a.Class, a.Status)).OrderBy(g => g.Key.Class, StringComparer.Ordinal).ThenBy(g => g.Key.Status))
        {
            double[] ms = [.. group.Select(a => a.Ms)];
            text.Append(FormattableString.Invariant($"\n| {group.Key.Class} | {(group.Key.Status == 0 ? "connection failed" : group.Key.Status)} | {ms.Length} | {Stats.Percentile(ms, 0.5):0} | {Stats.Percentile(ms, 0.99):0} | {ms.Max():0} |"));
        }

        return text.ToString();
    }

    private static int Others(IEnumerable<Answer> answers, int status) => answers.Count(a => a.Status != status);

    private static string Statuses(IEnumerable<Answer> answers) =>
        string.Join(' ', answers.Where(a => a.Status != 200).GroupBy(a => a.Status).Select(g => FormattableString.Invariant($"({g.Key}: {g.Count()})")));

    private static string Json(object body) => JsonSerializer.Serialize(body);

    private static string Sha256Hex(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
