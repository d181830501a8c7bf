using GenService.Inference.Batching;
using GenService.Inference.Hosting;
using GenService.Inference.Manifest;
using GenService.Inference.Metrics;
using GenService.Inference.Options;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Inference.Repository;

/// <summary>
/// The model repository over a folder of model folders. Each folder has a slot holding an immutable
/// <see cref="ModelEntry"/> snapshot (swapped atomically) and the serving <see cref="LoadedModel"/>.
/// Loads of one slot are serialized; different models load in parallel; a failure is recorded on
/// its slot only. A reload builds the new version beside the old one, swaps, and then retires the
/// old version in the background (drain, idle grace, dispose).
/// </summary>
internal sealed class ModelRepository : IModelRepository, IAsyncDisposable
{
    private readonly InferenceOptions _options;
    private readonly TimeProvider _time;
    private readonly ModelLoader _loader;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Slot> _slots = new(StringComparer.Ordinal);
    private readonly List<Task> _retiring = [];
    private readonly IModelLoadCheck[] _checks;

    public ModelRepository(IOptions<InferenceOptions> options, GenServiceMetrics? metrics, TimeProvider time, ILoggerFactory loggerFactory, IEnumerable<IModelLoadCheck>? checks = null)
    {
        _checks = [.. checks ?? []];
        _options = options.Value;
        _time = time;
        _logger = loggerFactory.CreateLogger("GenService.Inference.ModelRepository");
        _loader = new ModelLoader(_options, metrics, time, loggerFactory);
        Root = Path.GetFullPath(string.IsNullOrWhiteSpace(_options.ModelRepository)
            ? InferenceOptions.FindDefaultRepository(AppContext.BaseDirectory, Environment.CurrentDirectory)
            : _options.ModelRepository);
    }

    /// <summary>The absolute model folder.</summary>
    public string Root { get; }

    /// <summary>Wraps each graph's session pool as it is built (tests hold ONNX calls with it).</summary>
    internal Func<string, IBatchExecutor, IBatchExecutor>? WrapExecutor
    {
        get => _loader.WrapExecutor;
        set => _loader.WrapExecutor = value;
    }

    /// <summary>Awaited after a slot turns Loading and before the new version is built (tests hold a reload open with it).</summary>
    internal Func<string, CancellationToken, Task>? BeforeBuild { get; set; }

    public IReadOnlyList<ModelEntry> List()
    {
        lock (_lock)
        {
            return [.. _slots.Values.Select(s => s.Entry).OrderBy(e => e.Name, StringComparer.Ordinal)];
        }
    }

    public ModelEntry? Find(string name)
    {
        lock (_lock)
        {
            return _slots.TryGetValue(name, out Slot? s) ? s.Entry : null;
        }
    }

    public ILoadedModel GetReady(string name)
    {
        ModelEntry entry = Find(name) ?? throw new ModelNotFoundException(name);
        if (entry.Model is { } model && entry.State is ModelState.Ready or ModelState.Loading)
        {
            return model;
        }

        throw new ModelNotReadyException(name, entry.State switch
        {
            ModelState.Loading => "it is loading; retry in a few seconds.",
            ModelState.Failed => $"it failed to load: {entry.Error}",
            _ => $"it is unloaded{(entry.Error is null ? "" : $" ({entry.Error})")}; POST /v2/repository/models/{name}/load loads it.",
        });
    }

    public IGraphRunner GetGraph(string v2Name)
    {
        ArgumentNullException.ThrowIfNull(v2Name);
        int dot = v2Name.LastIndexOf('.');
        if (dot <= 0 || dot == v2Name.Length - 1)
        {
            throw new ModelNotFoundException(v2Name);
        }

        ILoadedModel model = GetReady(v2Name[..dot]);
        return model.Graph(v2Name[(dot + 1)..]) ?? throw new ModelNotFoundException(v2Name);
    }

    public Task<IReadOnlyList<ModelEntry>> IndexAsync(CancellationToken cancellationToken) => ScanAsync(load: true, cancellationToken);

    /// <summary>Scans the folder; with <paramref name="load"/> false new models are only listed (Unloaded).</summary>
    public async Task<IReadOnlyList<ModelEntry>> ScanAsync(bool load, CancellationToken cancellationToken)
    {
        string[] found = Directory.Exists(Root)
            ? [.. Directory.EnumerateDirectories(Root).Where(ManifestLoader.IsModelFolder).Select(Path.GetFileName).OfType<string>()]
            : [];
        if (!Directory.Exists(Root))
        {
            Log.RepositoryMissing(_logger, Root);
        }

        Log.Scanning(_logger, Root, found.Length);
        var toLoad = new List<Slot>();
        var vanished = new List<Slot>();
        lock (_lock)
        {
            foreach (string name in found)
            {
                if (!_slots.TryGetValue(name, out Slot? slot))
                {
                    slot = new Slot(name, Path.Combine(Root, name));
                    slot.Entry = load
                        ? new ModelEntry(name, slot.Directory, ModelState.Loading, null, null, null, null)
                        : new ModelEntry(name, slot.Directory, ModelState.Unloaded, null, null, "not loaded at startup (GenService:LoadOnStartup is false).", null);
                    _slots[name] = slot;
                    if (load)
                    {
                        toLoad.Add(slot);
                    }
                }
                else if (load && !slot.ExplicitlyUnloaded && slot.Entry.State is ModelState.Failed or ModelState.Unloaded)
                {
                    toLoad.Add(slot);
                }
            }

            foreach (Slot slot in _slots.Values)
            {
                if (!found.Contains(slot.Name) && slot.Entry.State != ModelState.Unloaded)
                {
                    vanished.Add(slot);
                }
            }
        }

        foreach (Slot slot in vanished)
        {
            await UnloadSlotAsync(slot, "its folder was removed", explicitly: false, cancellationToken).ConfigureAwait(false);
        }

        await Task.WhenAll(toLoad.Select(s => LoadSlotAsync(s, cancellationToken))).ConfigureAwait(false);
        return List();
    }

    public async Task<ModelEntry> LoadAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        Slot slot;
        lock (_lock)
        {
            if (!_slots.TryGetValue(name, out slot!))
            {
                string dir = Path.Combine(Root, name);
                if (name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || name.StartsWith('.')
                    || !ManifestLoader.IsModelFolder(dir))
                {
                    throw new ModelNotFoundException(name);
                }

                slot = new Slot(name, dir) { Entry = new ModelEntry(name, dir, ModelState.Loading, null, null, null, null) };
                _slots[name] = slot;
            }

            slot.ExplicitlyUnloaded = false;
        }

        return await LoadSlotAsync(slot, cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> UnloadAsync(string name, CancellationToken cancellationToken)
    {
        Slot? slot;
        lock (_lock)
        {
            _slots.TryGetValue(name, out slot);
        }

        if (slot is null)
        {
            return false;
        }

        await UnloadSlotAsync(slot, "unloaded by request", explicitly: true, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Brings one model folder in line with the disk after it changed (the repository watcher calls this once the
    /// folder has been quiet): <see cref="RepositoryChanges.Decide"/> picks the action, the usual load, reload and
    /// unload paths carry it out. A failed load leaves the model Failed (or the old version serving) with the error;
    /// the folder's next change tries again.
    /// </summary>
    /// <param name="name">The folder's name under the repository root.</param>
    /// <param name="cancellationToken">Stops a load in progress (shutdown).</param>
    public async Task<RepositoryChange> ApplyChangeAsync(string name, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        string dir = Path.Combine(Root, name);
        bool isModel = !name.StartsWith('.') && ManifestLoader.IsModelFolder(dir);
        Slot? slot;
        RepositoryChange change;
        lock (_lock)
        {
            _slots.TryGetValue(name, out slot);
            change = RepositoryChanges.Decide(isModel, slot?.Entry, slot?.ExplicitlyUnloaded ?? false);
            if (change == RepositoryChange.Load && slot is null)
            {
                slot = new Slot(name, dir) { Entry = new ModelEntry(name, dir, ModelState.Loading, null, null, null, null) };
                _slots[name] = slot;
            }
        }

        Log.WatchChange(_logger, name, change.ToString().ToLowerInvariant());
        switch (change)
        {
            case RepositoryChange.Load or RepositoryChange.Reload:
                await LoadSlotAsync(slot!, cancellationToken).ConfigureAwait(false);
                break;
            case RepositoryChange.Unload:
                await UnloadSlotAsync(slot!, "its folder was removed", explicitly: false, cancellationToken).ConfigureAwait(false);
                break;
        }

        return change;
    }

    private async Task<ModelEntry> LoadSlotAsync(Slot slot, CancellationToken cancellationToken)
    {
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            LoadedModel? old = slot.Current;
            SetEntry(slot, slot.Entry with { State = ModelState.Loading, Model = old, Error = null });
            ModelManifest? manifest = null;
            LoadedModel loaded;
            try
            {
                if (BeforeBuild is { } hook)
                {
                    await hook(slot.Name, cancellationToken).ConfigureAwait(false);
                }

                // Session creation and warm-up are CPU-bound: off the caller's thread.
                loaded = await Task.Run(() =>
                {
                    manifest = ManifestLoader.LoadFolder(slot.Directory);
                    if (_options.Instances > 0)
                    {
                        // GenService:Instances: the deployment's session count wins over the model's.
                        manifest = manifest with { Instances = _options.Instances };
                    }

                    LoadedModel built = _loader.Load(manifest, cancellationToken);
                    try
                    {
                        foreach (IModelLoadCheck check in _checks)
                        {
                            check.Check(built);
                        }
                    }
                    catch
                    {
                        built.DisposeAsync().AsTask().GetAwaiter().GetResult();
                        throw;
                    }

                    return built;
                }, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                string reason = ex is ManifestException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
                if (old is not null)
                {
                    // The old version keeps serving; the entry says why the new one is not there.
                    Log.ReloadFailed(_logger, slot.Name, old.Manifest.Version, reason);
                    SetEntry(slot, new ModelEntry(slot.Name, slot.Directory, ModelState.Ready, old.Manifest, old,
                        $"reload failed, still serving version {old.Manifest.Version}: {reason}", old.LoadedAt));
                }
                else
                {
                    Log.ModelFailed(_logger, slot.Name, reason, ex is ManifestException ? null : ex);
                    SetEntry(slot, new ModelEntry(slot.Name, slot.Directory, ModelState.Failed, manifest, null, reason, null));
                }

                return slot.Entry;
            }
            catch (OperationCanceledException)
            {
                SetEntry(slot, old is null
                    ? new ModelEntry(slot.Name, slot.Directory, ModelState.Unloaded, manifest, null, "loading was cancelled.", null)
                    : slot.Entry with { State = ModelState.Ready });
                throw;
            }

            slot.Current = loaded;
            SetEntry(slot, new ModelEntry(slot.Name, slot.Directory, ModelState.Ready, loaded.Manifest, loaded, null, loaded.LoadedAt));
            Log.ModelReady(_logger, slot.Name, loaded.Manifest.Version);
            if (old is not null)
            {
                Retire(slot.Name, old, "a newer version was loaded");
            }

            return slot.Entry;
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    private async Task UnloadSlotAsync(Slot slot, string reason, bool explicitly, CancellationToken cancellationToken)
    {
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        LoadedModel? old;
        try
        {
            old = slot.Current;
            slot.Current = null;
            slot.ExplicitlyUnloaded = explicitly;
            SetEntry(slot, new ModelEntry(slot.Name, slot.Directory, ModelState.Unloaded, slot.Entry.Manifest, null, reason, null));
        }
        finally
        {
            slot.Gate.Release();
        }

        if (old is not null)
        {
            Log.ModelRetired(_logger, slot.Name, old.Manifest.Version);
            await old.DrainAndCloseAsync(TimeSpan.FromMilliseconds(_options.DrainGraceMs), reason, cancellationToken).ConfigureAwait(false);
            Log.ModelUnloaded(_logger, slot.Name);
        }
    }

    private void Retire(string name, LoadedModel old, string reason)
    {
        Log.ModelRetired(_logger, name, old.Manifest.Version);
        Task task = Task.Run(async () =>
        {
            try
            {
                await old.DrainAndCloseAsync(TimeSpan.FromMilliseconds(_options.DrainGraceMs), reason).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Log.DisposeFailed(_logger, name, ex);
            }
        });
        lock (_lock)
        {
            _retiring.RemoveAll(t => t.IsCompleted);
            _retiring.Add(task);
        }
    }

    /// <summary>Completes once every version retired so far has drained and closed (tests await it instead of sleeping).</summary>
    internal Task RetiredAsync()
    {
        lock (_lock)
        {
            return Task.WhenAll(_retiring);
        }
    }

    private void SetEntry(Slot slot, ModelEntry entry)
    {
        lock (_lock)
        {
            slot.Entry = entry;
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<LoadedModel> current;
        Task[] retiring;
        lock (_lock)
        {
            current = [.. _slots.Values.Select(s => s.Current).OfType<LoadedModel>()];
            retiring = [.. _retiring];
        }

        foreach (LoadedModel m in current)
        {
            await m.DisposeAsync().ConfigureAwait(false);
        }

        // Retiring versions only wait for their own requests; give them a moment, not forever.
        await Task.WhenAny(Task.WhenAll(retiring), Task.Delay(TimeSpan.FromSeconds(10), _time)).ConfigureAwait(false);
    }

    private sealed class Slot(string name, string directory)
    {
        public string Name { get; } = name;

        public string Directory { get; } = directory;

        public ModelEntry Entry { get; set; } = null!;

        public LoadedModel? Current { get; set; }

        public bool ExplicitlyUnloaded { get; set; }

        public SemaphoreSlim Gate { get; } = new(1, 1);
    }
}
