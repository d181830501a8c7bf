namespace GenService.Inference.Hosting;

/// <summary>
/// The service's own state, apart from any model's: whether it is ready for traffic and whether it still takes new
/// work. One instance per host; the HTTP layer asks it for the readiness probe and before every request.
/// <code>
///   Starting ──startup load pass ends──► Ready ──ApplicationStopping──► NotReady ──readiness delay──► Refusing ──► drained
///   (503 ready)                          (200)    (503 ready, work      (503 ready, new work 503,      (in-flight
///                                                  still taken)          running work finishes)          reached 0)
/// </code>
/// Why readiness is the service's, not the models': a model that fails to load, or a folder dropped in later, is
/// that model's business (its own /v2/models/{m}/ready says so); taking the whole replica out of rotation for it would
/// turn one bad model into an outage of the good ones.
/// </summary>
public sealed class ServiceLifecycle
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _refusing = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _drained;
    private bool _stopping;
    private int _inFlight;
    private long _taken;
    private long _refused;

    /// <summary>Completes when the startup load pass has ended (every model found then is ready or failed).</summary>
    public Task Started => _started.Task;

    /// <summary>Completes when new work starts being refused (tests, and the shutdown sequence, await it).</summary>
    public Task Refusing => _refusing.Task;

    /// <summary>The startup load pass has ended.</summary>
    public bool StartupCompleted => _started.Task.IsCompleted;

    /// <summary>The host is stopping: the service is not ready, whatever its models.</summary>
    public bool ShuttingDown
    {
        get
        {
            lock (_lock)
            {
                return _stopping;
            }
        }
    }

    /// <summary>Ready for traffic: started and not shutting down.</summary>
    public bool Ready => StartupCompleted && !ShuttingDown;

    /// <summary>Requests running now (the ones <see cref="TryEnter"/> let in and not yet ended).</summary>
    public int InFlight
    {
        get
        {
            lock (_lock)
            {
                return _inFlight;
            }
        }
    }

    /// <summary>
    /// Work taken, refused and finished since the host started: the shutdown accounting the service logs when it stops
    /// (finished = taken - in flight: every taken request answered when in flight is 0), which a SIGTERM check compares
    /// with what its clients received.
    /// </summary>
    public (long Taken, long Refused, long Finished) Totals
    {
        get
        {
            lock (_lock)
            {
                return (_taken, _refused, _taken - _inFlight);
            }
        }
    }

    /// <summary>The startup load pass ended.</summary>
    public void MarkStarted() => _started.TrySetResult();

    /// <summary>The host is stopping: readiness turns false at once; work is still taken until <see cref="RefuseNewWork"/>.</summary>
    public void MarkShuttingDown()
    {
        lock (_lock)
        {
            _stopping = true;
        }
    }

    /// <summary>From now on <see cref="TryEnter"/> refuses; the work already in keeps running.</summary>
    public void RefuseNewWork()
    {
        MarkShuttingDown();
        _refusing.TrySetResult();
    }

    /// <summary>
    /// Lets one unit of work in and returns what ends it (dispose it when the work is done), or null when the service
    /// refuses new work because it is shutting down.
    /// </summary>
    public IDisposable? TryEnter()
    {
        lock (_lock)
        {
            if (_refusing.Task.IsCompleted)
            {
                _refused++;
                return null;
            }

            _inFlight++;
            _taken++;
        }

        return new Lease(this);
    }

    /// <summary>Completes once no work is in flight (at once if none is).</summary>
    public Task WhenDrained()
    {
        lock (_lock)
        {
            if (_inFlight == 0)
            {
                return Task.CompletedTask;
            }

            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task;
        }
    }

    private void Exit()
    {
        TaskCompletionSource? drained = null;
        lock (_lock)
        {
            _inFlight--;
            if (_inFlight == 0)
            {
                drained = _drained;
                _drained = null;
            }
        }

        drained?.TrySetResult();
    }

    private sealed class Lease(ServiceLifecycle owner) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Exit();
            }
        }
    }
}
