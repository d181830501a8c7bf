using GenService.Generation.Diffusion;
using GenService.Inference;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
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
}
