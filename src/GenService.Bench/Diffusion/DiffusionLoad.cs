using System.Diagnostics;
using System.Text.Json.Nodes;

namespace GenService.Bench.Diffusion;

/// <summary>
/// Load generators of the diffusion benchmarks (DiffusionBench, TextToImageBench): a closed loop for capacity and
/// open-loop Poisson arrivals for latency under load. Requests are sorted into classes (e.g. the step count) and
/// every latency is kept per class, so percentiles are exact. The caller says what each request is: its class and
/// its JSON body.
/// </summary>
internal static class DiffusionLoad
{
    /// <summary>
    /// Closed loop: <paramref name="clients"/> workers each send one request, wait for the answer, send the next, for
    /// <paramref name="seconds"/> after <paramref name="warmup"/> seconds of the same load (not measured). Worker w's
    /// i-th request is <paramref name="next"/>(w, i): its class and body.
    /// </summary>
    public static async Task<Outcome> ClosedLoopAsync(BenchHost host, string route, int clients, int seconds, int warmup, Func<int, int, (int Class, object Body)> next)
    {
        if (warmup > 0)
        {
            await ClosedLoopAsync(host, route, clients, warmup, 0, next);
        }

        var outcome = new Outcome();
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * (double)Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, clients).Select(w => Task.Run(async () =>
        {
            for (int i = 0; Stopwatch.GetTimestamp() < end; i++)
            {
                (int c, object body) = next(w, i);
                long t0 = Stopwatch.GetTimestamp();
                bool ok = await host.TryPostAsync(route, body);
                outcome.Add(c, Stopwatch.GetElapsedTime(t0).TotalMilliseconds, ok);
            }
        })));
        outcome.Seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return outcome;
    }

    /// <summary>
    /// Open loop: Poisson arrivals at <paramref name="rate"/> per second for <paramref name="seconds"/> (arrival times
    /// from <paramref name="seed"/>); latency from each request's scheduled arrival, so a late sender never hides
    /// queueing (no coordinated omission). The n-th request is <paramref name="next"/>(rng, n): its class and body,
    /// drawn from the run's random source after its arrival time.
    /// </summary>
    public static async Task<Outcome> OpenLoopAsync(BenchHost host, string route, double rate, int seconds, int seed, Func<Random, int, (int Class, object Body)> next)
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

            (int c, object body) = next(rng, i);
            TimeSpan wait = TimeSpan.FromSeconds(at) - Stopwatch.GetElapsedTime(start);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }

            long scheduled = start + (long)(at * Stopwatch.Frequency);
            inFlight.Add(Task.Run(async () =>
            {
                bool ok = await host.TryPostAsync(route, body);
                outcome.Add(c, (Stopwatch.GetTimestamp() - scheduled) * 1000.0 / Stopwatch.Frequency, ok);
            }));
        }

        await Task.WhenAll(inFlight);
        outcome.Seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return outcome;
    }
}

/// <summary>Latencies per request class (all kept: exact percentiles), failures, duration.</summary>
internal sealed class Outcome
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

    /// <summary>Sum over classes of class x completed, per second: sample-steps/s when the class is the step count.</summary>
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
            return _latencies.TryGetValue(steps, out List<double>? list) ? Stats.Percentile(list, q) : double.NaN;
        }
    }

    /// <summary>Exact percentile (nearest rank) over every class, ms.</summary>
    public double P(double q)
    {
        lock (_latencies)
        {
            return Stats.Percentile(_latencies.Values.SelectMany(l => l), q);
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
