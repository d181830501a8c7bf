using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using GenService.Inference.Metrics;
using Prometheus;

namespace GenService.Api.Operations;

/// <summary>
/// Exports this host's "GenService" Meter (System.Diagnostics.Metrics) to prometheus-net's registry under the
/// usual Prometheus names:
/// <code>
///   Counter    genservice.requests       -> genservice_requests_total
///   Histogram  genservice.queue.wait (s) -> genservice_queue_wait_seconds   (buckets from the instrument's advice)
///   Histogram  genservice.batch.size     -> genservice_batch_size
///   Gauge      genservice.queue.depth    -> genservice_queue_depth           (observed at each scrape)
/// </code>
/// Why not prometheus-net's built-in meter adapter: in 8.2.1 it prefixes the meter name
/// ("genservice_genservice_queue_depth"), did not export our counters and histograms, and publishes every
/// runtime meter besides; it is switched off (<see cref="SuppressAdapter"/>).
/// Only meters made by this host's <see cref="IMeterFactory"/> are exported, so several hosts in one process
/// (tests, the benchmark) never double count.
/// </summary>
internal sealed class PrometheusMeterBridge : IHostedService, IDisposable
{
    private static int _suppressed;

    // The tags GenServiceMetrics records, in a stable order; an instrument not listed gets its first measurement's.
    private static readonly Dictionary<string, string[]> KnownLabels = new(StringComparer.Ordinal)
    {
        ["genservice.requests"] = ["model", "family", "route", "status"],
        ["genservice.queue.wait"] = ["model", "graph"],
        ["genservice.compute"] = ["model", "graph"],
        ["genservice.batch.size"] = ["model", "graph"],
        ["genservice.queue.depth"] = ["model", "graph"],
        ["genservice.rejected"] = ["model", "graph", "reason"],
        ["genservice.cancelled"] = ["model", "graph"],
        ["genservice.network.evaluations"] = ["model", "family"],
    };

    private readonly IMeterFactory _meterFactory;
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, Exported> _exported = new();
    private volatile bool _disposed;

    public PrometheusMeterBridge(IMeterFactory meterFactory)
    {
        _meterFactory = meterFactory;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == GenServiceMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, _meterFactory))
            {
                listener.EnableMeasurementEvents(instrument);

                // Created at once, so every name is on /metrics (with HELP and TYPE) before its first event.
                if (KnownLabels.TryGetValue(instrument.Name, out string[]? labels))
                {
                    _exported.GetOrAdd(instrument, i => Exported.Create(i, labels));
                }
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
    }

    /// <summary>Turns off prometheus-net's default meter adapter (process-wide, once).</summary>
    public static void SuppressAdapter()
    {
        if (Interlocked.Exchange(ref _suppressed, 1) == 0)
        {
            Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressMeters = true, SuppressEventCounters = true });
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _listener.Start();

        // Observable instruments (queue depth) report only when asked: ask just before each scrape.
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            if (!_disposed)
            {
                _listener.RecordObservableInstruments();
            }
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        _disposed = true;
        _listener.Dispose();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (!_exported.TryGetValue(instrument, out Exported? exported))
        {
            string[] keys = new string[tags.Length];
            for (int i = 0; i < tags.Length; i++)
            {
                keys[i] = tags[i].Key;
            }

            exported = _exported.GetOrAdd(instrument, i => Exported.Create(i, keys));
        }

        exported.Record(value, tags);
    }

    private sealed class Exported
    {
        private readonly string[] _labels;
        private readonly Action<string[], double> _record;

        private Exported(string[] labels, Action<string[], double> record)
        {
            _labels = labels;
            _record = record;
        }

        // Label names are fixed at creation (Prometheus needs them up front): the tag keys of the first measurement.
        public static Exported Create(Instrument instrument, string[] labels)
        {
            string baseName = instrument.Name.Replace('.', '_');
            string help = instrument.Description ?? instrument.Name;
            switch (instrument)
            {
                case Counter<long> or Counter<int> or Counter<double>:
                    Counter counter = Metrics.CreateCounter(baseName + "_total", help, labels);
                    return new Exported(labels, (values, v) => counter.WithLabels(values).Inc(v));
                case Histogram<double> or Histogram<int> or Histogram<long>:
                    string name = instrument.Unit == "s" ? baseName + "_seconds" : baseName;
                    Histogram histogram = Metrics.CreateHistogram(name, help, new HistogramConfiguration
                    {
                        LabelNames = labels,
                        Buckets = Buckets(instrument),
                    });
                    return new Exported(labels, (values, v) => histogram.WithLabels(values).Observe(v));
                default:
                    Gauge gauge = Metrics.CreateGauge(baseName, help, labels);
                    return new Exported(labels, (values, v) => gauge.WithLabels(values).Set(v));
            }
        }

        private static double[] Buckets(Instrument instrument) => instrument switch
        {
            Histogram<double> h when h.Advice?.HistogramBucketBoundaries is { Count: > 0 } b => [.. b],
            Histogram<int> h when h.Advice?.HistogramBucketBoundaries is { Count: > 0 } b => [.. b.Select(x => (double)x)],
            Histogram<long> h when h.Advice?.HistogramBucketBoundaries is { Count: > 0 } b => [.. b.Select(x => (double)x)],
            _ => Histogram.ExponentialBuckets(0.0001, 2, 18),
        };

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string[] values = new string[_labels.Length];
            for (int i = 0; i < _labels.Length; i++)
            {
                values[i] = "";
                foreach (KeyValuePair<string, object?> tag in tags)
                {
                    if (tag.Key == _labels[i])
                    {
                        values[i] = tag.Value?.ToString() ?? "";
                        break;
                    }
                }
            }

            _record(values, value);
        }
    }
}
