using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using GenService.Api.Families;
using GenService.Api.Hosting;
using GenService.Api.KServe;
using GenService.Api.Models;
using GenService.Api.Operations;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace GenService.Bench;

/// <summary>
/// The service as Program.cs builds it (the same AddGenService / UseGenService / Map* calls), on Kestrel at
/// 127.0.0.1 on a free port, serving a temporary model folder that holds only the benchmarked model: links to its
/// files and a copy of its model.json, which a benchmark may edit (queue size, max_batch_size). The other shipped
/// models would load, warm up and take memory and CPU for nothing. Request logs at Warning: a console line per
/// request would measure the console, not the service.
/// </summary>
internal sealed class BenchHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _repository;

    private BenchHost(WebApplication app, string repository, string url)
    {
        _app = app;
        _repository = repository;
        Url = url;
        Client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, UseProxy = false })
        {
            BaseAddress = new Uri(url),
            Timeout = TimeSpan.FromMinutes(5),
        };
    }

    /// <summary>The service's base address (http://127.0.0.1:port).</summary>
    public string Url { get; }

    /// <summary>A client without a connection cap (every benchmark worker gets its own connection).</summary>
    public HttpClient Client { get; }

    /// <summary>The service's dependency container (tests of the harness, scheduler counters).</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>Starts the service on <paramref name="model"/> and waits for /v2/health/ready, as a readiness probe would.</summary>
    /// <param name="root">The repository root (models/, src/GenService.Api/).</param>
    /// <param name="model">The shipped model folder to serve.</param>
    /// <param name="config">Service settings for the run (GenService:Diffusion:Scheduling, GenService:IntraOpNumThreads, ...).</param>
    /// <param name="editManifest">Changes to the served copy's model.json (an export folder without one gets one, holding only the changes).</param>
    /// <param name="source">The folder to serve instead of models/<paramref name="model"/> (e.g. a re-export in a temporary folder), served as <paramref name="model"/>.</param>
    public static async Task<BenchHost> StartAsync(string root, string model, IEnumerable<KeyValuePair<string, string?>> config, Action<JsonNode>? editManifest = null, string? source = null)
    {
        string repository = ServedCopy(source ?? Path.Combine(root, "models", model), model, editManifest);
        WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ContentRootPath = Path.Combine(root, "src", "GenService.Api"),
            EnvironmentName = "Production",
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Configuration["GenService:ModelRepository"] = repository;
        builder.Configuration["Serilog:MinimumLevel:Default"] = "Warning";

        // A benchmark measures latency under overload, where a request may legitimately wait longer than the 30 s
        // default deadline: cutting it off at 504 would hide the latency being measured. A run's config may set its own.
        builder.Configuration["GenService:Diffusion:DeadlineMs"] = "600000";
        builder.Configuration["GenService:Ar:DeadlineMs"] = "600000";
        foreach ((string key, string? value) in config)
        {
            builder.Configuration[key] = value;
        }

        builder.AddGenService();
        WebApplication app = builder.Build();
        app.UseGenService();
        app.MapModelEndpoints();
        app.MapKServeEndpoints();
        app.MapFamilyEndpoints();
        app.MapOperationsEndpoints();
        await app.StartAsync();
        string url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var host = new BenchHost(app, repository, url);
        for (int i = 0; i < 600; i++)
        {
            using HttpResponseMessage ready = await host.Client.GetAsync("/v2/health/ready");
            if (ready.IsSuccessStatusCode)
            {
                return host;
            }

            await Task.Delay(100);
        }

        await host.DisposeAsync();
        throw new InvalidOperationException($"{model} did not become ready within 60 s.");
    }

    /// <summary>Command-line service settings, "Key=Value" each (the value may hold '=').</summary>
    public static KeyValuePair<string, string?>[] ParseConfig(IEnumerable<string> pairs)
        => [.. pairs.Select(pair => pair.Split('=', 2)).Select(kv => new KeyValuePair<string, string?>(kv[0], kv.Length > 1 ? kv[1] : ""))];

    /// <summary>POSTs <paramref name="body"/> as JSON and reads the whole answer; true on 200.</summary>
    public async Task<bool> TryPostAsync(string route, object body)
    {
        using HttpResponseMessage response = await Client.PostAsJsonAsync(route, body);
        await response.Content.ReadAsByteArrayAsync();
        return response.StatusCode == HttpStatusCode.OK;
    }

    /// <summary>POSTs <paramref name="body"/> as JSON and parses the answer; anything but 200 throws with the body.</summary>
    public async Task<JsonNode> PostAsync(string route, object body)
    {
        using HttpResponseMessage response = await Client.PostAsJsonAsync(route, body);
        string text = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new InvalidOperationException($"{response.StatusCode}: {text}");
        }

        return JsonNode.Parse(text)!;
    }

    /// <summary>
    /// The service's /metrics (Prometheus text), summed over labels per series name, for the series whose names start
    /// with <paramref name="prefix"/> (e.g. genservice_ar_iteration: its histogram's _sum and _count). With
    /// <paramref name="keepLabel"/> (e.g. graph) the sums are kept apart by that label's value: name{label=value}.
    /// </summary>
    public async Task<Dictionary<string, double>> ScrapeAsync(string prefix, string? keepLabel = null)
    {
        string text = await Client.GetStringAsync("/metrics");
        var sums = new Dictionary<string, double>();
        foreach (string line in text.Split('\n'))
        {
            if (!line.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            int space = line.LastIndexOf(' ');
            int brace = line.IndexOf('{', StringComparison.Ordinal);
            string name = brace > 0 && brace < space ? line[..brace] : line[..space];
            if (keepLabel is not null && brace > 0 && brace < space)
            {
                // Histogram buckets carry le="..." as well; the label wanted is matched by name only.
                var label = System.Text.RegularExpressions.Regex.Match(line[brace..space], $@"[{{,]{keepLabel}=""([^""]*)""");
                if (label.Success)
                {
                    name += $"{{{keepLabel}={label.Groups[1].Value}}}";
                }
            }

            if (double.TryParse(line[(space + 1)..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value))
            {
                sums[name] = sums.GetValueOrDefault(name) + value;
            }
        }

        return sums;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_repository, recursive: true);
    }

    /// <summary>
    /// A temporary repository holding <paramref name="source"/> as <paramref name="model"/>: links to its files and
    /// folders (an export folder's text_encoder/, unet/, ...), and model.json copied so that it can be edited.
    /// </summary>
    private static string ServedCopy(string source, string model, Action<JsonNode>? editManifest)
    {
        if (!Directory.Exists(source))
        {
            throw new DirectoryNotFoundException($"{source}: the model folder to serve was not found.");
        }

        string repository = Path.Combine(Path.GetTempPath(), $"genservice-bench-{Environment.ProcessId}-{Guid.NewGuid():N}"[..48]);
        string target = Path.Combine(repository, model);
        Directory.CreateDirectory(target);
        foreach (string entry in Directory.EnumerateFileSystemEntries(source))
        {
            if (Path.GetFileName(entry) != "model.json")
            {
                File.CreateSymbolicLink(Path.Combine(target, Path.GetFileName(entry)), Path.GetFullPath(entry));
            }
        }

        // An export folder (model_index.json) needs no model.json; one beside it may override batching and instances.
        string manifestFile = Path.Combine(source, "model.json");
        bool exists = File.Exists(manifestFile);
        if (exists || editManifest is not null)
        {
            JsonNode manifest = exists ? JsonNode.Parse(File.ReadAllText(manifestFile))! : new JsonObject();
            editManifest?.Invoke(manifest);
            File.WriteAllText(Path.Combine(target, "model.json"), manifest.ToJsonString());
        }

        return repository;
    }
}

/// <summary>Order statistics shared by the benchmarks.</summary>
internal static class Stats
{
    /// <summary>The middle value; the mean of the two middle ones for an even count.</summary>
    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Exact percentile (nearest rank) of every value kept; NaN when there is none.</summary>
    public static double Percentile(IEnumerable<double> values, double q)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
