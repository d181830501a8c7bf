using GenService.Api.Families.Diffusion;
using GenService.Inference;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SchedulingMode = GenService.Api.Families.Common.SchedulingMode;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families.DiffusionScheduling;

/// <summary>One scheduler per model version (denoiser runner); a closed version's loop stops and is forgotten.</summary>
public sealed class DiffusionSchedulerRegistryTests
{
    private static DiffusionSchedulerRegistry Registry(SchedulingMode mode = SchedulingMode.Iteration) =>
        new(Options.Create(new DiffusionSchedulingOptions { Scheduling = mode }), meterFactory: null, TimeProvider.System, NullLoggerFactory.Instance);

    private static DiffusionSampleRequest Body(int steps) => new() { Seed = 1, Steps = steps, ClassLabel = 1 };

    [Fact]
    public async Task Each_model_version_gets_its_own_loop_and_a_closed_version_is_forgotten()
    {
        using DiffusionSchedulerRegistry registry = Registry();
        var v1 = new ScriptedDenoiser();
        var v2 = new ScriptedDenoiser();
        DiffusionJob a = v1.Job(Body(5));
        Assert.Same(registry.For(a), registry.For(v1.Job(Body(3))));
        Assert.NotSame(registry.For(a), registry.For(v2.Job(Body(3))));
        await foreach (DiffusionEvent _ in registry.RunAsync(a, Ct))
        {
        }

        // v1 is unloaded: its runner refuses work. The request fails with 503's exception and the loop is dropped.
        v1.Closed = true;
        await Assert.ThrowsAsync<ModelNotReadyException>(async () =>
        {
            await foreach (DiffusionEvent _ in registry.RunAsync(v1.Job(Body(5)), Ct))
            {
            }
        });
        Assert.DoesNotContain(registry.Schedulers, s => ReferenceEquals(s.Denoiser, v1));
        Assert.Contains(registry.Schedulers, s => ReferenceEquals(s.Denoiser, v2));
    }

    [Fact]
    public async Task Request_mode_runs_the_request_level_loop_one_call_per_step()
    {
        using DiffusionSchedulerRegistry registry = Registry(SchedulingMode.Request);
        var denoiser = new ScriptedDenoiser();
        int steps = 0;
        await foreach (DiffusionEvent e in registry.RunAsync(denoiser.Job(new DiffusionSampleRequest { Seed = 2, Steps = 7, Count = 3, ClassLabel = 0 }), Ct, progress: false))
        {
            steps += e is DiffusionStepDone ? 1 : 0;
        }

        Assert.Equal(7, steps);
        Assert.Empty(registry.Schedulers);
        Assert.All(denoiser.CallsSnapshot(), c => Assert.Equal(3, c.Rows));
        Assert.Equal(7, denoiser.CallsSnapshot().Length);
    }
}
