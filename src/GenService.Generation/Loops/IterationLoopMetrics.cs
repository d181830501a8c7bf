using System.Diagnostics.Metrics;
using GenService.Inference.Metrics;

namespace GenService.Generation.Loops;

/// <summary>
/// Instruments of an iteration-level loop family (<c>diffusion</c> or <c>ar</c>), on the service's "GenService"
/// Meter (so the Prometheus bridge exports them): rows per iteration, iteration time, active requests, rows in all.
/// <code>
///   genservice.{family}.iteration.rows      histogram  rows in one iteration's graph call(s)
///   genservice.{family}.iteration.seconds   histogram  wall time of one iteration (pack, call, advance)
///   genservice.{family}.active_requests     gauge      requests admitted or waiting, per model
///   genservice.{family}.waiting_items       gauge      samples / sequences waiting for admission, per model (backlog)
///   genservice.{family}.rows                counter    rows computed
///   genservice.{family}.isolated            counter    requests an iteration failed on alone (400), the others going on
/// </code>
/// </summary>
internal sealed class IterationLoopMetrics
{
    private readonly Histogram<int> _rows;
    private readonly Histogram<double> _seconds;
    private readonly Counter<long> _rowsTotal;
    private readonly Counter<long> _isolated;

    /// <param name="meterFactory">The host's factory (the Prometheus bridge exports only its "GenService" Meter).</param>
    /// <param name="family">diffusion or ar: the middle of every instrument name.</param>
    /// <param name="rowMeaning">What a row is, for the descriptions ("Denoiser rows", "Decoder rows").</param>
    /// <param name="observeActive">Active requests per model, read when a collector scrapes.</param>
    /// <param name="observeWaiting">Items waiting for admission per model, read when a collector scrapes.</param>
    public IterationLoopMetrics(IMeterFactory meterFactory, string family, string rowMeaning, Func<IEnumerable<Measurement<int>>> observeActive, Func<IEnumerable<Measurement<int>>> observeWaiting)
    {
        Meter meter = meterFactory.Create(GenServiceMetrics.MeterName);
        string prefix = "genservice." + family;
        _rows = meter.CreateHistogram<int>(prefix + ".iteration.rows", "{row}", $"{rowMeaning} in one iteration of the {family} loop.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] });

        // No unit on purpose: the Prometheus bridge appends "_seconds" to unit "s", and the name already says it.
        _seconds = meter.CreateHistogram<double>(prefix + ".iteration.seconds", null, $"Wall time of one iteration of the {family} loop (pack, graph call, advance), seconds.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] });
        meter.CreateObservableGauge(prefix + ".active_requests", observeActive, "{request}", $"Requests in a {family} loop (admitted or waiting for admission).");
        meter.CreateObservableGauge(prefix + ".waiting_items", observeWaiting, "{item}", $"Items waiting for admission to a {family} loop (its backlog: diffusion samples, AR sequences).");
        _rowsTotal = meter.CreateCounter<long>(prefix + ".rows", "{row}", $"{rowMeaning} computed by the {family} loop.");
        _isolated = meter.CreateCounter<long>(prefix + ".isolated", "{request}", $"Requests a {family} loop iteration failed on alone (a 400: the model could not compute their input) while the others continued.");
    }

    public void RecordIteration(string model, int rows, double seconds)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _rows.Record(rows, tag);
        _seconds.Record(seconds, tag);
        _rowsTotal.Add(rows, tag);
    }

    /// <summary>Counts one request an iteration failed on alone (<see cref="IterationIsolation"/>).</summary>
    public void RecordIsolated(string model) => _isolated.Add(1, new KeyValuePair<string, object?>("model", model));
}
