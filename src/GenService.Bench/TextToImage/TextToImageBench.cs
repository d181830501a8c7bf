using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenService.Bench.Diffusion;

namespace GenService.Bench.TextToImage;

/// <summary>
/// Text-to-image serving benchmarks (docs/benchmarks.md, "Text-to-image (issue 13)"), on an export folder served at
/// POST /v1/diffusion/{model}/samples:
/// <code>
///   dotnet run --project src/GenService.Bench -c Release -- txt2img load   [--seconds 10] [--runs 3] [--concurrency 1,16,64]
///   dotnet run --project src/GenService.Bench -c Release -- txt2img mixed  [--seconds 15] [--runs 3] [--concurrency 64] [--load 0.7] [--rate R] [--open-loop true]
///   dotnet run --project src/GenService.Bench -c Release -- txt2img cache  [--seconds 10] [--runs 3] [--concurrency 16] [--prompts 32]
///   dotnet run --project src/GenService.Bench -c Release -- txt2img scalar [--seconds 15] [--runs 3] [--concurrency 64] [--load 0.7] [--rate R]
///       [--scalar-dir DIR (else exported into a temporary folder by train_txt2img.py --export-only --timestep scalar)]
///       [--modes iteration,request]
///   common: [--model digits-txt2img] [--model-dir DIR (serve DIR as the model; e.g. a tiny test export)] [--out results.json]
///           [--config Key=Value,...] [--output png|tensor (default: the route's default, png)]
/// </code>
/// Every request is one sample at the route's defaults unless the scenario says otherwise (guidance 7.5, the
/// folder's scheduler, e.g. pndm, 50 steps), with a caption of the model's grammar ("a small red seven on a blue
/// background") and a new seed. Runs are interleaved (run 1 of every variant, then run 2, ...), each variant on a
/// fresh service so that one host at a time owns the process's /metrics; tables report each run and the median.
/// <list type="bullet">
/// <item>load: closed loop at each concurrency, captions cycling through all 600 of the grammar (the prompt cache
/// warmed with them first): req/s, p50, p99.</item>
/// <item>mixed: one third each of 10, 25 and 50-step requests; capacity (closed loop) of iteration- and
/// request-level scheduling, then open-loop Poisson arrivals at --load x the request-level capacity (or --rate).</item>
/// <item>cache: the same closed loop with GenService:TextToImage:PromptCacheSize=0 and with the default, captions
/// drawn at random from --prompts distinct ones; also one client with the cache off, for the cost of one
/// text-encoder call against one UNet call from the compute histograms on /metrics.</item>
/// <item>scalar: the mixed load on the shipped UNet (timestep [batch]) and on the same weights exported with a
/// scalar timestep, whose rows share a call only at equal timesteps.</item>
/// </list>
/// </summary>
internal static class TextToImageBench
{
    private static readonly int[] MixSteps = [10, 25, 50];

    /// <summary>The model's caption grammar (models/training/txt2img_data.py): 2 sizes x 6 x 5 colour pairs x 10 digits.</summary>
    internal static readonly string[] Captions = MakeCaptions();

    private static KeyValuePair<string, string?>[] s_config = [];
    private static string? s_output;

    public static async Task<int> RunAsync(string root, string[] args)
    {
        string scenario = args.Length > 0 ? args[0] : "load";
        string Get(string name, string fallback)
        {
            int i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        int Int(string name, string fallback) => int.Parse(Get(name, fallback), CultureInfo.InvariantCulture);
        bool longRuns = scenario is "mixed" or "scalar";
        int seconds = Int("seconds", longRuns ? "15" : "10");
        int runs = Int("runs", "3");
        int[] concurrency = [.. Get("concurrency", scenario switch { "load" => "1,16,64", "cache" => "16", _ => "64" }).Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))];
        double load = double.Parse(Get("load", "0.7"), CultureInfo.InvariantCulture);
        double? rate = Get("rate", "") is { Length: > 0 } r ? double.Parse(r, CultureInfo.InvariantCulture) : null;
        string? modelDir = Get("model-dir", "") is { Length: > 0 } d ? Path.GetFullPath(d) : null;
        string model = Get("model", modelDir is null ? "digits-txt2img" : Path.GetFileName(modelDir.TrimEnd('/')));
        var target = new Target(root, model, modelDir ?? Path.Combine(root, "models", model));
        string? outFile = Get("out", "") is { Length: > 0 } o ? o : null;
        s_config = BenchHost.ParseConfig(Get("config", "").Split(',', StringSplitOptions.RemoveEmptyEntries));
        s_output = Get("output", "") is { Length: > 0 } output ? output : null;
        if (!File.Exists(Path.Combine(target.Source, "model_index.json")))
        {
            Console.Error.WriteLine($"{target.Source}: no model_index.json; txt2img benchmarks serve a text-to-image export folder (--model or --model-dir).");
            return 2;
        }

        Console.WriteLine($"# GenService text-to-image benchmark '{scenario}': {model} ({target.Source}), {Environment.ProcessorCount} cores, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");
        var report = new JsonObject { ["scenario"] = scenario, ["model"] = model, ["source"] = target.Source, ["seconds"] = seconds, ["runs"] = runs, ["started_utc"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture) };
        switch (scenario)
        {
            case "load":
                await LoadAsync(target, concurrency, seconds, runs, report);
                break;
            case "mixed":
                var variants = new[] { new Variant("request", "request", target), new Variant("iteration", "iteration", target) };
                await MixedAsync(variants, concurrency[0], seconds, runs, Get("open-loop", "true") == "true", load, rate, "request", report);
                break;
            case "cache":
                await CacheAsync(target, concurrency[0], seconds, runs, Int("prompts", "32"), report);
                break;
            case "scalar":
                await ScalarAsync(root, target, Get("scalar-dir", ""), Get("modes", "iteration,request").Split(','), concurrency[0], seconds, runs, load, rate, report);
                break;
            default:
                Console.Error.WriteLine("scenario: load | mixed | cache | scalar");
                return 2;
        }

        report["finished_utc"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture);
        Console.WriteLine();
        Console.WriteLine($"load average at the end: {LoadAverage()}");
        if (outFile is not null)
        {
            await File.WriteAllTextAsync(outFile, report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"results: {outFile}");
        }

        return 0;
    }

    /// <summary>Closed loop at each concurrency, one service (default settings), concurrencies interleaved run by run.</summary>
    private static async Task LoadAsync(Target target, int[] concurrency, int seconds, int runs, JsonObject report)
    {
        Console.WriteLine();
        Console.WriteLine($"## Load: closed loop, C clients, 1 sample per request at the defaults, captions cycling through {Captions.Length} (all in the prompt cache), {seconds} s per run (after 2 s warm-up), {runs} runs");
        Console.WriteLine("| C | run | req/s | p50 ms | p99 ms | failed | UNet rows/call | UNet ms/call | prompt cache hits | load avg |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        await using BenchHost host = await StartAsync(target, "iteration");

        // Every caption once, 1-step requests, so the prompt cache (default 1,024 entries) holds all 600 before the
        // first run, as on a server that has seen them: every run then sees the same cache (the cache scenario
        // measures what it saves).
        await WarmPromptCacheAsync(host, Route(target.Model));
        var results = concurrency.ToDictionary(c => c, _ => new List<(Outcome Outcome, Calls Calls)>());
        for (int run = 1; run <= runs; run++)
        {
            foreach (int c in concurrency)
            {
                var counter = 0;
                (Outcome r, Calls calls) = await ClosedLoopAsync(host, Route(target.Model), c, seconds, warmup: 2, (w, i) =>
                {
                    int n = Interlocked.Increment(ref counter);
                    return (0, Body(Captions[n % Captions.Length], Seed(w, i, run), steps: null));
                });
                results[c].Add((r, calls));
                Console.WriteLine(FormattableString.Invariant($"| {c} | {run} | {r.RequestsPerSecond:0.00} | {r.P(0.5):0.0} | {r.P(0.99):0.0} | {r.Failed} | {calls.RowsPerCall("denoiser"):0.0} | {calls.MsPerCall("denoiser"):0.00} | {calls.HitRate:P0} | {LoadAverage()} |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| C | median req/s | p50 ms | p99 ms (median run) | runs req/s |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | --- |");
        foreach (int c in concurrency)
        {
            List<(Outcome Outcome, Calls Calls)> list = results[c];
            (Outcome m, _) = list.OrderBy(x => x.Outcome.RequestsPerSecond).ElementAt(list.Count / 2);
            Console.WriteLine(FormattableString.Invariant($"| {c} | {m.RequestsPerSecond:0.00} | {m.P(0.5):0.0} | {m.P(0.99):0.0} | {string.Join(" / ", list.Select(x => x.Outcome.RequestsPerSecond.ToString("0.00", CultureInfo.InvariantCulture)))} |"));
            report[$"c{c}"] = new JsonObject
            {
                ["median_req_per_s"] = Stats.Median(list.Select(x => x.Outcome.RequestsPerSecond)),
                ["median_run"] = m.ToJson(),
                ["runs"] = new JsonArray([.. list.Select(x => (JsonNode)Json(x.Outcome, x.Calls))]),
            };
        }
    }

    /// <summary>
    /// The 10/25/50-step mix on each variant: capacity (closed loop), then open-loop Poisson arrivals at one rate for
    /// every variant (--rate, else --load x the median capacity of the variant named <paramref name="rateBasis"/>).
    /// </summary>
    private static async Task MixedAsync(Variant[] variants, int concurrency, int seconds, int runs, bool openLoop, double load, double? fixedRate, string rateBasis, JsonObject report)
    {
        Console.WriteLine();
        Console.WriteLine($"## Capacity: closed loop, {concurrency} clients cycling 10/25/50-step requests (1 sample, the folder's sampler, guidance 7.5), {seconds} s per run (after 3 s warm-up), {runs} runs interleaved");
        Console.WriteLine("| variant | run | req/s | sample-steps/s | p50 ms (10 / 25 / 50 steps) | UNet rows/call | UNet calls/iteration | UNet ms/call | failed | load avg |");
        Console.WriteLine("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |");
        var capacity = variants.ToDictionary(v => v.Name, _ => new List<double>());
        var capacityRuns = variants.ToDictionary(v => v.Name, _ => new JsonArray());
        for (int run = 1; run <= runs; run++)
        {
            foreach (Variant v in variants)
            {
                await using BenchHost host = await StartAsync(v.Target, v.Scheduling);
                (Outcome r, Calls calls) = await ClosedLoopAsync(host, Route(v.Target.Model), concurrency, seconds, warmup: 3, (w, i) =>
                {
                    int s = MixSteps[(w + i) % MixSteps.Length];
                    return (s, Body(Captions[((w * 7) + i) % Captions.Length], Seed(w, i, run), s));
                });
                capacity[v.Name].Add(r.RequestsPerSecond);
                capacityRuns[v.Name].Add(Json(r, calls));
                Console.WriteLine(FormattableString.Invariant($"| {v.Name} | {run} | {r.RequestsPerSecond:0.0} | {r.StepsPerSecond:0} | {r.P(10, 0.5):0.0} / {r.P(25, 0.5):0.0} / {r.P(50, 0.5):0.0} | {calls.RowsPerCall("denoiser"):0.0} | {calls.CallsPerIteration:0.00} | {calls.MsPerCall("denoiser"):0.00} | {r.Failed} | {LoadAverage()} |"));
            }
        }

        Console.WriteLine();
        foreach (Variant v in variants)
        {
            double median = Stats.Median(capacity[v.Name]);
            Console.WriteLine(FormattableString.Invariant($"median capacity {v.Name}: {median:0.0} req/s (runs {string.Join(" / ", capacity[v.Name].Select(x => x.ToString("0.0", CultureInfo.InvariantCulture)))})"));
            report[$"capacity_{v.Name}"] = median;
            report[$"capacity_{v.Name}_runs"] = capacityRuns[v.Name];
        }

        if (!openLoop)
        {
            return;
        }

        double rate = fixedRate ?? load * Stats.Median(capacity[rateBasis]);
        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant($"## Open loop: Poisson arrivals at {rate:0.0} req/s ({(fixedRate is null ? $"{load:P0} of the {rateBasis} capacity" : "--rate")}), step class drawn uniformly, {seconds} s of arrivals per run, {runs} runs interleaved; latency ms from the scheduled arrival"));
        Console.WriteLine("| variant | run | completed req/s | p50 10-step | p99 10-step | p50 25-step | p99 25-step | p50 50-step | p99 50-step | UNet rows/call | failed | load avg |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        report["open_rate"] = rate;
        var open = variants.ToDictionary(v => v.Name, _ => new JsonArray());
        for (int run = 1; run <= runs; run++)
        {
            foreach (Variant v in variants)
            {
                await using BenchHost host = await StartAsync(v.Target, v.Scheduling);
                await DiffusionLoad.ClosedLoopAsync(host, Route(v.Target.Model), concurrency, 2, 0, (w, i) => (MixSteps[(w + i) % 3], Body(Captions[i % Captions.Length], Seed(w, i, 0), MixSteps[(w + i) % 3])));
                (Outcome r, Calls calls) = await MeasureAsync(host, () => DiffusionLoad.OpenLoopAsync(host, Route(v.Target.Model), rate, seconds, seed: run, (rng, n) =>
                {
                    int s = MixSteps[rng.Next(MixSteps.Length)];
                    return (s, Body(Captions[rng.Next(Captions.Length)], (ulong)(1_000_000 * run) + (ulong)n, s));
                }));
                open[v.Name].Add(Json(r, calls));
                Console.WriteLine(FormattableString.Invariant(
                    $"| {v.Name} | {run} | {r.RequestsPerSecond:0.0} | {r.P(10, 0.5):0.0} | {r.P(10, 0.99):0.0} | {r.P(25, 0.5):0.0} | {r.P(25, 0.99):0.0} | {r.P(50, 0.5):0.0} | {r.P(50, 0.99):0.0} | {calls.RowsPerCall("denoiser"):0.0} | {r.Failed} | {LoadAverage()} |"));
            }
        }

        foreach (Variant v in variants)
        {
            report[$"open_{v.Name}"] = new JsonObject { ["rate"] = rate, ["runs"] = open[v.Name] };
        }
    }

    /// <summary>Every caption once (1-step requests, 16 at a time): afterwards the prompt cache holds all of them.</summary>
    private static async Task WarmPromptCacheAsync(BenchHost host, string route)
    {
        int next = -1;
        await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
        {
            for (int n; (n = Interlocked.Increment(ref next)) < Captions.Length;)
            {
                if (!await host.TryPostAsync(route, Body(Captions[n], (ulong)n + 1, steps: 1)))
                {
                    throw new InvalidOperationException($"the warm-up request for '{Captions[n]}' failed.");
                }
            }
        })));
        Dictionary<string, double> cache = await host.ScrapeAsync("genservice_prompt_cache_");
        Console.WriteLine(FormattableString.Invariant($"(prompt cache warmed with the {Captions.Length} captions, 1-step requests: {cache.GetValueOrDefault("genservice_prompt_cache_misses_total")} misses, {cache.GetValueOrDefault("genservice_prompt_cache_hits_total")} hits)"));
    }

    /// <summary>The prompt cache off (PromptCacheSize=0) against its default, interleaved; then one client with the cache off.</summary>
    private static async Task CacheAsync(Target target, int concurrency, int seconds, int runs, int prompts, JsonObject report)
    {
        prompts = Math.Clamp(prompts, 1, Captions.Length);
        Console.WriteLine();
        Console.WriteLine($"## Prompt cache: closed loop, {concurrency} clients, 1 sample per request at the defaults, each caption drawn at random from {prompts} (negative prompt empty), {seconds} s per run (after 2 s warm-up), {runs} runs interleaved");
        Console.WriteLine("| cache | run | req/s | p50 ms | p99 ms | hit rate | text-encoder calls/request | text-encoder rows/call | text-encoder ms/call | UNet rows/call | UNet ms/call | load avg |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
        (string Name, string Size)[] variants = [("off", "0"), ("default", "")];
        var results = variants.ToDictionary(v => v.Name, _ => new List<(Outcome Outcome, Calls Calls)>());
        for (int run = 1; run <= runs; run++)
        {
            foreach ((string name, string size) in variants)
            {
                await using BenchHost host = await StartAsync(target, "iteration", size.Length > 0 ? [new("GenService:TextToImage:PromptCacheSize", size)] : []);
                (Outcome r, Calls calls) = await ClosedLoopAsync(host, Route(target.Model), concurrency, seconds, warmup: 2, (w, i) =>
                {
                    int pick = new Random((run * 1_000_003) + (w * 10_007) + i).Next(prompts);
                    return (0, Body(Captions[pick], Seed(w, i, run), steps: null));
                });
                results[name].Add((r, calls));
                Console.WriteLine(FormattableString.Invariant(
                    $"| {name} | {run} | {r.RequestsPerSecond:0.00} | {r.P(0.5):0.0} | {r.P(0.99):0.0} | {calls.HitRate:P0} | {calls.Count("text_encoder") / r.Completed:0.00} | {calls.RowsPerCall("text_encoder"):0.00} | {calls.MsPerCall("text_encoder"):0.000} | {calls.RowsPerCall("denoiser"):0.0} | {calls.MsPerCall("denoiser"):0.000} | {LoadAverage()} |"));
            }
        }

        Console.WriteLine();
        Console.WriteLine("| cache | median req/s | p50 ms (median run) | runs req/s |");
        Console.WriteLine("| --- | ---: | ---: | --- |");
        foreach ((string name, _) in variants)
        {
            List<(Outcome Outcome, Calls Calls)> list = results[name];
            (Outcome m, _) = list.OrderBy(x => x.Outcome.RequestsPerSecond).ElementAt(list.Count / 2);
            Console.WriteLine(FormattableString.Invariant($"| {name} | {m.RequestsPerSecond:0.00} | {m.P(0.5):0.0} | {string.Join(" / ", list.Select(x => x.Outcome.RequestsPerSecond.ToString("0.00", CultureInfo.InvariantCulture)))} |"));
            report[$"cache_{name}"] = new JsonObject
            {
                ["median_req_per_s"] = Stats.Median(list.Select(x => x.Outcome.RequestsPerSecond)),
                ["median_p50_ms"] = Stats.Median(list.Select(x => x.Outcome.P(0.5))),
                ["runs"] = new JsonArray([.. list.Select(x => (JsonNode)Json(x.Outcome, x.Calls))]),
            };
        }

        // One client, cache off: every request encodes its prompt and the empty negative prompt (one row each, unless
        // the batcher merges the two), then runs its UNet steps alone (2 rows: unconditional and conditional).
        Console.WriteLine();
        Console.WriteLine($"## One client, cache off: the cost of one call of each graph (compute histograms on /metrics), {seconds} s per run, {runs} runs");
        Console.WriteLine("| run | req/s | text-encoder calls | rows/call | ms/call | UNet calls | rows/call | ms/call | VAE decoder ms/call | text-encoder call / UNet call |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        var single = new JsonArray();
        var ratios = new List<double>();
        for (int run = 1; run <= runs; run++)
        {
            await using BenchHost host = await StartAsync(target, "iteration", [new("GenService:TextToImage:PromptCacheSize", "0")]);
            (Outcome r, Calls calls) = await ClosedLoopAsync(host, Route(target.Model), 1, seconds, warmup: 2, (w, i) =>
                (0, Body(Captions[i % Captions.Length], Seed(w, i, run), steps: null)));
            double ratio = calls.MsPerCall("text_encoder") / calls.MsPerCall("denoiser");
            ratios.Add(ratio);
            single.Add(Json(r, calls));
            Console.WriteLine(FormattableString.Invariant(
                $"| {run} | {r.RequestsPerSecond:0.00} | {calls.Count("text_encoder"):0} | {calls.RowsPerCall("text_encoder"):0.00} | {calls.MsPerCall("text_encoder"):0.000} | {calls.Count("denoiser"):0} | {calls.RowsPerCall("denoiser"):0.00} | {calls.MsPerCall("denoiser"):0.000} | {calls.MsPerCall("vae_decoder"):0.000} | {ratio:0.00} |"));
        }

        report["single_client_cache_off"] = single;
        report["text_encoder_call_over_unet_call_median"] = Stats.Median(ratios);
    }

    /// <summary>
    /// The mixed load on the shipped UNet ([batch] timestep) and on the same weights with a scalar timestep (exported
    /// into a temporary folder unless --scalar-dir names one), in each scheduling mode of <paramref name="modes"/>.
    /// </summary>
    private static async Task ScalarAsync(string root, Target target, string scalarDir, string[] modes, int concurrency, int seconds, int runs, double load, double? rate, JsonObject report)
    {
        string? temporary = null;
        try
        {
            if (scalarDir.Length == 0)
            {
                temporary = Path.Combine(Path.GetTempPath(), $"genservice-scalar-{Environment.ProcessId}");
                scalarDir = Path.Combine(temporary, target.Model);
                await ExportScalarAsync(root, scalarDir);
            }

            scalarDir = Path.GetFullPath(scalarDir);
            report["scalar_source"] = scalarDir;
            var scalar = target with { Source = scalarDir };
            Variant[] variants = [.. modes.SelectMany(m => new[] { new Variant($"batch-{m}", m, target), new Variant($"scalar-{m}", m, scalar) })];

            // One rate for all: 70 % of what the scalar UNet sustains under iteration-level scheduling, unless --rate.
            string basis = variants.Any(v => v.Name == "scalar-iteration") ? "scalar-iteration" : variants[1].Name;
            await MixedAsync(variants, concurrency, seconds, runs, openLoop: true, load, rate, basis, report);
        }
        finally
        {
            if (temporary is not null && Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
        }
    }

    /// <summary>models/training/train_txt2img.py --export-only --timestep scalar OUT: the shipped weights, scalar timestep.</summary>
    private static async Task ExportScalarAsync(string root, string outDir)
    {
        string script = Path.Combine(root, "models", "training", "train_txt2img.py");
        Console.WriteLine($"exporting the scalar-timestep UNet: /usr/bin/python3 {script} --export-only --timestep scalar {outDir}");
        var start = new ProcessStartInfo("/usr/bin/python3", [script, "--export-only", "--timestep", "scalar", outDir])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("/usr/bin/python3 did not start.");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"the scalar export failed ({process.ExitCode}): {await stderr}\n{await stdout}");
        }

        foreach (string line in (await stdout).Split('\n').Where(l => l.Contains("unet/model.onnx", StringComparison.Ordinal) || l.Contains("in  timestep", StringComparison.Ordinal)))
        {
            Console.WriteLine($"  {line.Trim()}");
        }
    }

    /// <summary>
    /// <see cref="DiffusionLoad.ClosedLoopAsync"/>'s warm-up, then its measured window between two scrapes of /metrics,
    /// so the calls counted are those of the requests counted.
    /// </summary>
    private static async Task<(Outcome Outcome, Calls Calls)> ClosedLoopAsync(BenchHost host, string route, int clients, int seconds, int warmup, Func<int, int, (int Class, object Body)> next)
    {
        await DiffusionLoad.ClosedLoopAsync(host, route, clients, warmup, 0, next);
        return await MeasureAsync(host, () => DiffusionLoad.ClosedLoopAsync(host, route, clients, seconds, 0, next));
    }

    /// <summary>Runs <paramref name="measure"/> between two scrapes of /metrics and returns the calls made meanwhile.</summary>
    private static async Task<(Outcome Outcome, Calls Calls)> MeasureAsync(BenchHost host, Func<Task<Outcome>> measure)
    {
        Dictionary<string, double> before = await host.ScrapeAsync("genservice_", keepLabel: "graph");
        Outcome outcome = await measure();
        Dictionary<string, double> after = await host.ScrapeAsync("genservice_", keepLabel: "graph");
        return (outcome, new Calls(after.ToDictionary(p => p.Key, p => p.Value - before.GetValueOrDefault(p.Key))));
    }

    private static JsonObject Json(Outcome outcome, Calls calls)
    {
        JsonObject o = outcome.ToJson();
        o["p50_ms"] = outcome.P(0.5);
        o["p99_ms"] = outcome.P(0.99);
        o["calls"] = calls.ToJson();
        o["load_average"] = LoadAverage();
        return o;
    }

    private static Task<BenchHost> StartAsync(Target target, string scheduling, KeyValuePair<string, string?>[]? extra = null)
        => BenchHost.StartAsync(target.Root, target.Model, [.. s_config, .. extra ?? [], new("GenService:Diffusion:Scheduling", scheduling)], source: target.Source);

    private static string Route(string model) => $"/v1/diffusion/{model}/samples";

    /// <summary>A new seed per request: worker, request number and run apart.</summary>
    private static ulong Seed(int worker, int i, int run) => ((ulong)run << 40) + ((ulong)worker << 20) + (ulong)i + 1;

    /// <summary>One sample of <paramref name="prompt"/> at the route's defaults (sampler, guidance), <paramref name="steps"/> when set.</summary>
    private static Dictionary<string, object> Body(string prompt, ulong seed, int? steps)
    {
        var body = new Dictionary<string, object> { ["prompt"] = prompt, ["seed"] = seed };
        if (steps is { } s)
        {
            body["steps"] = s;
        }

        if (s_output is { } output)
        {
            body["output"] = output;
        }

        return body;
    }

    private static string[] MakeCaptions()
    {
        string[] sizes = ["small", "large"];
        string[] colours = ["black", "white", "red", "green", "blue", "yellow"];
        string[] digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
        var all = new List<string>();
        foreach (string digit in digits)
        {
            foreach (string size in sizes)
            {
                foreach (string fg in colours)
                {
                    foreach (string bg in colours.Where(c => c != fg))
                    {
                        all.Add($"a {size} {fg} {digit} on a {bg} background");
                    }
                }
            }
        }

        // A fixed shuffle, so that consecutive requests differ in digit, size and colours.
        string[] shuffled = [.. all];
        new Random(13).Shuffle(shuffled);
        return shuffled;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    /// <summary>A model folder to serve, under the name <see cref="Model"/>.</summary>
    private sealed record Target(string Root, string Model, string Source);

    /// <summary>One column of a comparison: a name, a scheduling mode, a model folder.</summary>
    private sealed record Variant(string Name, string Scheduling, Target Target);

    /// <summary>
    /// Graph calls during a measurement, from the differences of /metrics series (split by graph): the compute
    /// histogram (model time per batch), the batch-size histogram (rows per call), the diffusion loop's iterations
    /// and the prompt cache's counters.
    /// </summary>
    private sealed class Calls(Dictionary<string, double> delta)
    {
        public double Count(string graph) => delta.GetValueOrDefault($"genservice_compute_seconds_count{{graph={graph}}}");

        public double MsPerCall(string graph) => 1000 * delta.GetValueOrDefault($"genservice_compute_seconds_sum{{graph={graph}}}") / Count(graph);

        public double RowsPerCall(string graph) => delta.GetValueOrDefault($"genservice_batch_size_sum{{graph={graph}}}") / delta.GetValueOrDefault($"genservice_batch_size_count{{graph={graph}}}");

        /// <summary>Iterations of the diffusion loop (0 under request-level scheduling).</summary>
        public double Iterations => delta.GetValueOrDefault("genservice_diffusion_iteration_rows_count");

        /// <summary>UNet calls per iteration of the loop: 1 when every row shares one call.</summary>
        public double CallsPerIteration => Iterations > 0 ? Count("denoiser") / Iterations : double.NaN;

        public double Hits => delta.GetValueOrDefault("genservice_prompt_cache_hits_total");

        public double Misses => delta.GetValueOrDefault("genservice_prompt_cache_misses_total");

        public double HitRate => Hits / (Hits + Misses);

        public JsonObject ToJson()
        {
            var o = new JsonObject
            {
                ["prompt_cache_hits"] = Hits,
                ["prompt_cache_misses"] = Misses,
                ["iterations"] = Iterations,
                ["iteration_rows_mean"] = Iterations > 0 ? delta.GetValueOrDefault("genservice_diffusion_iteration_rows_sum") / Iterations : null,
                ["iteration_ms_mean"] = Iterations > 0 ? 1000 * delta.GetValueOrDefault("genservice_diffusion_iteration_seconds_sum") / delta.GetValueOrDefault("genservice_diffusion_iteration_seconds_count") : null,
            };
            foreach (string graph in new[] { "text_encoder", "denoiser", "vae_decoder" })
            {
                if (Count(graph) > 0)
                {
                    o[graph] = new JsonObject { ["calls"] = Count(graph), ["ms_per_call"] = MsPerCall(graph), ["rows_per_call"] = RowsPerCall(graph) };
                }
            }

            return o;
        }
    }
}
