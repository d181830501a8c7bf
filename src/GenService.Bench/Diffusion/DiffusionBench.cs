using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GenService.Bench.Diffusion;

/// <summary>
/// Diffusion serving benchmarks (docs/benchmarks.md, "Iteration-level batching"):
/// <code>
///   dotnet run --project src/GenService.Bench -c Release -- diffusion mixed    [--seconds 15] [--runs 3] [--concurrency 64] [--load 0.7] [--open-loop false]
///   dotnet run --project src/GenService.Bench -c Release -- diffusion batching [--seconds 10] [--runs 3]
///   dotnet run --project src/GenService.Bench -c Release -- diffusion e2e      [--runs 5]
///   common: [--model digits-ddpm] [--out results.json] [--max-rows N (iteration mode's row cap; 0 = max_batch_size)]
///           [--config Key=Value,... (service settings, e.g. GenService:Instances=2)]
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
        s_maxRowsPerIteration = Get("max-rows", "0");
        s_config = BenchHost.ParseConfig(Get("config", "").Split(',', StringSplitOptions.RemoveEmptyEntries));
        Console.WriteLine($"# GenService diffusion benchmark '{scenario}': {model}, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var report = new JsonObject { ["scenario"] = scenario, ["model"] = model, ["seconds"] = seconds, ["runs"] = runs };
        switch (scenario)
        {
            case "mixed":
                await MixedAsync(root, model, seconds, runs, concurrency, Get("open-loop", "true") == "true" ? load : null, report);
                break;
            case "batching":
                await BatchingAsync(root, model, seconds, runs, report);
                break;
            case "e2e":
                await EndToEndAsync(root, model, runs, report);
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

    private static async Task MixedAsync(string root, string model, int seconds, int runs, int concurrency, double? openLoopLoad, JsonObject report)
    {
        string[] modes = ["request", "iteration"];
        var capacity = new Dictionary<string, double>();
        Console.WriteLine();
        Console.WriteLine($"## Capacity: closed loop, {concurrency} clients cycling 10/50/250-step DDIM, {seconds} s per run (after 3 s warm-up), {runs} runs");
        Console.WriteLine("| scheduling | run | req/s | sample-steps/s | p50 ms (10 / 50 / 250 steps) |");
        Console.WriteLine("| --- | ---: | ---: | ---: | --- |");
        foreach (string mode in modes)
        {
            await using BenchHost host = await StartAsync(root, model, mode);
            var rps = new List<double>();
            for (int run = 1; run <= runs; run++)
            {
                Outcome r = await ClosedLoopAsync(host, model, concurrency, seconds, warmup: run == 1 ? 3 : 1, MixSteps);
                rps.Add(r.RequestsPerSecond);
                Console.WriteLine(FormattableString.Invariant($"| {mode} | {run} | {r.RequestsPerSecond:0.0} | {r.StepsPerSecond:0} | {r.P(10, 0.5):0.0} / {r.P(50, 0.5):0.0} / {r.P(250, 0.5):0.0} |"));
                report[$"capacity_{mode}_{run}"] = r.ToJson();
            }

            capacity[mode] = Stats.Median(rps);
            report[$"capacity_{mode}"] = capacity[mode];
        }

        Console.WriteLine(FormattableString.Invariant($"\nmedian capacity: request-level {capacity["request"]:0.0} req/s, iteration-level {capacity["iteration"]:0.0} req/s ({capacity["iteration"] / capacity["request"]:0.00}x)"));

        if (openLoopLoad is not { } load)
        {
            return; // --open-loop false: capacity only (e.g. at another --concurrency)
        }

        // Same offered load for both modes: a share of the baseline's capacity, and the same share of the new one's.
        foreach ((string basis, double rate) in new[] { ("request", load * capacity["request"]), ("iteration", load * capacity["iteration"]) })
        {
            Console.WriteLine();
            Console.WriteLine(FormattableString.Invariant($"## Open loop: Poisson arrivals at {rate:0.0} req/s ({load:P0} of the {basis}-level capacity), {seconds} s of arrivals per run, {runs} runs"));
            Console.WriteLine("| scheduling | run | offered req/s | completed req/s | p50 10-step ms | p99 10-step ms | p50 50-step ms | p99 50-step ms | p50 250-step ms | p99 250-step ms | failed |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (string mode in modes)
            {
                await using BenchHost host = await StartAsync(root, model, mode);
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

    private static async Task BatchingAsync(string root, string model, int seconds, int runs, JsonObject report)
    {
        Console.WriteLine();
        Console.WriteLine($"## Batching on vs off: 64 closed-loop clients, 1 sample of 50-step DDIM each, {seconds} s per run, {runs} runs");
        Console.WriteLine("| scheduling | max_batch_size | run | req/s (= samples/s) | p50 ms | p99 ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (string mode in new[] { "iteration", "request" })
        {
            // Batching off = a served copy of the model with max_batch_size 1.
            foreach (int maxBatch in new[] { 64, 1 })
            {
                await using BenchHost host = await StartAsync(root, model, mode, maxBatch == 1 ? m => m["batching"]!["max_batch_size"] = 1 : (Action<JsonNode>?)null);
                var rps = new List<double>();
                for (int run = 1; run <= runs; run++)
                {
                    Outcome r = await ClosedLoopAsync(host, model, 64, seconds, warmup: run == 1 ? 2 : 0, [50]);
                    rps.Add(r.RequestsPerSecond);
                    Console.WriteLine(FormattableString.Invariant($"| {mode} | {maxBatch} | {run} | {r.RequestsPerSecond:0.0} | {r.P(50, 0.5):0.0} | {r.P(50, 0.99):0.0} |"));
                }

                report[$"{mode}_batch{maxBatch}"] = Stats.Median(rps);
            }

            Console.WriteLine(FormattableString.Invariant($"| {mode} | median ratio on/off | | {report[$"{mode}_batch64"]!.GetValue<double>() / report[$"{mode}_batch1"]!.GetValue<double>():0.0}x | | |"));
        }
    }

    private static async Task EndToEndAsync(string root, string model, int runs, JsonObject report)
    {
        Console.WriteLine();
        Console.WriteLine($"## End to end: one request for 64 samples of 50-step DDIM (seed fixed), {runs} runs after 2 warm-up requests");
        Console.WriteLine("| scheduling | run | wall ms | server compute_ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");
        foreach (string mode in new[] { "iteration", "request" })
        {
            await using BenchHost host = await StartAsync(root, model, mode);
            var body = new { count = 64, steps = 50, sampler = "ddim", seed = 1, class_label = 3, output = "tensor" };
            for (int i = 0; i < 2; i++)
            {
                await host.PostAsync(Route(model), body);
            }

            var wall = new List<double>();
            for (int run = 1; run <= runs; run++)
            {
                long t0 = Stopwatch.GetTimestamp();
                JsonNode r = await host.PostAsync(Route(model), body);
                double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                wall.Add(ms);
                Console.WriteLine(FormattableString.Invariant($"| {mode} | {run} | {ms:0.0} | {r["timings"]!["compute_ms"]!.GetValue<double>():0.0} |"));
            }

            report[$"e2e_{mode}_ms"] = Stats.Median(wall);
            Console.WriteLine(FormattableString.Invariant($"| {mode} | median | {Stats.Median(wall):0.0} | |"));
        }
    }

    /// <summary>Closed loop: each client sends one request, waits for it, sends the next (cycling the step classes).</summary>
    private static Task<Outcome> ClosedLoopAsync(BenchHost host, string model, int clients, int seconds, int warmup, int[] steps)
        => DiffusionLoad.ClosedLoopAsync(host, Route(model), clients, seconds, warmup, (w, i) =>
        {
            int s = steps[(w + i) % steps.Length];
            return (s, Body(s, (w * 100_000) + i));
        });

    /// <summary>Open loop: Poisson arrivals at <paramref name="rate"/> for <paramref name="seconds"/>, step class drawn uniformly.</summary>
    private static Task<Outcome> OpenLoopAsync(BenchHost host, string model, double rate, int seconds, int seed)
        => DiffusionLoad.OpenLoopAsync(host, Route(model), rate, seconds, seed, (rng, n) =>
        {
            int s = MixSteps[rng.Next(MixSteps.Length)];
            return (s, Body(s, n));
        });

    private static string s_maxRowsPerIteration = "0";

    /// <summary>--config Key=Value,...: service settings for every host of the run (e.g. GenService:Instances=2).</summary>
    private static KeyValuePair<string, string?>[] s_config = [];

    /// <summary>The service on <paramref name="model"/> in one scheduling mode (row cap from --max-rows).</summary>
    private static Task<BenchHost> StartAsync(string root, string model, string scheduling, Action<JsonNode>? editManifest = null)
        => BenchHost.StartAsync(root, model, new Dictionary<string, string?>(s_config)
        {
            ["GenService:Diffusion:Scheduling"] = scheduling,
            ["GenService:Diffusion:MaxRowsPerIteration"] = s_maxRowsPerIteration,
        }, editManifest);

    private static string Route(string model) => $"/v1/diffusion/{model}/samples";

    private static object Body(int steps, int seed) => new { count = 1, steps, sampler = "ddim", seed, class_label = seed % 10, output = "tensor" };
}
