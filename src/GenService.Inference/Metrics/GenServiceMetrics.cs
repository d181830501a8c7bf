using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace GenService.Inference.Metrics;

/// <summary>
/// The service's instruments, on the Meter "GenService" (exported to Prometheus by the HTTP layer).
/// Tags are low-cardinality: model, graph (role), family, route, status, reason.
/// </summary>
public sealed class GenServiceMetrics
{
    public const string MeterName = "GenService";

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _queueWait;
    private readonly Histogram<double> _compute;
    private readonly Histogram<int> _batchSize;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _cancelled;
    private readonly Counter<long> _networkEvaluations;

    // One entry per live batcher; the observable gauge reads them when a collector scrapes.
    private readonly ConcurrentDictionary<QueueKey, Func<int>> _queues = new();

    public GenServiceMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        Meter meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("genservice.requests", "{request}", "HTTP requests by model, family, route and status.");
        _queueWait = meter.CreateHistogram<double>("genservice.queue.wait", "s", "Time a request waited in a batcher queue.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _compute = meter.CreateHistogram<double>("genservice.compute", "s", "Model time of one batch.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _batchSize = meter.CreateHistogram<int>("genservice.batch.size", "{row}", "Rows in one executed batch.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] });
        _rejected = meter.CreateCounter<long>("genservice.rejected", "{request}", "Requests rejected by a batcher (queue_full, deadline).");
        _cancelled = meter.CreateCounter<long>("genservice.cancelled", "{request}", "Requests whose caller went away before they finished.");
        _networkEvaluations = meter.CreateCounter<long>("genservice.network.evaluations", "{evaluation}", "Network evaluations per sample, summed.");
        meter.CreateObservableGauge("genservice.queue.depth", ObserveQueues, "{row}", "Rows waiting in each batcher queue.");
    }

    /// <summary>Counts one HTTP request (called by the HTTP layer).</summary>
    public void RecordRequest(string model, string family, string route, string status) =>
        _requests.Add(1, new("model", model), new("family", family), new("route", route), new("status", status));

    /// <summary>Counts network evaluations (diffusion steps, AR tokens, single passes), called by family code.</summary>
    public void RecordNetworkEvaluations(string model, string family, long count) =>
        _networkEvaluations.Add(count, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("family", family));

    public void RecordQueueWait(string model, string graph, TimeSpan wait) =>
        _queueWait.Record(wait.TotalSeconds, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("graph", graph));

    public void RecordCompute(string model, string graph, TimeSpan compute) =>
        _compute.Record(compute.TotalSeconds, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("graph", graph));

    public void RecordBatchSize(string model, string graph, int rows) =>
        _batchSize.Record(rows, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("graph", graph));

    /// <summary>reason: queue_full | deadline.</summary>
    public void RecordRejected(string model, string graph, string reason) =>
        _rejected.Add(1, new("model", model), new("graph", graph), new("reason", reason));

    public void RecordCancelled(string model, string graph) =>
        _cancelled.Add(1, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("graph", graph));

    /// <summary>Registers a queue for the depth gauge; dispose the result when the batcher goes away.</summary>
    public IDisposable RegisterQueue(string model, string graph, Func<int> depth)
    {
        var key = new QueueKey(model, graph, new object());
        _queues[key] = depth;
        return new Registration(this, key);
    }

    private IEnumerable<Measurement<int>> ObserveQueues()
    {
        foreach (KeyValuePair<QueueKey, Func<int>> q in _queues)
        {
            yield return new Measurement<int>(q.Value(), new KeyValuePair<string, object?>("model", q.Key.Model), new KeyValuePair<string, object?>("graph", q.Key.Graph));
        }
    }

    // The identity object keeps two versions of one model (during a reload) apart.
    private sealed record QueueKey(string Model, string Graph, object Identity);

    private sealed class Registration(GenServiceMetrics owner, QueueKey key) : IDisposable
    {
        public void Dispose() => owner._queues.TryRemove(key, out _);
    }
}
