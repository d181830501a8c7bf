using System.Diagnostics.Metrics;
using GenService.Inference.Metrics;

namespace GenService.Api.Families.Diffusion;

/// <summary>
/// Instruments of the iteration-level diffusion scheduler, on the service's "GenService" Meter (so the Prometheus
/// bridge exports them): rows per iteration, iteration time, active requests, and rows computed in all.
/// </summary>
internal sealed class DiffusionSchedulerMetrics
{
    private readonly Histogram<int> _rows;
    private readonly Histogram<double> _seconds;
    private readonly Counter<long> _rowsTotal;

    /// <param name="meterFactory">The host's factory (the Prometheus bridge exports only its "GenService" Meter).</param>
    /// <param name="observeActive">Active requests per model, read when a collector scrapes.</param>
    public DiffusionSchedulerMetrics(IMeterFactory meterFactory, Func<IEnumerable<Measurement<int>>> observeActive)
    {
        Meter meter = meterFactory.Create(GenServiceMetrics.MeterName);
        _rows = meter.CreateHistogram<int>("genservice.diffusion.iteration.rows", "{row}", "Denoiser rows in one iteration of the diffusion scheduler.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] });

        // No unit on purpose: the Prometheus bridge appends "_seconds" to unit "s", and the name already says it.
        _seconds = meter.CreateHistogram<double>("genservice.diffusion.iteration.seconds", null, "Wall time of one scheduler iteration (build, denoiser call, sampler steps), seconds.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] });
        meter.CreateObservableGauge("genservice.diffusion.active_requests", observeActive, "{request}", "Diffusion requests in a scheduler (admitted or waiting for admission).");
        _rowsTotal = meter.CreateCounter<long>("genservice.diffusion.rows", "{row}", "Denoiser rows computed by the diffusion scheduler.");
    }

    public void RecordIteration(string model, int rows, double seconds)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _rows.Record(rows, tag);
        _seconds.Record(seconds, tag);
        _rowsTotal.Add(rows, tag);
    }
}
