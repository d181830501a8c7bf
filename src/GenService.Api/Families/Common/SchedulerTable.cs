using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using GenService.Inference.Runtime;

namespace GenService.Api.Families.Common;

/// <summary>An iteration-level scheduler: one loop over one graph of one loaded model version.</summary>
internal interface IIterationScheduler : IDisposable
{
    /// <summary>The graph the loop calls (its key: a reloaded model brings a new runner, so a new loop).</summary>
    IGraphRunner Graph { get; }

    string ModelName { get; }

    /// <summary>Requests admitted or waiting now.</summary>
    int ActiveRequests { get; }
}

/// <summary>
/// The schedulers of one family, one per graph runner (i.e. per model version), created on first use. Runners are
/// held weakly, so an unloaded version and its idle scheduler can be collected; a scheduler that closes (its model
/// version was unloaded) is forgotten so the next request on a new version gets a fresh one.
/// </summary>
internal sealed class SchedulerTable<T> : IDisposable
    where T : class, IIterationScheduler
{
    private readonly ConditionalWeakTable<IGraphRunner, T> _schedulers = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>The scheduler of <paramref name="graph"/>; <paramref name="create"/> gets the callback to call when it closes.</summary>
    public T GetOrCreate(IGraphRunner graph, Func<Action<T>, T> create)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_schedulers.TryGetValue(graph, out T? scheduler))
            {
                scheduler = create(Forget);
                _schedulers.Add(graph, scheduler);
            }

            return scheduler;
        }
    }

    /// <summary>Schedulers alive now (tests, metrics).</summary>
    public IReadOnlyList<T> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _schedulers.Select(p => p.Value)];
            }
        }
    }

    /// <summary>Active requests per model, for an observable gauge.</summary>
    public IEnumerable<Measurement<int>> ObserveActive()
    {
        foreach (T s in All)
        {
            yield return new Measurement<int>(s.ActiveRequests, new KeyValuePair<string, object?>("model", s.ModelName));
        }
    }

    private void Forget(T scheduler)
    {
        lock (_lock)
        {
            if (_schedulers.TryGetValue(scheduler.Graph, out T? current) && ReferenceEquals(current, scheduler))
            {
                _schedulers.Remove(scheduler.Graph);
            }
        }
    }

    /// <summary>Stops every loop: their waiting and running requests fail as "model not ready".</summary>
    public void Dispose()
    {
        IReadOnlyList<T> all;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            all = [.. _schedulers.Select(p => p.Value)];
            _disposed = true;
        }

        foreach (T s in all)
        {
            s.Dispose();
        }
    }
}
