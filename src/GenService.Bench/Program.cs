using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using GenService.Bench;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

// GenService benchmark: one graph, in-process ONNX Runtime vs the service's v2 infer route over HTTP.
//
//   dotnet run --project src/GenService.Bench -c Release -- [--mode all|inprocess|http] [--seconds 5]
//       [--model digits-gan] [--role generator] [--url http://host:port (else the service starts in-process on 127.0.0.1)]
//       [--transport json,binary,wrk] [--runs 3 (median)] [--max-queue-size N (the served copy's batching.max_queue_size)]
//       [--config Key=Value,... (service configuration, e.g. GenService:IntraOpNumThreads=1)] [--instances N (the served copy's instances)]
//
// --transport binary: the KServe v2 binary tensor extension (JSON header + raw little-endian tensors, outputs
// asked back as bytes with binary_data_output), so the cost of formatting and parsing numbers drops out.
// --transport wrk: the same binary requests sent by wrk (Debian's `wrk`, a C load generator: one thread, C
// connections) instead of .NET's HttpClient in this process, so the client costs the two cores much less.
//
// Closed loop: C workers each send a request, wait for the answer, send the next, for --seconds after a warm-up.
// Reported per (rows, concurrency): requests/s, samples/s, p50/p99 latency and, for HTTP, the service's own cost:
//   overhead/req (latency)    = mean(client latency - compute_ms the server reports)  (includes queueing)
//   overhead/req (throughput) = 1/(HTTP req/s) - 1/(in-process req/s)                  (cost at saturation)
string root = FindRoot();
if (args is ["diffusion", ..])
{
    // Diffusion scheduling benchmarks (src/GenService.Bench/Diffusion): mixed | batching | e2e.
    Environment.ExitCode = await GenService.Bench.Diffusion.DiffusionBench.RunAsync(root, args[1..]);
    return;
}

if (args is ["txt2img", ..])
{
    // Text-to-image benchmarks (src/GenService.Bench/TextToImage): load | mixed | cache | scalar.
    Environment.ExitCode = await GenService.Bench.TextToImage.TextToImageBench.RunAsync(root, args[1..]);
    return;
}

if (args is ["reliability", ..])
{
    // Reliability runs (src/GenService.Bench/Reliability, docs/reliability.md): overload | fairness | soak.
    Environment.ExitCode = await GenService.Bench.Reliability.ReliabilityBench.RunAsync(root, args[1..]);
    return;
}

if (args is ["ar", ..])
{
    // AR scheduling benchmark (src/GenService.Bench/Ar): tokens/s and time to first token vs concurrency.
    Environment.ExitCode = await GenService.Bench.Ar.ArBench.RunAsync(root, args[1..]);
    return;
}

var options = BenchOptions.Parse(args);
string modelDir = Path.Combine(root, "models", options.Model);
string onnx = Path.Combine(modelDir, JsonDocument.Parse(File.ReadAllText(Path.Combine(modelDir, "model.json")))
    .RootElement.GetProperty("graphs").GetProperty(options.Role).GetProperty("file").GetString()!);

Console.WriteLine($"# GenService benchmark: {options.Model}.{options.Role}, {options.Seconds} s per cell, median of {options.Runs} run(s), {Environment.ProcessorCount} cores, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load average {LoadAverage()}");
// Cells are interleaved: for each (rows, concurrency), run 1 of in-process, JSON and binary, then run 2 of each, ...
// On a shared machine the background load drifts by minutes; interleaving lets every column see the same drift,
// so the ratios between columns mean something even when the absolute numbers move.
bool runInProcess = options.Mode is "all" or "inprocess";
bool runHttp = options.Mode is "all" or "http";
using var session = new InferenceSession(onnx, new Microsoft.ML.OnnxRuntime.SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL });
BenchHost? host = null;
string url = options.Url ?? "";
if (runHttp && options.Url is null)
{
    // --config Key=Value,... : service settings for the run, e.g. GenService:IntraOpNumThreads=1. --max-queue-size:
    // 64 clients x 64 rows are 4,096 rows in flight, over the shipped max_queue_size of 1,024.
    host = await BenchHost.StartAsync(root, options.Model,
        BenchHost.ParseConfig(options.Config),
        m =>
        {
            if (options.MaxQueueSize is { } q)
            {
                m["batching"]!["max_queue_size"] = q;
            }

            // --instances N: sessions (and batches at once) of the served copy; the shipped models have 1.
            if (options.Instances is { } n)
            {
                m["instances"] = n;
            }
        });
    url = host.Url;
}

using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, UseProxy = false })
{
    BaseAddress = runHttp ? new Uri(url) : null,
    Timeout = TimeSpan.FromMinutes(1),
};
string route = $"/v2/models/{options.Model}.{options.Role}/infer";
string[] columns = [.. (runInProcess ? ["inprocess"] : Array.Empty<string>()), .. (runHttp ? options.Transports : [])];
var results = new Dictionary<(string Column, int Rows, int Concurrency), List<Result>>();
foreach (int rows in options.Rows)
{
    Inputs inputs = Inputs.Create(session, rows);
    foreach (int c in options.Concurrency)
    {
        for (int run = 0; run < options.Runs; run++)
        {
            foreach (string column in columns)
            {
                Func<CancellationToken, ValueTask<double>> call = column == "inprocess"
                    ? _ =>
                    {
                        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> o = session.Run(inputs.Onnx);
                        return ValueTask.FromResult(0.0);
                    }
                    : HttpCall(client, route, inputs, column == "binary");
                Result r = column == "wrk"
                    ? await Wrk.RunAsync(url + route, inputs, c, options.Seconds, rows)
                    : await Runner.RunAsync(c, options.Seconds, call, rows);
                (results.TryGetValue((column, rows, c), out List<Result>? list) ? list : results[(column, rows, c)] = []).Add(r);
                Console.Error.WriteLine(FormattableString.Invariant($"  {column} rows={rows} c={c} run {run + 1}: {r.RequestsPerSecond:0} req/s, load {LoadAverage()}"));
            }
        }
    }
}

foreach (string column in columns)
{
    bool http = column != "inprocess";
    Console.WriteLine();
    Console.WriteLine(http
        ? $"## The service over HTTP, {column}: POST {route} ({(options.Url is null ? "Kestrel in this process, 127.0.0.1" : url)}{(options.MaxQueueSize is { } q ? $", max_queue_size {q}" : "")})"
        : "## In-process ONNX Runtime (InferenceSession.Run, one shared session)");
    Console.WriteLine(Result.Header(http));
    foreach (int rows in options.Rows)
    {
        foreach (int c in options.Concurrency)
        {
            Result r = Runner.Median(results[(column, rows, c)]);
            Result? baseline = http && results.TryGetValue(("inprocess", rows, c), out List<Result>? b) ? Runner.Median(b) : null;
            Console.WriteLine(r.Row(rows, c, baseline));
        }
    }
}

Console.WriteLine();
Console.WriteLine($"load average at the end: {LoadAverage()}");
if (host is not null)
{
    await host.DisposeAsync();
}

static Func<CancellationToken, ValueTask<double>> HttpCall(HttpClient client, string route, Inputs inputs, bool binary)
{
    byte[] body = binary ? inputs.V2BinaryBody : inputs.V2Body;
    string headerLength = inputs.V2BinaryHeaderLength.ToString(CultureInfo.InvariantCulture);
    return async ct =>
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new(binary ? "application/octet-stream" : "application/json");
        if (binary)
        {
            content.Headers.TryAddWithoutValidation("Inference-Header-Content-Length", headerLength);
        }

        using HttpResponseMessage response = await client.PostAsync(route, content, ct);
        byte[] bytes = await response.Content.ReadAsByteArrayAsync(ct);
        if (response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            // The batcher's bounded queue said no (max_queue_size rows): count it, back off briefly, go on.
            await Task.Delay(1, ct);
            return double.NaN;
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"{response.StatusCode}: {Encoding.UTF8.GetString(bytes)}");
        }

        // A binary answer is the JSON header, then the output bytes: the timings are in the header.
        int jsonLength = response.Headers.TryGetValues("Inference-Header-Content-Length", out IEnumerable<string>? split)
            ? int.Parse(split.First(), CultureInfo.InvariantCulture)
            : bytes.Length;
        return ComputeMs(bytes.AsSpan(0, jsonLength));
    };
}

static double ComputeMs(ReadOnlySpan<byte> json)
{
    var reader = new Utf8JsonReader(json);
    while (reader.Read())
    {
        if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("compute_ms"u8))
        {
            reader.Read();
            return reader.GetDouble();
        }
    }

    return 0;
}

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

static string FindRoot()
{
    for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
    {
        if (File.Exists(Path.Combine(d.FullName, "GenService.sln")))
        {
            return d.FullName;
        }
    }

    return Directory.GetCurrentDirectory();
}

internal sealed record BenchOptions(string Mode, int Seconds, string Model, string Role, string? Url, int[] Rows, int[] Concurrency,
    string[] Transports, int Runs, int? MaxQueueSize, string[] Config, int? Instances)
{
    public static BenchOptions Parse(string[] args)
    {
        string Get(string name, string fallback)
        {
            int i = Array.IndexOf(args, "--" + name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        int[] Ints(string name, string fallback) => Get(name, fallback).Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        string? url = Get("url", "");
        return new BenchOptions(Get("mode", "all"), int.Parse(Get("seconds", "5"), CultureInfo.InvariantCulture), Get("model", "digits-gan"),
            Get("role", "generator"), url.Length == 0 ? null : url, Ints("rows", "1,64"), Ints("concurrency", "1,16,64"),
            Get("transport", "json,binary").Split(','), int.Parse(Get("runs", "1"), CultureInfo.InvariantCulture),
            Get("max-queue-size", "") is { Length: > 0 } q ? int.Parse(q, CultureInfo.InvariantCulture) : null,
            Get("config", "") is { Length: > 0 } c ? c.Split(',') : [],
            Get("instances", "") is { Length: > 0 } n ? int.Parse(n, CultureInfo.InvariantCulture) : null);
    }
}

/// <summary>Random inputs for every graph input (float: normal-ish; integer: small labels), as ORT values and as a v2 body.</summary>
internal sealed class Inputs
{
    public required List<NamedOnnxValue> Onnx { get; init; }

    public required byte[] V2Body { get; init; }

    /// <summary>The same tensors for the binary extension: JSON header (binary_data_size per input, outputs as bytes) + raw bytes.</summary>
    public required byte[] V2BinaryBody { get; init; }

    public required int V2BinaryHeaderLength { get; init; }

    public static Inputs Create(InferenceSession session, int rows)
    {
        var rng = new Random(1);
        var onnx = new List<NamedOnnxValue>();
        var v2 = new List<object>();
        var v2Binary = new List<object>();
        var tail = new List<byte>();
        foreach ((string name, NodeMetadata meta) in session.InputMetadata)
        {
            int[] dims = meta.Dimensions.Select((d, i) => i == 0 ? rows : d).ToArray();
            int count = dims.Aggregate(1, (a, b) => a * b);
            if (meta.ElementType == typeof(float))
            {
                float[] data = Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                onnx.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(data, dims)));
                v2.Add(new { name, shape = dims, datatype = "FP32", data });
                v2Binary.Add(new { name, shape = dims, datatype = "FP32", parameters = new { binary_data_size = data.Length * 4 } });
                tail.AddRange(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
            }
            else
            {
                long[] data = Enumerable.Range(0, count).Select(i => (long)(i % 10)).ToArray();
                onnx.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(data, dims)));
                v2.Add(new { name, shape = dims, datatype = "INT64", data });
                v2Binary.Add(new { name, shape = dims, datatype = "INT64", parameters = new { binary_data_size = data.Length * 8 } });
                tail.AddRange(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());
            }
        }

        byte[] header = JsonSerializer.SerializeToUtf8Bytes(new { inputs = v2Binary, parameters = new { binary_data_output = true } });
        return new Inputs
        {
            Onnx = onnx,
            V2Body = JsonSerializer.SerializeToUtf8Bytes(new { inputs = v2 }),
            V2BinaryBody = [.. header, .. tail],
            V2BinaryHeaderLength = header.Length,
        };
    }
}

internal sealed record Result(long Requests, double Seconds, double P50Us, double P99Us, double MeanLatencyUs, double MeanComputeUs, int Rows, long Rejected)
{
    /// <summary>req/s of every run when this row is the median of several.</summary>
    public string Runs { get; init; } = "";

    public double RequestsPerSecond => Requests / Seconds;

    public static string Header(bool http) => http
        ? "| rows | concurrency | req/s | samples/s | p50 ms | p99 ms | vs in-process samples/s | server compute/req | overhead/req (latency - compute) | overhead/req (1/rps - 1/rps in-process) | 429s | runs req/s |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        : "| rows | concurrency | req/s | samples/s | p50 ms | p99 ms | runs req/s |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

    public string Row(int rows, int concurrency, Result? inProcess)
    {
        string basic = FormattableString.Invariant($"| {rows} | {concurrency} | {RequestsPerSecond:0} | {RequestsPerSecond * rows:0} | {P50Us / 1000:0.000} | {P99Us / 1000:0.000} |");
        if (MeanComputeUs <= 0 && inProcess is null)
        {
            return basic + $" {Runs} |";
        }

        string ratio = inProcess is null ? "n/a" : FormattableString.Invariant($"{RequestsPerSecond / inProcess.RequestsPerSecond:P0}");
        string throughputOverhead = inProcess is null ? "n/a"
            : FormattableString.Invariant($"{(1e6 / RequestsPerSecond) - (1e6 / inProcess.RequestsPerSecond):0} us");
        return basic + FormattableString.Invariant($" {ratio} | {MeanComputeUs:0} us | {MeanLatencyUs - MeanComputeUs:0} us | {throughputOverhead} | {Rejected} | {Runs} |");
    }
}

internal static class Runner
{
    /// <summary>The run with the median req/s, listing every run's req/s (in run order).</summary>
    public static Result Median(List<Result> results)
    {
        Result median = results.OrderBy(r => r.RequestsPerSecond).ElementAt(results.Count / 2);
        return median with { Runs = string.Join(" / ", results.Select(r => r.RequestsPerSecond.ToString("0", CultureInfo.InvariantCulture))) };
    }

    /// <summary>Closed loop: <paramref name="concurrency"/> workers, 1 s warm-up, then <paramref name="seconds"/> measured.</summary>
    public static async Task<Result> RunAsync(int concurrency, int seconds, Func<CancellationToken, ValueTask<double>> call, int rows)
    {
        using (var warm = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
        {
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
            {
                while (!warm.IsCancellationRequested)
                {
                    await call(CancellationToken.None);
                }
            })));
        }

        var latencies = new List<long>[concurrency];
        var compute = new double[concurrency];
        long rejected = 0;
        long deadline = Stopwatch.GetTimestamp() + (long)(seconds * (double)Stopwatch.Frequency);
        long start = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var mine = new List<long>(4096);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                long t0 = Stopwatch.GetTimestamp();
                double ms = await call(CancellationToken.None);
                if (double.IsNaN(ms))
                {
                    Interlocked.Increment(ref rejected);
                    continue;
                }

                compute[w] += ms;
                mine.Add(Stopwatch.GetTimestamp() - t0);
            }

            latencies[w] = mine;
        })));
        double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        long[] all = latencies.SelectMany(l => l).Order().ToArray();
        double Us(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
        return new Result(
            all.Length,
            elapsed,
            Us(all[all.Length / 2]),
            Us(all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))]),
            all.Average(t => Us(t)),
            compute.Sum() * 1000 / all.Length,
            rows,
            rejected);
    }
}

/// <summary>
/// The binary-tensor requests through wrk (apt-get install wrk): one wrk thread keeping C connections busy for the
/// run, after a 1 s warm-up; req/s, p50/p99 and mean latency as wrk reports them (--latency), non-2xx as rejected.
/// </summary>
internal static class Wrk
{
    public static async Task<Result> RunAsync(string url, Inputs inputs, int concurrency, int seconds, int rows)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"genservice-wrk-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        string body = Path.Combine(dir, "body.bin");
        await File.WriteAllBytesAsync(body, inputs.V2BinaryBody);
        string script = Path.Combine(dir, "post.lua");
        await File.WriteAllTextAsync(script, $$"""
            wrk.method = "POST"
            local f = io.open("{{body}}", "rb")
            wrk.body = f:read("*all")
            f:close()
            wrk.headers["Content-Type"] = "application/octet-stream"
            wrk.headers["Inference-Header-Content-Length"] = "{{inputs.V2BinaryHeaderLength}}"
            """);
        string output;
        try
        {
            await RunWrkAsync(url, script, concurrency, 1);
            output = await RunWrkAsync(url, script, concurrency, seconds);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        var m = System.Text.RegularExpressions.Regex.Match(output, @"(\d+) requests in ([\d.]+)(ms|s|m)");
        long requests = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        double elapsed = Time(m.Groups[2].Value + m.Groups[3].Value) / 1e6;
        var non2xx = System.Text.RegularExpressions.Regex.Match(output, @"Non-2xx or 3xx responses: (\d+)");
        long rejected = non2xx.Success ? long.Parse(non2xx.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        double Percentile(string q) => Time(System.Text.RegularExpressions.Regex.Match(output, q + @"%\s+([\d.]+\w+)").Groups[1].Value);
        double mean = Time(System.Text.RegularExpressions.Regex.Match(output, @"Latency\s+([\d.]+\w+)").Groups[1].Value);
        return new Result(requests - rejected, elapsed, Percentile("50"), Percentile("99"), mean, 0, rows, rejected);
    }

    /// <summary>A wrk duration ("850.12us", "1.23ms", "2.00s") in microseconds.</summary>
    private static double Time(string text)
    {
        var m = System.Text.RegularExpressions.Regex.Match(text, @"^([\d.]+)(us|ms|s|m)$");
        double v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch { "us" => v, "ms" => v * 1e3, "s" => v * 1e6, _ => v * 60e6 };
    }

    private static async Task<string> RunWrkAsync(string url, string script, int concurrency, int seconds)
    {
        var start = new ProcessStartInfo("wrk", ["-t1", $"-c{concurrency}", $"-d{seconds}s", "--latency", "-s", script, url])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("wrk did not start (apt-get install wrk).");
        string output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"wrk exited {process.ExitCode}: {await process.StandardError.ReadToEndAsync()}");
        }

        return output;
    }
}
