using System.Diagnostics.Metrics;
using GenService.Generation.Diffusion;
using GenService.Inference;
using GenService.Inference.Metrics;
using GenService.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using static GenService.Generation.Tests.TestHelpers;

namespace GenService.Generation.Tests.Diffusion;

/// <summary>
/// One loop per model version (denoiser runner); a closed version's loop stops and is forgotten; the configured
/// mode picks the loop once.
/// </summary>
public sealed class DiffusionLoopRegistryTests
{
    private static DiffusionLoopRegistry Registry() =>
        new(Options.Create(new DiffusionLoopOptions()), meterFactory: null, GenerationTelemetry.None, TimeProvider.System, NullLoggerFactory.Instance);

    /// <summary>The <see cref="IDiffusionLoop"/> that <c>AddGeneration()</c> registers for <paramref name="settings"/>.</summary>
    internal static (IDiffusionLoop Loop, ServiceProvider Services) Configured(params (string Key, string Value)[] settings)
    {
        IConfiguration config = new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => KeyValuePair.Create(s.Key, (string?)s.Value))).Build();
        ServiceProvider services = new ServiceCollection().AddSingleton(config).AddLogging().AddGeneration().BuildServiceProvider();
        return (services.GetRequiredService<IDiffusionLoop>(), services);
    }

    private static DiffusionParameters Body(int steps) => new() { Seed = 1, Steps = steps, ClassLabel = 1 };

    [Fact]
    public async Task Each_model_version_gets_its_own_loop_and_a_closed_version_is_forgotten()
    {
        using DiffusionLoopRegistry registry = Registry();
        var v1 = new ScriptedDenoiser();
        var v2 = new ScriptedDenoiser();
        DiffusionJob a = v1.Job(Body(5));
        Assert.Same(registry.For(a), registry.For(v1.Job(Body(3))));
        Assert.NotSame(registry.For(a), registry.For(v2.Job(Body(3))));
        await foreach (DiffusionEvent _ in registry.RunAsync(a, progress: true, Ct))
        {
        }

        // v1 is unloaded: its runner refuses work. The request fails with 503's exception and the loop is dropped. The
        // loop fails its requests first and then tells the registry: the test awaits that, not the request's failure.
        DiffusionIterationLoop v1Loop = registry.For(a);
        v1.Closed = true;
        await Assert.ThrowsAsync<ModelNotReadyException>(async () =>
        {
            await foreach (DiffusionEvent _ in registry.RunAsync(v1.Job(Body(5)), progress: true, Ct))
            {
            }
        });
        await v1Loop.WhenClosed.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.DoesNotContain(registry.Loops, s => ReferenceEquals(s.Denoiser, v1));
        Assert.Contains(registry.Loops, s => ReferenceEquals(s.Denoiser, v2));
    }

    [Fact]
    public async Task Request_mode_runs_the_request_level_loop_one_call_per_step()
    {
        (IDiffusionLoop loop, ServiceProvider services) = Configured(("GenService:Diffusion:Scheduling", "request"));
        await using ServiceProvider _ = services;
        Assert.IsType<DiffusionRequestLoop>(loop);
        var denoiser = new ScriptedDenoiser();
        int steps = 0;
        await foreach (DiffusionEvent e in loop.RunAsync(denoiser.Job(new DiffusionParameters { Seed = 2, Steps = 7, Count = 3, ClassLabel = 0 }), progress: true, Ct))
        {
            steps += e is DiffusionStepDone ? 1 : 0;
        }

        Assert.Equal(7, steps);
        Assert.All(denoiser.CallsSnapshot(), c => Assert.Equal(3, c.Rows));
        Assert.Equal(7, denoiser.CallsSnapshot().Length);
    }

    [Fact]
    public async Task Iteration_mode_is_the_default_and_runs_the_per_denoiser_loops()
    {
        (IDiffusionLoop loop, ServiceProvider services) = Configured();
        await using ServiceProvider _ = services;
        DiffusionLoopRegistry registry = Assert.IsType<DiffusionLoopRegistry>(loop);
        var denoiser = new ScriptedDenoiser();
        await foreach (DiffusionEvent e in loop.RunAsync(denoiser.Job(new DiffusionParameters { Seed = 2, Steps = 7, Count = 3, ClassLabel = 0 }), progress: false, Ct))
        {
            Assert.IsType<DiffusionCompleted>(e); // no progress events were asked for
        }

        Assert.Same(denoiser, Assert.Single(registry.Loops).Denoiser);
        Assert.All(denoiser.CallsSnapshot(), c => Assert.True(c.DispatchImmediately));
    }

    [Fact]
    public async Task The_loops_report_each_iterations_rows_and_time_on_their_clock_and_each_requests_evaluations()
    {
        // The registry's metrics on a meter of the test's own and a fake clock; the denoiser holds each call while the
        // test reads the gauge and moves the clock k ms for iteration k, so every value is known.
        var time = new FakeTimeProvider();
        await using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        IMeterFactory meters = services.GetRequiredService<IMeterFactory>();
        var denoiser = new ScriptedDenoiser(gated: true);
        using var metrics = new LoopMetricsRecorder(meters, "diffusion", denoiser.ModelName);
        var telemetry = new GenerationTelemetry(new GenServiceMetrics(meters), NullLogger<GenerationTelemetry>.Instance);
        using var registry = new DiffusionLoopRegistry(Options.Create(new DiffusionLoopOptions()), meters, telemetry, time, NullLoggerFactory.Instance);

        // Three guided samples (a conditional and a null-class row each) for 4 steps: 6 rows per iteration.
        DiffusionJob job = denoiser.Job(new DiffusionParameters { Seed = 3, Steps = 4, Count = 3, ClassLabel = 1, GuidanceScale = 2.0 });
        Task run = Task.Run(async () =>
        {
            await foreach (DiffusionEvent _ in registry.RunAsync(job, progress: false, Ct))
            {
            }
        }, Ct);
        for (int k = 1; k <= 4; k++)
        {
            await denoiser.WhenEntered(k);
            metrics.ReadGauge();                          // the request is in flight: its call is held
            time.Advance(TimeSpan.FromMilliseconds(k));
            denoiser.Release(1);
        }

        await run;
        await metrics.WhenRecorded(iterations: 4, requests: 1);
        Assert.Equal([6, 6, 6, 6], metrics.Rows);
        Assert.Equal([6L, 6, 6, 6], metrics.RowsCounted);
        Assert.Equal([.. Enumerable.Range(1, 4).Select(k => TimeSpan.FromMilliseconds(k).TotalSeconds)], metrics.Seconds);
        Assert.Equal([1, 1, 1, 1], metrics.Active);
        Assert.Equal([(long)job.Count * job.NetworkEvaluations], metrics.Evaluations);
        Assert.Equal([3L * 4 * 2], metrics.Evaluations);
    }
}
