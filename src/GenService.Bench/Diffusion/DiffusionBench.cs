using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenService.Api.Families;
using GenService.Api.Hosting;
using GenService.Api.KServe;
using GenService.Api.Models;
using GenService.Api.Operations;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace GenService.Bench.Diffusion;

/// <summary>
/// Diffusion serving benchmarks (docs/benchmarks.md, "Iteration-level batching"):
/// <code>
///   dotnet run --project src/GenService.Bench -c Release -- diffusion mixed    [--seconds 15] [--runs 3] [--concurrency 64] [--load 0.7]
///   dotnet run --project src/GenService.Bench -c Release -- diffusion batching [--seconds 10] [--runs 3]
///   dotnet run --project src/GenService.Bench -c Release -- diffusion e2e      [--runs 5]
///   common: [--model digits-ddpm] [--out results.json] [--max-rows N (iteration mode's row cap; 0 = max_batch_size)]
/// </code>
/// mixed: one third each of 10, 50 and 250-step DDIM requests (1 sample). First the capacity of each scheduling
/// mode, closed loop; then open-loop Poisson arrivals at --load x the request-level capacity, both modes at the
/// same rate. Latency is measured from each request's scheduled arrival (no coordinated omission); percentiles
/// are exact (every latency kept and sorted).
/// batching: 64 closed-loop clients, each asking for 1 sample of 50-step DDIM; the model as shipped vs a copy
/// with max_batch_size 1 (batching off), in both scheduling modes.
/// e2e: one request for 64 samples of 50-step DDIM; wall time per request.
/// </summary>
internal static class DiffusionBench
{
    private static readonly int[] MixSteps = [10, 50, 250];

    public static async Task<int> RunAsync(string root, string[] args)
    {
        string scenario = args.Length > 0 ? args[0] : "mixed";
        string Get(string name, string fallback)
        {
            int i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        int seconds = int.Parse(Get("seconds", scenario == "batching" ? "10" : "15"), CultureInfo.InvariantCulture);
        int runs = int.Parse(Get("runs", "3"), CultureInfo.InvariantCulture);
        int concurrency = int.Parse(Get("concurrency", "64"), CultureInfo.InvariantCulture);
        double load = double.Parse(Get("load", "0.7"), CultureInfo.InvariantCulture);
        string model = Get("model", "digits-ddpm");
        string? outFile = Get("out", "") is { Length: > 0 } o ? o : null;
        Host.MaxRowsPerIteration = Get("max-rows", "0");
        string models = Path.Combine(root, "models");
        Console.WriteLine($"# GenService diffusion benchmark '{scenario}': {model}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var report = new JsonObject { ["scenario"] = scenario, ["model"] = model, ["seconds"] = seconds, ["runs"] = runs };
        switch (scenario)
        {
            case "mixed":
                await MixedAsync(models, model, seconds, runs, concurrency, load, report);
                break;
            case "batching":
                await BatchingAsync(models, model, seconds, runs, report);
                break;
            case "e2e":
                await EndToEndAsync(models, model, runs, report);
                break;
            default:
                Console.Error.WriteLine("scenario: mixed | batching | e2e");
                return 2;
        }

        if (outFile is not null)
        {
            await File.WriteAllTextAsync(outFile, report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"results: {outFile}");
        }

        return 0;
    }

    private static async Task MixedAsync(string models, string model, int seconds, int runs, int concurrency, double load, JsonObject report)
    {
        string[] modes = ["request", "iteration"];
        var capacity = new Dictionary<string, double>();
        Console.WriteLine();
        Console.WriteLine($"## Capacity: closed loop, {concurrency} clients cycling 10/50/250-step DDIM, {seconds} s per run (after 3 s warm-up), {runs} runs");
        Console.WriteLine("| scheduling | run | req/s | sample-steps/s | p50 ms (10 / 50 / 250 steps) |");
        Console.WriteLine("| --- | ---: | ---: | ---: | --- |");
        foreach (string mode in modes)
        {
            await using Host host = await Host.StartAsync(models, mode);
            var rps = new List<double>();
            for (int run = 1; run <= runs; run++)
            {
                Outcome r = await ClosedLoopAsync(host, model, concurrency, seconds, warmup: run == 1 ? 3 : 1, MixSteps);
                rps.Add(r.RequestsPerSecond);
                Console.WriteLine(FormattableString.Invariant($"| {mode} | {run} | {r.RequestsPerSecond:0.0} | {r.StepsPerSecond:0} | {r.P(10, 0.5):0.0} / {r.P(50, 0.5):0.0} / {r.P(250, 0.5):0.0} |"));
                report[$"capacity_{mode}_{run}"] = r.ToJson();
            }

            capacity[mode] = Median(rps);
            report[$"capacity_{mode}"] = capacity[mode];
        }

        Console.WriteLine(FormattableString.Invariant($"\nmedian capacity: request-level {capacity["request"]:0.0} req/s, iteration-level {capacity["iteration"]:0.0} req/s ({capacity["iteration"] / capacity["request"]:0.00}x)"));

        // Same offered load for both modes: a share of the baseline's capacity, and the same share of the new one's.
        foreach ((string basis, double rate) in new[] { ("request", load * capacity["request"]), ("iteration", load * capacity["iteration"]) })
        {
            Console.WriteLine();
            Console.WriteLine(FormattableString.Invariant($"## Open loop: Poisson arrivals at {rate:0.0} req/s ({load:P0} of the {basis}-level capacity), {seconds} s of arrivals per run, {runs} runs"));
            Console.WriteLine("| scheduling | run | offered req/s | completed req/s | p50 10-step ms | p99 10-step ms | p50 50-step ms | p99 50-step ms | p50 250-step ms | p99 250-step ms | failed |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (string mode in modes)
            {
                await using Host host = await Host.StartAsync(models, mode);
                await ClosedLoopAsync(host, model, concurrency, 2, warmup: 0, MixSteps);
                var runsOut = new JsonArray();
                for (int run = 1; run <= runs; run++)
                {
                    Outcome r = await OpenLoopAsync(host, model, rate, seconds, seed: run);
                    Console.WriteLine(FormattableString.Invariant(
                        $"| {mode} | {run} | {rate:0.0} | {r.RequestsPerSecond:0.0} | {r.P(10, 0.5):0.0} | {r.P(10, 0.99):0.0} | {r.P(50, 0.5):0.0} | {r.P(50, 0.99):0.0} | {r.P(250, 0.5):0.0} | {r.P(250, 0.99):0.0} | {r.Failed} |"));
                    runsOut.Add(r.ToJson());
                }

                report[$"open_{basis}_{mode}"] = new JsonObject { ["rate"] = rate, ["runs"] = runsOut };
            }
        }
    }

    private static async Task BatchingAsync(string models, string model, int seconds, int runs, JsonObject report)
    {
        // Batching off = the same model with max_batch_size 1, in a temporary repository.
        string off = Path.Combine(Path.GetTempPath(), "genservice-bench-nobatch-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(off, model));
        foreach (string f in Directory.GetFiles(Path.Combine(models, model)))
        {
            File.Copy(f, Path.Combine(off, model, Path.GetFileName(f)));
        }

        string manifestPath = Path.Combine(off, model, "model.json");
        JsonNode manifest = JsonNode.Parse(await File.ReadAllTextAsync(manifestPath))!;
        manifest["batching"]!["max_batch_size"] = 1;
        await File.WriteAllTextAsync(manifestPath, manifest.ToJsonString());

        Console.WriteLine();
        Console.WriteLine($"## Batching on vs off: 64 closed-loop clients, 1 sample of 50-step DDIM each, {seconds} s per run, {runs} runs");
        Console.WriteLine("| scheduling | max_batch_size | run | req/s (= samples/s) | p50 ms | p99 ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        try
        {
            foreach (string mode in new[] { "iteration", "request" })
            {
                foreach ((string repo, int maxBatch) in new[] { (models, 64), (off, 1) })
                {
                    await using Host host = await Host.StartAsync(repo, mode);
                    var rps = new List<double>();
                    for (int run = 1; run <= runs; run++)
                    {
                        Outcome r = await ClosedLoopAsync(host, model, 64, seconds, warmup: run == 1 ? 2 : 0, [50]);
                        rps.Add(r.RequestsPerSecond);
                        Console.WriteLine(FormattableString.Invariant($"| {mode} | {maxBatch} | {run} | {r.RequestsPerSecond:0.0} | {r.P(50, 0.5):0.0} | {r.P(50, 0.99):0.0} |"));
                    }

                    report[$"{mode}_batch{maxBatch}"] = Median(rps);
                }

                Console.WriteLine(FormattableString.Invariant($"| {mode} | median ratio on/off | | {report[$"{mode}_batch64"]!.GetValue<double>() / report[$"{mode}_batch1"]!.GetValue<double>():0.0}x | | |"));
            }
        }
        finally
        {
            Directory.Delete(off, recursive: true);
        }
    }

    private static async Task EndToEndAsync(string models, string model, int runs, JsonObject report)
    {
        Console.WriteLine();
        Console.WriteLine($"## End to end: one request for 64 samples of 50-step DDIM (seed fixed), {runs} runs after 2 warm-up requests");
        Console.WriteLine("| scheduling | run | wall ms | server compute_ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");
        foreach (string mode in new[] { "iteration", "request" })
        {
            await using Host host = await Host.StartAsync(models, mode);
            var body = new { count = 64, steps = 50, sampler = "ddim", seed = 1, class_label = 3, output = "tensor" };
            for (int i = 0; i < 2; i++)
            {
                await host.PostAsync(model, body);
            }

            var wall = new List<double>();
            for (int run = 1; run <= runs; run++)
            {
                long t0 = Stopwatch.GetTimestamp();
                JsonNode r = await host.PostAsync(model, body);
                double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                wall.Add(ms);
                Console.WriteLine(FormattableString.Invariant($"| {mode} | {run} | {ms:0.0} | {r["timings"]!["compute_ms"]!.GetValue<double>():0.0} |"));
            }

            report[$"e2e_{mode}_ms"] = Median(wall);
            Console.WriteLine(FormattableString.Invariant($"| {mode} | median | {Median(wall):0.0} | |"));
        }
    }

    /// <summary>Closed loop: each client sends one request, waits for it, sends the next (cycling the step classes).</summary>
    private static async Task<Outcome> ClosedLoopAsync(Host host, string model, int clients, int seconds, int warmup, int[] steps)
    {
        if (warmup > 0)
        {
            await ClosedLoopAsync(host, model, clients, warmup, 0, steps);
        }

        var outcome = new Outcome();
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * (double)Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, clients).Select(w => Task.Run(async () =>
        {
            for (int i = 0; Stopwatch.GetTimestamp() < end; i++)
            {
                int s = steps[(w + i) % steps.Length];
                long t0 = Stopwatch.GetTimestamp();
                bool ok = await host.TryPostAsync(model, Body(s, (w * 100_000) + i));
                outcome.Add(s, Stopwatch.GetElapsedTime(t0).TotalMilliseconds, ok);
            }
        })));
        outcome.Seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return outcome;
    }

    /// <summary>Open loop: Poisson arrivals at <paramref name="rate"/> for <paramref name="seconds"/>, step class drawn uniformly.</summary>
    private static async Task<Outcome> OpenLoopAsync(Host host, string model, double rate, int seconds, int seed)
    {
        var rng = new Random(seed);
        var outcome = new Outcome();
        var inFlight = new List<Task>();
        long start = Stopwatch.GetTimestamp();
        double at = 0;
        for (int i = 0; ; i++)
        {
            at += -Math.Log(1 - rng.NextDouble()) / rate;
            if (at >= seconds)
            {
                break;
            }

            int s = MixSteps[rng.Next(MixSteps.Length)];
            TimeSpan wait = TimeSpan.FromSeconds(at) - Stopwatch.GetElapsedTime(start);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            long scheduled = start + (long)(at * Stopwatch.Frequency);
            int n = i;
            inFlight.Add(Task.Run(async () =>
            {
                bool ok = await host.TryPostAsync(model, Body(s, n));

                // From the scheduled arrival, so a late sender never hides queueing.
                outcome.Add(s, (Stopwatch.GetTimestamp() - scheduled) * 1000.0 / Stopwatch.Frequency, ok);
            }));
        }

        await Task.WhenAll(inFlight);
        outcome.Seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return outcome;
    }

    private static object Body(int steps, int seed) => new { count = 1, steps, sampler = "ddim", seed, class_label = seed % 10, output = "tensor" };

    private static double Median(List<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Latencies per step class (all kept: exact percentiles), failures, duration.</summary>
    private sealed class Outcome
    {
        private readonly Dictionary<int, List<double>> _latencies = [];
        private int _failed;

        public double Seconds { get; set; }

        public int Failed => _failed;

        public int Completed
        {
            get
            {
                lock (_latencies)
                {
                    return _latencies.Values.Sum(l => l.Count);
                }
            }
        }

        public double RequestsPerSecond => Completed / Seconds;

        public double StepsPerSecond
        {
            get
            {
                lock (_latencies)
                {
                    return _latencies.Sum(p => (double)p.Key * p.Value.Count) / Seconds;
                }
            }
        }

        public void Add(int steps, double ms, bool ok)
        {
            if (!ok)
            {
                Interlocked.Increment(ref _failed);
                return;
            }

            lock (_latencies)
            {
                if (!_latencies.TryGetValue(steps, out List<double>? list))
                {
                    _latencies[steps] = list = [];
                }

                list.Add(ms);
            }
        }

        /// <summary>Exact percentile (nearest rank) of one class, ms; NaN when the class has no sample.</summary>
        public double P(int steps, double q)
        {
            lock (_latencies)
            {
                if (!_latencies.TryGetValue(steps, out List<double>? list) || list.Count == 0)
                {
                    return double.NaN;
                }

                double[] sorted = [.. list.Order()];
                return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
            }
        }

        public JsonObject ToJson()
        {
            var o = new JsonObject { ["seconds"] = Seconds, ["completed"] = Completed, ["failed"] = Failed, ["req_per_s"] = RequestsPerSecond, ["sample_steps_per_s"] = StepsPerSecond };
            lock (_latencies)
            {
                foreach (int s in _latencies.Keys.Order())
                {
                    o[$"steps_{s}"] = new JsonObject { ["n"] = _latencies[s].Count, ["p50_ms"] = P(s, 0.5), ["p90_ms"] = P(s, 0.9), ["p99_ms"] = P(s, 0.99) };
                }
            }

            return o;
        }
    }

    /// <summary>The service as Program.cs builds it, on Kestrel at 127.0.0.1, with a scheduling mode and model folder.</summary>
    private sealed class Host : IAsyncDisposable
    {
        private readonly WebApplication _app;

        /// <summary>GenService:Diffusion:MaxRowsPerIteration for every host started (0 = max_batch_size).</summary>
        public static string MaxRowsPerIteration { get; set; } = "0";


        private Host(WebApplication app, HttpClient client)
        {
            _app = app;
            Client = client;
        }

        public HttpClient Client { get; }

        public static async Task<Host> StartAsync(string models, string scheduling)
        {
            WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Configuration["GenService:ModelRepository"] = models;
            builder.Configuration["GenService:Diffusion:Scheduling"] = scheduling;
            builder.Configuration["GenService:Diffusion:MaxRowsPerIteration"] = MaxRowsPerIteration;
            builder.Configuration["Serilog:MinimumLevel:Default"] = "Warning";
            builder.AddGenService();
            WebApplication app = builder.Build();
            app.UseGenService();
            app.MapModelEndpoints();
            app.MapKServeEndpoints();
            app.MapFamilyEndpoints();
            app.MapOperationsEndpoints();
            await app.StartAsync();
            string url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, UseProxy = false })
            {
                BaseAddress = new Uri(url),
                Timeout = TimeSpan.FromMinutes(5),
            };
            for (int i = 0; i < 600; i++)
            {
                using HttpResponseMessage ready = await client.GetAsync("/v2/health/ready");
                if (ready.IsSuccessStatusCode)
                {
                    break;
                }

                await Task.Delay(100);
            }

            return new Host(app, client);
        }

        public async Task<bool> TryPostAsync(string model, object body)
        {
            using HttpResponseMessage response = await Client.PostAsJsonAsync($"/v1/diffusion/{model}/samples", body);
            await response.Content.ReadAsByteArrayAsync();
            return response.StatusCode == HttpStatusCode.OK;
        }

        public async Task<JsonNode> PostAsync(string model, object body)
        {
            using HttpResponseMessage response = await Client.PostAsJsonAsync($"/v1/diffusion/{model}/samples", body);
            string text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"{response.StatusCode}: {text}");
            }

            return JsonNode.Parse(text)!;
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
