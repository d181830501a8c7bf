using System.Diagnostics.Metrics;

namespace GenService.Testing;

/// <summary>
/// Records what an iteration-level loop family (<c>ar</c>, <c>diffusion</c>) reports for one model on one meter
/// factory: each iteration's rows and seconds, the rows counter, the active-requests gauge (read when the test, or
/// the loop during its first iterations, asks), and the model's network evaluations. A loop records an iteration's
/// metrics, and a request's evaluations, just after the request's result is out: a test that has the result awaits
/// <see cref="WhenRecorded"/> before it reads them.
/// </summary>
/// <remarks>Compiled into each test project (linked from tests/Shared), so it stays internal to each.</remarks>
internal sealed class LoopMetricsRecorder : IDisposable
{
    private readonly Lock _lock = new();
    private readonly MeterListener _listener = new();
    private readonly List<int> _rows = [];
    private readonly List<double> _seconds = [];
    private readonly List<long> _rowsCounted = [];
    private readonly List<int> _active = [];
    private readonly List<long> _evaluations = [];
    private readonly AwaitableCount _rowsRecorded = new();
    private readonly AwaitableCount _secondsRecorded = new();
    private readonly AwaitableCount _rowsCountedRecorded = new();
    private readonly AwaitableCount _evaluationsRecorded = new();

    /// <param name="meters">The factory whose "GenService" meter the loops and the telemetry report on.</param>
    /// <param name="family">ar or diffusion: the middle of the loop instruments' names.</param>
    /// <param name="model">Only this model's measurements are kept.</param>
    /// <param name="gaugeDuringIterations">
    /// Read the gauge from inside the first this-many iterations, on the loop as each iteration is recorded (the
    /// request is surely in flight then, unless that iteration was its last): for a test that cannot hold a call.
    /// </param>
    public LoopMetricsRecorder(IMeterFactory meters, string family, string model, int gaugeDuringIterations = 0)
    {
        string prefix = $"genservice.{family}.";
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters)
                && (instrument.Name.StartsWith(prefix, StringComparison.Ordinal) || instrument.Name == "genservice.network.evaluations"))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
        {
            if (!Is(tags, "model", model) || instrument.Name == prefix + "waiting_items")
            {
                return;
            }

            bool iteration = instrument.Name == prefix + "iteration.rows";
            int iterations;
            lock (_lock)
            {
                (iteration ? _rows : _active).Add(value);
                iterations = _rows.Count;
            }

            if (iteration && iterations <= gaugeDuringIterations)
            {
                ReadGauge();
            }

            if (iteration)
            {
                _rowsRecorded.Increment();
            }
        });
        _listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            if (Is(tags, "model", model))
            {
                lock (_lock)
                {
                    _seconds.Add(value);
                }

                _secondsRecorded.Increment();
            }
        });
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (!Is(tags, "model", model))
            {
                return;
            }

            bool evaluations = instrument.Name == "genservice.network.evaluations";
            if (evaluations && !Is(tags, "family", family))
            {
                return;
            }

            lock (_lock)
            {
                (evaluations ? _evaluations : _rowsCounted).Add(value);
            }

            (evaluations ? _evaluationsRecorded : _rowsCountedRecorded).Increment();
        });
        _listener.Start();
    }

    /// <summary>genservice.{family}.iteration.rows, one value per iteration.</summary>
    public int[] Rows => Copy(_rows);

    /// <summary>genservice.{family}.iteration.seconds, one value per iteration.</summary>
    public double[] Seconds => Copy(_seconds);

    /// <summary>genservice.{family}.rows, one add per iteration.</summary>
    public long[] RowsCounted => Copy(_rowsCounted);

    /// <summary>genservice.{family}.active_requests of the model, one value per gauge read.</summary>
    public int[] Active => Copy(_active);

    /// <summary>genservice.network.evaluations of the model and family, one add per request that ended.</summary>
    public long[] Evaluations => Copy(_evaluations);

    /// <summary>Completes once <paramref name="iterations"/> iterations (every instrument of each) and <paramref name="requests"/> ended requests are recorded.</summary>
    public async Task WhenRecorded(int iterations, int requests)
    {
        await _rowsRecorded.WhenReached(iterations);
        await _secondsRecorded.WhenReached(iterations);
        await _rowsCountedRecorded.WhenReached(iterations);
        await _evaluationsRecorded.WhenReached(requests);
    }

    /// <summary>Reads the observable instruments (the active-requests gauge) now.</summary>
    public void ReadGauge() => _listener.RecordObservableInstruments();

    public void Dispose() => _listener.Dispose();

    private static bool Is(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key, string value)
    {
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            if (tag.Key == key)
            {
                return Equals(tag.Value, value);
            }
        }

        return false;
    }

    private T[] Copy<T>(List<T> values)
    {
        lock (_lock)
        {
            return [.. values];
        }
    }
}
