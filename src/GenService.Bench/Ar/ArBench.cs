using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace GenService.Bench.Ar;

/// <summary>
/// AR serving benchmark (docs/benchmarks.md, "2. AR"): tokens/s and time to first token against concurrency, for
/// iteration-level (GenService:Ar:Scheduling=iteration) and request-level scheduling.
/// <code>
///   dotnet run --project src/GenService.Bench -c Release -- ar [--models words-ar,digits-ar] [--concurrency 1,2,4,8,16,32,64]
///       [--seconds 8] [--runs 3] [--out ar.json] [--modes iteration,request] [--config Key=Value,...]
/// </code>
/// Closed loop: C clients each stream (SSE) one sample, read it to the end, and ask for the next; temperature 1, a new
/// seed per request (and a class per request on class-conditional models). Time to first token is from sending the
/// request to the first `token` event read; tokens/s counts the `token` events of every request over the window.
/// Both modes run in one process, each on its own service, interleaved run by run (run 1 of each, then run 2, ...)
/// so that a drifting background load hits both alike; the tables report the run with the median tokens/s.
/// </summary>
internal static class ArBench
{
    // The scheduler's histograms on /metrics (iteration mode only): rows and wall time per iteration.
    private const string IterationSeries = "genservice_ar_iteration_";

    public static async Task<int> RunAsync(string root, string[] args)
    {
        string Get(string name, string fallback)
        {
            int i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        string[] models = Get("models", "words-ar,digits-ar").Split(',');
        int[] concurrency = [.. Get("concurrency", "1,2,4,8,16,32,64").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))];
        int seconds = int.Parse(Get("seconds", "8"), CultureInfo.InvariantCulture);
        int runs = int.Parse(Get("runs", "3"), CultureInfo.InvariantCulture);
        string? outFile = Get("out", "") is { Length: > 0 } o ? o : null;
        string[] modes = Get("modes", "iteration,request").Split(',');

        // --config Key=Value,...: service settings for both modes (e.g. GenService:Ar:MaxRowsPerIteration=32).
        KeyValuePair<string, string?>[] config = BenchHost.ParseConfig(Get("config", "").Split(',', StringSplitOptions.RemoveEmptyEntries));
        Console.WriteLine($"# GenService AR benchmark: {string.Join(", ", models)}, concurrency {string.Join("/", concurrency)}, {seconds} s per run, {runs} runs, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var report = new JsonObject { ["seconds"] = seconds, ["runs"] = runs };
        foreach (string model in models)
        {
            report[model] = await ModelAsync(root, model, modes, config, concurrency, seconds, runs);
        }

        if (outFile is not null)
        {
            await File.WriteAllTextAsync(outFile, report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            Console.WriteLine($"results: {outFile}");
        }

        return 0;
    }

    private static async Task<JsonObject> ModelAsync(string root, string model, string[] modes, KeyValuePair<string, string?>[] config, int[] concurrency, int seconds, int runs)
    {
        var hosts = new Dictionary<string, BenchHost>();
        try
        {
            foreach (string mode in modes)
            {
                hosts[mode] = await BenchHost.StartAsync(root, model, [.. config, new("GenService:Ar:Scheduling", mode)]);
            }

            // Class-conditional models get a class per request (digits-ar: the class start token).
            JsonNode manifest = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(root, "models", model, "model.json")))!;
            bool conditional = manifest["conditioning"]?["num_classes"] is not null;
            var results = new Dictionary<(string Mode, int C), List<Outcome>>();
            Console.WriteLine();
            Console.WriteLine($"## {model}: closed loop, C clients streaming 1 sample each (temperature 1)");
            Console.WriteLine("| scheduling | C | run | tokens/s | req/s | tokens/req | TTFT p50 ms | TTFT p99 ms | latency p50 ms | rows/iteration | ms/iteration | failed |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            foreach (int c in concurrency)
            {
                for (int run = 1; run <= runs; run++)
                {
                    foreach (string mode in modes)
                    {
                        if (run == 1)
                        {
                            await ClosedLoopAsync(hosts[mode], model, conditional, c, 1);
                        }

                        Dictionary<string, double> before = await hosts[mode].ScrapeAsync(IterationSeries);
                        Outcome r = await ClosedLoopAsync(hosts[mode], model, conditional, c, seconds);
                        r.Iterations(before, await hosts[mode].ScrapeAsync(IterationSeries));
                        (results.TryGetValue((mode, c), out List<Outcome>? list) ? list : results[(mode, c)] = []).Add(r);
                        Console.WriteLine(r.Row(mode, c, run.ToString(CultureInfo.InvariantCulture)));
                    }
                }
            }

            Console.WriteLine();
            Console.WriteLine($"### {model}: the run with the median tokens/s of each cell");
            Console.WriteLine("| scheduling | C | run | tokens/s | req/s | tokens/req | TTFT p50 ms | TTFT p99 ms | latency p50 ms | rows/iteration | ms/iteration | failed |");
            Console.WriteLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            var json = new JsonObject();
            foreach (string mode in modes)
            {
                var cells = new JsonArray();
                foreach (int c in concurrency)
                {
                    List<Outcome> all = results[(mode, c)];
                    Outcome median = all.OrderBy(o => o.TokensPerSecond).ElementAt(all.Count / 2);
                    Console.WriteLine(median.Row(mode, c, "median"));
                    JsonObject cell = median.ToJson();
                    cell["concurrency"] = c;
                    cell["runs_tokens_per_s"] = new JsonArray([.. all.Select(o => (JsonNode)o.TokensPerSecond)]);
                    cells.Add(cell);
                }

                json[mode] = cells;
            }

            return json;
        }
        finally
        {
            foreach (BenchHost host in hosts.Values)
            {
                await host.DisposeAsync();
            }
        }
    }

    private static async Task<Outcome> ClosedLoopAsync(BenchHost host, string model, bool conditional, int clients, int seconds)
    {
        var outcome = new Outcome();
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * (double)Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, clients).Select(w => Task.Run(async () =>
        {
            for (int i = 0; Stopwatch.GetTimestamp() < end; i++)
            {
                int seed = (w * 100_000) + i;
                object body = conditional
                    ? new { count = 1, seed, temperature = 1.0, stream = true, class_label = seed % 10 }
                    : new { count = 1, seed, temperature = 1.0, stream = true };
                outcome.Add(await StreamOneAsync(host.Client, $"/v1/ar/{model}/samples", body));
            }
        })));
        outcome.Seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return outcome;
    }

    /// <summary>One SSE request read to the end: time to the first `token` event, token events, total time; null on failure.</summary>
    private static async Task<(double TtftMs, int Tokens, double LatencyMs)?> StreamOneAsync(HttpClient client, string route, object body)
    {
        long t0 = Stopwatch.GetTimestamp();
        using var request = new HttpRequestMessage(HttpMethod.Post, route) { Content = JsonContent.Create(body) };
        using HttpResponseMessage response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            await response.Content.ReadAsByteArrayAsync();
            return null;
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double ttft = double.NaN;
        int tokens = 0;
        bool error = false;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line == "event: token")
            {
                if (tokens++ == 0)
                {
                    ttft = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                }
            }
            else if (line == "event: error")
            {
                error = true;
            }
        }

        return error || tokens == 0 ? null : (ttft, tokens, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }

    /// <summary>Every request's numbers (exact percentiles), failures, duration.</summary>
    private sealed class Outcome
    {
        private readonly List<double> _ttft = [];
        private readonly List<double> _latency = [];
        private long _tokens;
        private int _failed;

        /// <summary>Mean rows per scheduler iteration over the run (NaN in request mode: no scheduler).</summary>
        public double RowsPerIteration { get; private set; } = double.NaN;

        /// <summary>Mean wall time of a scheduler iteration over the run, ms.</summary>
        public double IterationMs { get; private set; } = double.NaN;

        /// <summary>Means over the run from two /metrics scrapes (histogram _sum and _count deltas).</summary>
        public void Iterations(Dictionary<string, double> before, Dictionary<string, double> after)
        {
            double Delta(string name) => after.GetValueOrDefault(name) - before.GetValueOrDefault(name);
            double iterations = Delta(IterationSeries + "rows_count");
            if (iterations > 0)
            {
                RowsPerIteration = Delta(IterationSeries + "rows_sum") / iterations;
                IterationMs = 1000 * Delta(IterationSeries + "seconds_sum") / iterations;
            }
        }

        public double Seconds { get; set; }

        public int Completed
        {
            get
            {
                lock (_latency)
                {
                    return _latency.Count;
                }
            }
        }

        public double TokensPerSecond => Interlocked.Read(ref _tokens) / Seconds;

        public double RequestsPerSecond => Completed / Seconds;

        public void Add((double TtftMs, int Tokens, double LatencyMs)? r)
        {
            if (r is not { } ok)
            {
                Interlocked.Increment(ref _failed);
                return;
            }

            Interlocked.Add(ref _tokens, ok.Tokens);
            lock (_latency)
            {
                _ttft.Add(ok.TtftMs);
                _latency.Add(ok.LatencyMs);
            }
        }

        public double Ttft(double q)
        {
            lock (_latency)
            {
                return Stats.Percentile(_ttft, q);
            }
        }

        public double Latency(double q)
        {
            lock (_latency)
            {
                return Stats.Percentile(_latency, q);
            }
        }

        public string Row(string mode, int c, string run) => FormattableString.Invariant(
            $"| {mode} | {c} | {run} | {TokensPerSecond:0} | {RequestsPerSecond:0.0} | {(double)Interlocked.Read(ref _tokens) / Math.Max(1, Completed):0.0} | {Ttft(0.5):0.0} | {Ttft(0.99):0.0} | {Latency(0.5):0.0} | {(double.IsNaN(RowsPerIteration) ? "-" : RowsPerIteration.ToString("0.0", CultureInfo.InvariantCulture))} | {(double.IsNaN(IterationMs) ? "-" : IterationMs.ToString("0.00", CultureInfo.InvariantCulture))} | {_failed} |");

        public JsonObject ToJson() => new()
        {
            ["seconds"] = Seconds,
            ["completed"] = Completed,
            ["failed"] = _failed,
            ["tokens_per_s"] = TokensPerSecond,
            ["req_per_s"] = RequestsPerSecond,
            ["ttft_p50_ms"] = Ttft(0.5),
            ["ttft_p90_ms"] = Ttft(0.9),
            ["ttft_p99_ms"] = Ttft(0.99),
            ["latency_p50_ms"] = Latency(0.5),
            ["latency_p99_ms"] = Latency(0.99),
            ["rows_per_iteration"] = double.IsNaN(RowsPerIteration) ? null : RowsPerIteration,
            ["ms_per_iteration"] = double.IsNaN(IterationMs) ? null : IterationMs,
        };
    }
}
