using System.Diagnostics.Metrics;
using GenService.Inference.Runtime;
using Microsoft.Extensions.Logging;

namespace GenService.Generation.Loops;

/// <summary>
/// The iteration-level side of a family's loop seam: one <typeparamref name="TLoop"/> per graph runner, i.e. per
/// loaded model version, created on first use. A reloaded model brings a new runner and so a new loop, while requests
/// already on the old version finish there; the table holds runners weakly, so an unloaded version and its (idle)
/// loop can be collected. Disposing stops every loop: their requests fail as "model not ready".
/// </summary>
internal abstract class LoopRegistry<TLoop> : IDisposable
    where TLoop : class, IIterationLoop
{
    private readonly LoopTable<TLoop> _loops = new();

    /// <param name="family">diffusion or ar: the middle of the loop metrics' names.</param>
    /// <param name="rowMeaning">What a row is, for the metrics' descriptions ("Denoiser rows").</param>
    /// <param name="meterFactory">The host's meters; null for no loop metrics.</param>
    /// <param name="telemetry">Network evaluations and completion logs.</param>
    /// <param name="time">The loops' clock.</param>
    /// <param name="loggerFactory">The loops' loggers.</param>
    protected LoopRegistry(string family, string rowMeaning, IMeterFactory? meterFactory, GenerationTelemetry telemetry, TimeProvider time, ILoggerFactory loggerFactory)
    {
        Metrics = meterFactory is null ? null : new IterationLoopMetrics(meterFactory, family, rowMeaning, _loops.ObserveActive, _loops.ObserveWaiting);
        Telemetry = telemetry;
        Time = time;
        LoggerFactory = loggerFactory;
    }

    public LoopMode Mode => LoopMode.Iteration;

    /// <summary>Loops alive now (tests, metrics).</summary>
    public IReadOnlyList<TLoop> Loops => _loops.All;

    protected IterationLoopMetrics? Metrics { get; }

    protected GenerationTelemetry Telemetry { get; }

    protected TimeProvider Time { get; }

    protected ILoggerFactory LoggerFactory { get; }

    /// <summary>The loop of <paramref name="graph"/>; <paramref name="create"/> makes it, given the callback for when it closes.</summary>
    protected TLoop LoopOf(IGraphRunner graph, Func<Action<TLoop>, TLoop> create) => _loops.GetOrCreate(graph, create);

    public void Dispose() => _loops.Dispose();
}
