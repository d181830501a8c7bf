namespace GenService.Inference.Repository;

/// <summary>
/// Turns file system events under the model repository into "this model folder changed", once per folder and only
/// after the folder has been quiet for the debounce period (on the injected <see cref="TimeProvider"/>):
/// <code>
///   Observe(path) ──► folder = first segment under the root (hidden and temporary files ignored)
///                     due[folder] = now + quiet          (every event pushes the folder's due time back)
///   one timer, armed for the earliest due ──► folders whose due time passed ──► onDue(folders), each once
/// </code>
/// Why per folder: copying a model writes one folder for seconds while others stay untouched; each is acted on as
/// soon as its own writes end. Why not act on events directly: a copy raises an event per write and a load of a
/// half-written ONNX file fails; the quiet period makes one copy one load.
/// </summary>
internal sealed class RepositoryChangeTracker : IDisposable
{
    private static readonly string[] TemporarySuffixes = ["~", ".tmp", ".temp", ".swp", ".part", ".partial", ".crdownload", ".download"];

    private readonly string _root;
    private readonly TimeSpan _quiet;
    private readonly TimeProvider _time;
    private readonly Action<IReadOnlyList<string>> _onDue;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, DateTimeOffset> _due = new(StringComparer.Ordinal);
    private readonly ITimer _timer;
    private bool _disposed;

    /// <param name="root">The repository folder (absolute).</param>
    /// <param name="quiet">How long a folder must go without events before it is reported.</param>
    /// <param name="time">The clock (tests: a FakeTimeProvider).</param>
    /// <param name="onDue">Called with the folders (names under the root) whose quiet period ended; never under a lock.</param>
    public RepositoryChangeTracker(string root, TimeSpan quiet, TimeProvider time, Action<IReadOnlyList<string>> onDue)
    {
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        _quiet = quiet;
        _time = time;
        _onDue = onDue;
        _timer = time.CreateTimer(static s => ((RepositoryChangeTracker)s!).Fire(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Folders with events whose quiet period has not ended yet.</summary>
    public IReadOnlyList<string> Pending
    {
        get
        {
            lock (_lock)
            {
                return [.. _due.Keys.Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>
    /// The model folder a path under the root belongs to, or null: the root itself, paths outside it, hidden folders
    /// (".cache") and hidden or temporary files ("model.onnx.part", ".model.json.swp") do not make a model change.
    /// </summary>
    public string? FolderOf(string path)
    {
        string relative = Path.GetRelativePath(_root, Path.GetFullPath(path));
        if (relative == "." || relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative))
        {
            return null;
        }

        string[] parts = relative.Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[0].StartsWith('.'))
        {
            return null;
        }

        string leaf = parts[^1];
        if (parts.Length > 1 && (leaf.StartsWith('.') || TemporarySuffixes.Any(s => leaf.EndsWith(s, StringComparison.OrdinalIgnoreCase))))
        {
            return null;
        }

        return parts[0];
    }

    /// <summary>Records an event on <paramref name="path"/>; its folder is reported once it has been quiet long enough.</summary>
    public void Observe(string path)
    {
        if (FolderOf(path) is { } folder)
        {
            Touch(folder);
        }
    }

    /// <summary>Records a change of a whole folder (a lost event buffer: every folder is checked again).</summary>
    public void Touch(string folder)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _due[folder] = _time.GetUtcNow() + _quiet;
            ArmLocked();
        }
    }

    private void ArmLocked()
    {
        if (_due.Count == 0)
        {
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }

        TimeSpan wait = _due.Values.Min() - _time.GetUtcNow();
        _timer.Change(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
    }

    private void Fire()
    {
        List<string> due;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            DateTimeOffset now = _time.GetUtcNow();
            due = [.. _due.Where(kv => kv.Value <= now).Select(kv => kv.Key).Order(StringComparer.Ordinal)];
            foreach (string folder in due)
            {
                _due.Remove(folder);
            }

            ArmLocked();
        }

        if (due.Count > 0)
        {
            _onDue(due);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _due.Clear();
        }

        _timer.Dispose();
    }
}
