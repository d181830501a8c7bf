using GenService.Inference.Hosting;
using GenService.Inference.Manifest;
using GenService.Inference.Options;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Inference.Repository;

/// <summary>
/// Watches the model repository folder (recursively) and keeps the repository in line with it: the thin adapter
/// between <see cref="FileSystemWatcher"/> and the tested logic. Events go to a <see cref="RepositoryChangeTracker"/>
/// (per-folder quiet period); each folder it reports goes to <see cref="ModelRepository.ApplyChangeAsync"/> (the
/// decision table <see cref="RepositoryChanges.Decide"/>, then load, reload or unload). Changes are applied only after
/// the startup load pass, which covers what was on disk when the service started. A lost event buffer (too many
/// changes at once) re-checks every folder. Off with <c>GenService:Repository:Watch=false</c>.
/// </summary>
internal sealed class RepositoryWatchService(
    ModelRepository repository,
    ServiceLifecycle lifecycle,
    IOptions<RepositoryWatchOptions> options,
    TimeProvider time,
    ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("GenService.Inference.RepositoryWatcher");
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly HashSet<Task> _applying = [];
    private FileSystemWatcher? _watcher;
    private RepositoryChangeTracker? _tracker;

    /// <summary>Raised after a change was applied to a folder (tests await it instead of sleeping).</summary>
    internal event Action<string, RepositoryChange>? Applied;

    /// <summary>Whether the watcher is running (on, and the folder existed at start).</summary>
    internal bool Watching => _watcher is not null;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        RepositoryWatchOptions o = options.Value;
        string root = repository.Root;
        if (!o.Watch || !Directory.Exists(root))
        {
            return Task.CompletedTask;
        }

        _tracker = new RepositoryChangeTracker(root, TimeSpan.FromMilliseconds(o.WatchDebounceMs), time, OnDue);
        var watcher = new FileSystemWatcher(root)
        {
            IncludeSubdirectories = true,
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            InternalBufferSize = 64 * 1024,
        };
        watcher.Created += OnEvent;
        watcher.Changed += OnEvent;
        watcher.Deleted += OnEvent;
        watcher.Renamed += (_, e) =>
        {
            _tracker.Observe(e.OldFullPath);
            _tracker.Observe(e.FullPath);
        };
        watcher.Error += (_, e) => OnLost(e.GetException());
        watcher.EnableRaisingEvents = true;
        _watcher = watcher;
        Log.WatchStarted(_logger, root, o.WatchDebounceMs);
        return Task.CompletedTask;
    }

    private void OnEvent(object sender, FileSystemEventArgs e) => _tracker?.Observe(e.FullPath);

    private void OnLost(Exception exception)
    {
        Log.WatchFailed(_logger, repository.Root, exception.Message, exception);
        IEnumerable<string> onDisk = Directory.Exists(repository.Root)
            ? Directory.EnumerateDirectories(repository.Root).Select(Path.GetFileName).OfType<string>()
            : [];
        foreach (string folder in onDisk.Concat(repository.List().Select(e => e.Name)).Distinct(StringComparer.Ordinal))
        {
            _tracker?.Touch(folder);
        }
    }

    private void OnDue(IReadOnlyList<string> folders)
    {
        foreach (string folder in folders)
        {
            lock (_lock)
            {
                if (_stopping.IsCancellationRequested)
                {
                    return;
                }

                Task task = Task.Run(() => ApplyAsync(folder));
                _applying.Add(task);
                _ = task.ContinueWith(t => Forget(t), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
    }

    private void Forget(Task task)
    {
        lock (_lock)
        {
            _applying.Remove(task);
        }
    }

    private async Task ApplyAsync(string folder)
    {
        CancellationToken stopping = _stopping.Token;
        try
        {
            await lifecycle.Started.WaitAsync(stopping).ConfigureAwait(false);
            RepositoryChange change = await repository.ApplyChangeAsync(folder, stopping).ConfigureAwait(false);
            Applied?.Invoke(folder, change);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down: the repository disposes whatever loaded.
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ManifestException)
        {
            // The folder changed again under the check; its next events bring it back.
            Log.WatchFailed(_logger, Path.Combine(repository.Root, folder), ex.Message, ex);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Task[] applying;
        lock (_lock)
        {
            if (!_stopping.IsCancellationRequested)
            {
                _stopping.Cancel();
            }

            applying = [.. _applying];
        }

        _watcher?.Dispose();
        _tracker?.Dispose();
        try
        {
            await Task.WhenAll(applying).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout passed; the loads end with the repository.
        }
    }

    public ValueTask DisposeAsync()
    {
        _watcher?.Dispose();
        _tracker?.Dispose();
        return ValueTask.CompletedTask;
    }
}
