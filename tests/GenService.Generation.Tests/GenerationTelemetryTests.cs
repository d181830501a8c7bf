using System.Diagnostics.Metrics;
using GenService.Generation.Diffusion;
using GenService.Generation.Tests.Diffusion;
using GenService.Inference.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using static GenService.Generation.Tests.TestHelpers;

namespace GenService.Generation.Tests;

/// <summary>
/// Both diffusion loops record a request's network evaluations when it ends, completed or not: a request whose reader
/// leaves after three steps counts exactly the rows of those three steps, whichever loop ran it.
/// </summary>
public sealed class GenerationTelemetryTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MeterListener _listener = new();
    private long _evaluations;

    public GenerationTelemetryTests()
    {
        IMeterFactory meters = _services.GetRequiredService<IMeterFactory>();
        Telemetry = new GenerationTelemetry(new GenServiceMetrics(meters), NullLogger<GenerationTelemetry>.Instance);
        _listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name == "genservice.network.evaluations")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _evaluations, value));
        _listener.Start();
    }

    private GenerationTelemetry Telemetry { get; }

    private long Evaluations => Interlocked.Read(ref _evaluations);

    public void Dispose()
    {
        _listener.Dispose();
        _services.Dispose();
    }

    /// <summary>2 guided samples: 4 denoiser rows per step.</summary>
    private static DiffusionParameters Guided(int steps) => new() { Seed = 3, Steps = steps, Count = 2, ClassLabel = 1, GuidanceScale = 2 };

    /// <summary>Reads three step events with three calls let through, leaves, then lets the call in flight finish.</summary>
    private static async Task LeaveAfterThreeStepsAsync(IAsyncEnumerable<DiffusionEvent> events, ScriptedDenoiser denoiser)
    {
        denoiser.Release(3);
        int steps = 0;
        await foreach (DiffusionEvent e in events)
        {
            Assert.IsType<DiffusionStepDone>(e);
            if (++steps == 3)
            {
                break; // the reader leaves; the loop may have a fourth call waiting at the gate
            }
        }

        denoiser.Release(1000);
    }

    [Fact]
    public async Task The_iteration_loop_counts_what_a_request_computed_before_its_reader_left()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        using var loop = new DiffusionIterationLoop(denoiser, denoiser.Manifest, 0, 4096, null, Telemetry, TimeProvider.System, NullLogger.Instance);
        await LeaveAfterThreeStepsAsync(loop.RunAsync(denoiser.Job(Guided(50)), Ct), denoiser);
        Assert.Equal(3 * 4, Evaluations);

        // A completed request counts count x nfe.
        DiffusionJob job = denoiser.Job(Guided(5));
        await foreach (DiffusionEvent _ in loop.RunAsync(job, Ct, progress: false))
        {
        }

        Assert.Equal((3 * 4) + (job.Count * job.NetworkEvaluations), Evaluations);
    }

    [Fact]
    public async Task The_request_level_loop_counts_what_a_request_computed_before_its_reader_left()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        var loop = new DiffusionRequestLoop(Telemetry);
        await LeaveAfterThreeStepsAsync(loop.RunAsync(denoiser.Job(Guided(50)), progress: true, Ct), denoiser);
        Assert.Equal(3 * 4, Evaluations);

        DiffusionJob job = denoiser.Job(Guided(5));
        await foreach (DiffusionEvent _ in loop.RunAsync(job, progress: false, Ct))
        {
        }

        Assert.Equal((3 * 4) + (job.Count * job.NetworkEvaluations), Evaluations);
    }
}
