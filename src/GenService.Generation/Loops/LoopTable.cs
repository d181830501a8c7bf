using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using GenService.Inference.Runtime;

namespace GenService.Generation.Loops;

/// <summary>An iteration-level loop: one loop over one graph of one loaded model version.</summary>
internal interface IIterationLoop : IDisposable
{
    /// <summary>The graph the loop calls (its key: a reloaded model brings a new runner, so a new loop).</summary>
    IGraphRunner Graph { get; }

    string ModelName { get; }

    /// <summary>Requests admitted or waiting now.</summary>
    int ActiveRequests { get; }

    /// <summary>Items (diffusion samples, AR sequences) waiting for admission now: the loop's backlog.</summary>
    int WaitingItems { get; }
}

/// <summary>
/// The loops of one family, one per graph runner (i.e. per model version), created on first use. Runners are
/// held weakly, so an unloaded version and its idle loop can be collected; a loop that closes (its model
/// version was unloaded) is forgotten so the next request on a new version gets a fresh one.
/// </summary>
internal sealed class LoopTable<T> : IDisposable
    where T : class, IIterationLoop
{
    private readonly ConditionalWeakTable<IGraphRunner, T> _loops = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>The loop of <paramref name="graph"/>; <paramref name="create"/> gets the callback to call when it closes.</summary>
    public T GetOrCreate(IGraphRunner graph, Func<Action<T>, T> create)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_loops.TryGetValue(graph, out T? loop))
            {
                loop = create(Forget);
                _loops.Add(graph, loop);
            }

            return loop;
        }
    }

    /// <summary>Loops alive now (tests, metrics).</summary>
    public IReadOnlyList<T> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _loops.Select(p => p.Value)];
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

    /// <summary>Items waiting for admission per model, for an observable gauge (an autoscaler's backlog signal).</summary>
    public IEnumerable<Measurement<int>> ObserveWaiting()
    {
        foreach (T s in All)
        {
            yield return new Measurement<int>(s.WaitingItems, new KeyValuePair<string, object?>("model", s.ModelName));
        }
    }

    private void Forget(T loop)
    {
        lock (_lock)
        {
            if (_loops.TryGetValue(loop.Graph, out T? current) && ReferenceEquals(current, loop))
            {
                _loops.Remove(loop.Graph);
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

            all = [.. _loops.Select(p => p.Value)];
            _disposed = true;
        }

        foreach (T s in all)
        {
            s.Dispose();
        }
    }
}
