using GenService.Inference.Hosting;
using GenService.Inference.Manifest;
using GenService.Inference.Options;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace GenService.Inference.Tests.Repository;

/// <summary>The watcher's debounce: per folder, on the fake clock, each folder reported once after its quiet period.</summary>
public sealed class RepositoryChangeTrackerTests : IDisposable
{
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(2);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "genservice-tracker", "models");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
    private readonly List<IReadOnlyList<string>> _reports = [];
    private readonly RepositoryChangeTracker _tracker;

    public RepositoryChangeTrackerTests() => _tracker = new RepositoryChangeTracker(_root, Quiet, _time, _reports.Add);

    public void Dispose() => _tracker.Dispose();

    private string P(params string[] parts) => Path.Combine([_root, .. parts]);

    [Fact]
    public void Events_are_coalesced_per_folder_and_each_folder_waits_for_its_own_quiet_period()
    {
        _tracker.Observe(P("a", "model.json"));
        _tracker.Observe(P("a", "generator.onnx"));
        _tracker.Observe(P("b"));
        _time.Advance(Quiet - TimeSpan.FromMilliseconds(1));
        Assert.Empty(_reports);

        // "a" is still being written: its quiet period starts again; "b" is quiet and goes alone.
        _tracker.Observe(P("a", "generator.onnx"));
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal([["b"]], _reports);
        Assert.Equal(["a"], _tracker.Pending);

        _time.Advance(Quiet - TimeSpan.FromMilliseconds(2));
        Assert.Single(_reports);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal([["b"], ["a"]], _reports);
        Assert.Empty(_tracker.Pending);

        // Nothing more happens without events.
        _time.Advance(Quiet * 10);
        Assert.Equal(2, _reports.Count);
    }

    [Fact]
    public void Folders_due_together_are_reported_in_one_call()
    {
        _tracker.Observe(P("sd", "unet", "model.onnx"));
        _tracker.Observe(P("gan", "model.json"));
        _time.Advance(Quiet);
        Assert.Equal([["gan", "sd"]], _reports);
    }

    [Theory]
    [InlineData("gan/model.json", "gan")]
    [InlineData("gan", "gan")]
    [InlineData("sd/unet/model.onnx", "sd")]
    [InlineData("sd/tokenizer/vocab.json", "sd")]
    [InlineData("gan/generator.onnx.part", null)]
    [InlineData("gan/model.json~", null)]
    [InlineData("gan/.model.json.swp", null)]
    [InlineData(".cache/x.onnx", null)]
    [InlineData(".", null)]
    [InlineData("../elsewhere/model.json", null)]
    public void Paths_map_to_their_model_folder_and_temporary_files_are_ignored(string relative, string? folder)
    {
        Assert.Equal(folder, _tracker.FolderOf(Path.Combine(_root, relative)));
        _tracker.Observe(Path.Combine(_root, relative));
        _time.Advance(Quiet);
        Assert.Equal(folder is null ? [] : [[folder]], _reports);
    }
}

/// <summary>The watcher's decision table: folder on disk and repository entry in, action out.</summary>
public sealed class RepositoryChangesTests
{
    private static ModelEntry Entry(ModelState state, bool serving) =>
        new("m", "/models/m", state, null, serving ? new NoModel() : null, null, null);

    [Theory]
    [InlineData(true, null, false, false, RepositoryChange.Load)]                          // a new folder
    [InlineData(true, ModelState.Failed, false, false, RepositoryChange.Load)]             // fixed after a failure: retried
    [InlineData(true, ModelState.Unloaded, false, false, RepositoryChange.Load)]           // back after it was removed
    [InlineData(true, ModelState.Loading, false, false, RepositoryChange.Load)]            // changed during its first load
    [InlineData(true, ModelState.Ready, true, false, RepositoryChange.Reload)]             // new files: a new version
    [InlineData(true, ModelState.Loading, true, false, RepositoryChange.Reload)]           // changed during a reload
    [InlineData(true, ModelState.Unloaded, false, true, RepositoryChange.None)]            // an admin unloaded it
    [InlineData(false, ModelState.Ready, true, false, RepositoryChange.Unload)]            // folder removed
    [InlineData(false, ModelState.Failed, false, false, RepositoryChange.Unload)]          // a failed one leaves the list's ready set too
    [InlineData(false, ModelState.Unloaded, false, false, RepositoryChange.None)]
    [InlineData(false, null, false, false, RepositoryChange.None)]                         // a stray folder without a manifest
    public void Decide(bool isModelFolder, ModelState? state, bool serving, bool explicitlyUnloaded, RepositoryChange expected)
    {
        ModelEntry? entry = state is { } s ? Entry(s, serving) : null;
        Assert.Equal(expected, RepositoryChanges.Decide(isModelFolder, entry, explicitlyUnloaded));
    }

    private sealed class NoModel : ILoadedModel
    {
        public ModelManifest Manifest => throw new NotSupportedException();

        public IReadOnlyDictionary<string, IGraphRunner> Graphs => new Dictionary<string, IGraphRunner>();

        public IGraphRunner? Graph(string role) => null;
    }
}

/// <summary>
/// Folder changes applied to the repository on the real tiny models (<see cref="ModelRepository.ApplyChangeAsync"/>,
/// what the watcher calls once a folder is quiet), the model-wide drain of a retired version, and the watcher itself
/// over a real temporary folder.
/// </summary>
public sealed class RepositoryWatchTests : IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly TestModelFolder _folder = new("tiny-gan");

    public void Dispose() => _folder.Dispose();

    private ModelRepository Create(int drainGraceMs = 0, TimeProvider? time = null) => new(
        Microsoft.Extensions.Options.Options.Create(new InferenceOptions { ModelRepository = _folder.Root, DrainGraceMs = drainGraceMs, IntraOpNumThreads = 1 }),
        null,
        time ?? TimeProvider.System,
        NullLoggerFactory.Instance);

    private static InferenceRequest Gan(float v) => new()
    {
        Inputs = new Dictionary<string, Tensor> { ["z"] = Tensor.FromFloats([v, v, v, v], 1, 4), ["y"] = Tensor.FromLongs([1], 1) },
        DispatchImmediately = true,
    };

    [Fact]
    public async Task A_folder_added_is_loaded_changed_is_reloaded_beside_the_old_one_and_removed_is_unloaded()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);

        _folder.Copy("tiny-vae", "tiny-vae");
        Assert.Equal(RepositoryChange.Load, await repo.ApplyChangeAsync("tiny-vae", Ct));
        Assert.Equal(ModelState.Ready, repo.Find("tiny-vae")!.State);

        ILoadedModel v1 = repo.GetReady("tiny-gan");
        _folder.EditManifest("tiny-gan", j => j.Replace("\"version\": \"1\"", "\"version\": \"2\"", StringComparison.Ordinal));
        Assert.Equal(RepositoryChange.Reload, await repo.ApplyChangeAsync("tiny-gan", Ct));
        ILoadedModel v2 = repo.GetReady("tiny-gan");
        Assert.NotSame(v1, v2);
        Assert.Equal("2", v2.Manifest.Version);
        await repo.RetiredAsync().WaitAsync(AwaitableCount.SafetyTimeout, Ct);
        await Assert.ThrowsAsync<ModelNotReadyException>(async () => await v1.Graph("generator")!.InferAsync(Gan(0), Ct));

        Directory.Delete(Path.Combine(_folder.Root, "tiny-vae"), recursive: true);
        Assert.Equal(RepositoryChange.Unload, await repo.ApplyChangeAsync("tiny-vae", Ct));
        Assert.Equal(ModelState.Unloaded, repo.Find("tiny-vae")!.State);
        Assert.Equal(RepositoryChange.None, await repo.ApplyChangeAsync("tiny-vae", Ct));

        // The other model never noticed.
        await repo.GetReady("tiny-gan").Graph("generator")!.InferAsync(Gan(1), Ct);
    }

    [Fact]
    public async Task A_half_copied_folder_is_failed_with_its_error_and_the_next_change_retries()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);

        // The manifest arrived, the graph not yet.
        string dst = Path.Combine(_folder.Root, "tiny-vae");
        Directory.CreateDirectory(dst);
        File.Copy(Path.Combine(TestModelFolder.Source, "tiny-vae", "model.json"), Path.Combine(dst, "model.json"));
        Assert.Equal(RepositoryChange.Load, await repo.ApplyChangeAsync("tiny-vae", Ct));
        ModelEntry failed = repo.Find("tiny-vae")!;
        Assert.Equal(ModelState.Failed, failed.State);
        Assert.Contains("file not found", failed.Error, StringComparison.Ordinal);
        Assert.Equal(ModelState.Ready, repo.Find("tiny-gan")!.State);

        _folder.Copy("tiny-vae", "tiny-vae");
        Assert.Equal(RepositoryChange.Load, await repo.ApplyChangeAsync("tiny-vae", Ct));
        Assert.Equal(ModelState.Ready, repo.Find("tiny-vae")!.State);
    }

    [Fact]
    public async Task A_model_an_admin_unloaded_stays_unloaded_when_its_files_change()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);
        await repo.UnloadAsync("tiny-gan", Ct);

        _folder.EditManifest("tiny-gan", j => j.Replace("\"version\": \"1\"", "\"version\": \"2\"", StringComparison.Ordinal));
        Assert.Equal(RepositoryChange.None, await repo.ApplyChangeAsync("tiny-gan", Ct));
        Assert.Equal(ModelState.Unloaded, repo.Find("tiny-gan")!.State);
    }

    [Fact]
    public async Task A_retired_version_closes_only_once_all_its_graphs_were_idle_together_for_the_grace()
    {
        // A multi-graph request (text-to-image: encoder, many UNet steps, decoder) must find every graph of its
        // version open: a graph idle for longer than the grace stays open while another graph of the version works.
        var time = new ObservedTimeProvider(DateTimeOffset.UnixEpoch);
        TimeSpan grace = TimeSpan.FromSeconds(2);
        _folder.Copy("tiny-vae", "tiny-vae");
        ModelRepository repo = Create(drainGraceMs: (int)grace.TotalMilliseconds, time: time);
        try
        {
            await repo.IndexAsync(Ct);
            ILoadedModel v1 = repo.GetReady("tiny-vae");
            IGraphRunner encoder = v1.Graph("encoder")!, decoder = v1.Graph("decoder")!;
            var z = new InferenceRequest { Inputs = new Dictionary<string, Tensor> { ["z"] = Tensor.FromFloats([0, 0, 0], 1, 3) }, DispatchImmediately = true };
            var x = new InferenceRequest { Inputs = new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats([0, 0, 0, 0], 1, 1, 2, 2) }, DispatchImmediately = true };

            Task graceStarted = time.WhenTimerArmed(due => due == grace);
            Assert.Equal(ModelState.Ready, (await repo.LoadAsync("tiny-vae", Ct)).State);
            await graceStarted;

            // Only the decoder works, once per grace; the encoder is idle through three graces and still open.
            for (int i = 0; i < 3; i++)
            {
                await decoder.InferAsync(z, Ct);
                Task again = time.WhenTimerArmed(due => due == grace);
                time.Advance(grace);
                await again;
            }

            await encoder.InferAsync(x, Ct);
            Task last = time.WhenTimerArmed(due => due == grace);
            time.Advance(grace);
            await last;

            // A whole grace with neither graph called: the version closes, both graphs at once.
            time.Advance(grace);
            await repo.RetiredAsync().WaitAsync(AwaitableCount.SafetyTimeout, Ct);
            await Assert.ThrowsAsync<ModelNotReadyException>(async () => await encoder.InferAsync(x, Ct));
            await Assert.ThrowsAsync<ModelNotReadyException>(async () => await decoder.InferAsync(z, Ct));
        }
        finally
        {
            Task waits = time.WhenTimerArmed(due => due == TimeSpan.FromSeconds(10));
            ValueTask disposing = repo.DisposeAsync();
            await waits;
            time.Advance(TimeSpan.FromSeconds(10));
            await disposing;
        }
    }

    [Fact]
    public async Task The_watcher_loads_a_model_folder_copied_into_the_repository()
    {
        await using ModelRepository repo = Create();
        var lifecycle = new ServiceLifecycle();
        await repo.IndexAsync(Ct);
        lifecycle.MarkStarted();
        await using var watcher = new RepositoryWatchService(
            repo, lifecycle, Microsoft.Extensions.Options.Options.Create(new RepositoryWatchOptions { WatchDebounceMs = 50 }), TimeProvider.System, NullLoggerFactory.Instance);
        var loaded = new TaskCompletionSource<RepositoryChange>(TaskCreationOptions.RunContinuationsAsynchronously);
        watcher.Applied += (folder, change) =>
        {
            if (folder == "tiny-vae" && repo.Find(folder)?.State == ModelState.Ready)
            {
                loaded.TrySetResult(change);
            }
        };
        await watcher.StartAsync(Ct);
        Assert.True(watcher.Watching);

        // Copied while the service runs: no index call, the watcher notices.
        _folder.Copy("tiny-vae", "tiny-vae");
        Assert.Equal(RepositoryChange.Load, await loaded.Task.WaitAsync(AwaitableCount.SafetyTimeout, Ct));
        Assert.Equal(ModelState.Ready, repo.Find("tiny-gan")!.State);
        await watcher.StopAsync(Ct);
    }
}
