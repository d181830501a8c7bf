using System.Diagnostics;
using GenService.Inference.Batching;
using GenService.Inference.Hosting;
using GenService.Inference.Manifest;
using GenService.Inference.Metrics;
using GenService.Inference.Options;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace GenService.Inference.Repository;

/// <summary>
/// Turns a validated manifest into a <see cref="LoadedModel"/>: sessions per graph, graph validation,
/// warm-up, one batcher per graph. Any failure disposes what was built and throws a
/// <see cref="ManifestException"/> naming the file and the problem.
/// </summary>
internal sealed class ModelLoader(InferenceOptions options, GenServiceMetrics? metrics, TimeProvider time, ILoggerFactory loggerFactory)
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("GenService.Inference.ModelLoader");

    /// <summary>Wraps each graph's session pool before its batcher is built (tests gate the ONNX calls with it).</summary>
    internal Func<string, IBatchExecutor, IBatchExecutor>? WrapExecutor { get; set; }

    public LoadedModel Load(ModelManifest manifest, CancellationToken cancellationToken)
    {
        var batchers = new Dictionary<string, DynamicBatcher>(StringComparer.Ordinal);
        try
        {
            // Missing files first: a clear message without opening anything.
            foreach ((string role, GraphSpec spec) in manifest.Graphs)
            {
                if (!File.Exists(Path.Combine(manifest.Directory, spec.File)))
                {
                    throw new ManifestException($"{ManifestLoader.DisplayPath(manifest.Directory, spec.File)}: file not found (graphs.{role}.file).");
                }
            }

            foreach ((string role, GraphSpec spec) in manifest.Graphs)
            {
                cancellationToken.ThrowIfCancellationRequested();
                batchers[role] = LoadGraph(manifest, role, spec);
            }

            return new LoadedModel(manifest, batchers, time);
        }
        catch
        {
            foreach (DynamicBatcher b in batchers.Values)
            {
                b.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            throw;
        }
    }

    private DynamicBatcher LoadGraph(ModelManifest manifest, string role, GraphSpec spec)
    {
        long start = Stopwatch.GetTimestamp();
        string path = Path.Combine(manifest.Directory, spec.File);
        string display = ManifestLoader.DisplayPath(manifest.Directory, spec.File);
        string graph = $"{manifest.Name}.{role}";
        var sessions = new List<InferenceSession>(manifest.Instances);
        var sessionOptions = new List<SessionOptions>(manifest.Instances);
        OrtSessionPool? pool = null;
        string provider = "cpu";
        try
        {
            for (int i = 0; i < manifest.Instances; i++)
            {
                SessionOptions so = SessionOptionsFactory.Create(options, graph, manifest.Instances, _logger, out provider);
                sessionOptions.Add(so);
                try
                {
                    sessions.Add(new InferenceSession(path, so));
                }
                catch (OnnxRuntimeException ex)
                {
                    throw new ManifestException($"{display}: ONNX Runtime cannot load the graph (graphs.{role}.file): {ex.Message}", ex);
                }
            }

            pool = new OrtSessionPool([.. sessions], [.. sessionOptions], provider);
            GraphSignature signature = GraphValidator.Validate(manifest, role, pool.InputMetadata, pool.OutputMetadata);
            if (options.WarmUp)
            {
                try
                {
                    pool.Run(GraphValidator.WarmUpInputs(manifest, role, signature), [.. signature.Outputs.Select(o => o.Name)]);
                }
                catch (OnnxRuntimeException ex)
                {
                    throw new ManifestException($"{display}: the warm-up run (batch 1) failed: {ex.Message}", ex);
                }
            }

            var settings = new BatcherSettings(
                manifest.Batching.MaxBatchSize,
                TimeSpan.FromMilliseconds(manifest.Batching.MaxQueueDelayMs),
                manifest.Batching.MaxQueueSize,
                manifest.Instances,
                TimeSpan.FromMilliseconds(options.DefaultDeadlineMs));
            IBatchExecutor executor = WrapExecutor is { } wrap ? wrap(graph, pool) : pool;
            var batcher = new DynamicBatcher(manifest.Name, role, signature, executor, settings, time, metrics, _logger);
            Log.GraphLoaded(_logger, graph, manifest.Instances, provider, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            return batcher;
        }
        catch
        {
            if (pool is not null)
            {
                pool.Dispose();
            }
            else
            {
                sessions.ForEach(s => s.Dispose());
                sessionOptions.ForEach(o => o.Dispose());
            }

            throw;
        }
    }
}

/// <summary>A loaded version of a model: its manifest and a batcher per graph.</summary>
internal sealed class LoadedModel : ILoadedModel, IAsyncDisposable
{
    private readonly Dictionary<string, DynamicBatcher> _batchers;
    private readonly TimeProvider _time;

    public LoadedModel(ModelManifest manifest, Dictionary<string, DynamicBatcher> batchers, TimeProvider time)
    {
        _time = time;
        Manifest = manifest;
        _batchers = batchers;
        Graphs = batchers.ToDictionary(kv => kv.Key, kv => (IGraphRunner)kv.Value, StringComparer.Ordinal);
        LoadedAt = time.GetUtcNow();
    }

    public ModelManifest Manifest { get; }

    public IReadOnlyDictionary<string, IGraphRunner> Graphs { get; }

    public DateTimeOffset LoadedAt { get; }

    public IGraphRunner? Graph(string role) => Graphs.GetValueOrDefault(role);

    /// <summary>
    /// Lets in-flight work finish, waits until the whole model (every graph at once) has stayed idle for
    /// <paramref name="grace"/>, then closes every graph and disposes its sessions. Model-wide, not per graph: a
    /// text-to-image request uses its text encoder, then the UNet for many steps, then the VAE decoder; a per-graph
    /// drain would close the decoder of a retired version while the request still runs UNet steps on it.
    /// </summary>
    public async Task DrainAndCloseAsync(TimeSpan grace, string reason, CancellationToken cancellationToken = default)
    {
        DynamicBatcher[] batchers = [.. _batchers.Values];
        while (true)
        {
            (Task Idle, long Activity)[] signals = [.. batchers.Select(b => b.IdleSignal())];
            await Task.WhenAll(signals.Select(s => s.Idle)).WaitAsync(cancellationToken).ConfigureAwait(false);
            if (grace > TimeSpan.Zero)
            {
                await Task.Delay(grace, _time, cancellationToken).ConfigureAwait(false);
            }

            if (batchers.Select((b, i) => b.IsQuietSince(signals[i].Activity)).All(quiet => quiet))
            {
                break;
            }
        }

        await Task.WhenAll(batchers.Select(b => b.CloseAsync(reason))).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (DynamicBatcher b in _batchers.Values)
        {
            await b.DisposeAsync().ConfigureAwait(false);
        }
    }
}
