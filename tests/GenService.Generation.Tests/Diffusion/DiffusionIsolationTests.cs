using GenService.Generation.Diffusion;
using GenService.Inference;
using static GenService.Generation.Tests.TestHelpers;

namespace GenService.Generation.Tests.Diffusion;

/// <summary>
/// A poison sample in a running iteration (Loops/IterationIsolation.cs): the failed call is re-run per request, the
/// request that fails alone ends with a 400-class <see cref="InputNotComputableException"/>, and the others continue in
/// the same iteration with the samples they get alone. The denoiser fails any call holding class 3 (a valid label to
/// the job, poison to this denoiser). A one-step primer holds the first iteration at the gate until the others are
/// queued, so they all share the second iteration.
/// </summary>
public sealed class DiffusionIsolationTests
{
    private const int Poison = 3;

    private static DiffusionParameters Body(ulong seed, int steps, int count = 1, int? label = null, double? guidance = null)
        => new() { Seed = seed, Steps = steps, Sampler = "ddim", Count = count, ClassLabel = label, GuidanceScale = guidance };

    [Fact]
    public async Task A_poison_sample_ends_its_request_alone_and_the_others_finish_with_the_samples_they_get_alone()
    {
        DiffusionParameters a = Body(11, 6, count: 2, label: 0);
        DiffusionParameters c = Body(13, 5, count: 1, label: 1, guidance: 2.0);
        List<DiffusionCompleted> expected = await AloneAsync([a, c]);

        var denoiser = new ScriptedDenoiser(maxBatchSize: 64, gated: true) { PoisonLabel = Poison };
        using DiffusionIterationLoop loop = denoiser.Loop();
        (Task<DiffusionCompleted>[] innocent, Task<DiffusionCompleted>[] poisoned) = await CrowdAsync(denoiser, loop, [a, c], [Body(12, 4, label: Poison)]);

        DiffusionCompleted[] done = await Task.WhenAll(innocent).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        for (int r = 0; r < done.Length; r++)
        {
            Assert.Equal(expected[r].Samples.Length, done[r].Samples.Length);
            for (int i = 0; i < done[r].Samples.Length; i++)
            {
                Assert.True(MaxAbsDiff(done[r].Samples[i], expected[r].Samples[i]) <= 1e-6, $"request {r} sample {i}");
            }
        }

        InputNotComputableException blamed = await Assert.ThrowsAsync<InputNotComputableException>(() => poisoned[0].WaitAsync(TimeSpan.FromSeconds(30), Ct));
        Assert.Contains(ScriptedDenoiser.PoisonMessage, blamed.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", blamed.Message, StringComparison.Ordinal);

        // The merged call and the offender's own re-run failed; nothing with the poison label was ever computed, and the
        // others' re-runs in the failed iteration were their only extra calls.
        Assert.Equal(2, denoiser.PoisonedCalls);
        Assert.DoesNotContain(denoiser.CallsSnapshot(), call => call.Labels.Contains(Poison));
        Assert.Equal(0, loop.ActiveRequests);
    }

    [Fact]
    public async Task When_every_request_of_the_call_fails_alone_each_keeps_the_original_error_and_the_loop_goes_on()
    {
        var denoiser = new ScriptedDenoiser(maxBatchSize: 64, gated: true) { PoisonLabel = Poison };
        using DiffusionIterationLoop loop = denoiser.Loop();
        (_, Task<DiffusionCompleted>[] poisoned) = await CrowdAsync(denoiser, loop, [], [Body(21, 4, label: Poison), Body(22, 3, count: 2, label: Poison)]);

        foreach (Task<DiffusionCompleted> p in poisoned)
        {
            // Not a 400: nothing in the call computed, so nothing shows that the input rather than the model is at fault.
            InvalidOperationException e = await Assert.ThrowsAsync<InvalidOperationException>(() => p.WaitAsync(TimeSpan.FromSeconds(30), Ct));
            Assert.StartsWith(ScriptedDenoiser.PoisonMessage, e.Message, StringComparison.Ordinal);
        }

        Assert.Equal(1 + 2, denoiser.PoisonedCalls); // the merged call, then one re-run per request
        DiffusionParameters next = Body(23, 3, label: 2);
        List<DiffusionCompleted> expected = await AloneAsync([next]);
        DiffusionCompleted done = await DrainAsync(loop.RunAsync(denoiser.Job(next), Ct));
        Assert.True(MaxAbsDiff(done.Samples[0], expected[0].Samples[0]) <= 1e-6);
    }

    /// <summary>
    /// A one-step primer alone in the first iteration, held at the gate until <paramref name="innocent"/> and
    /// <paramref name="poisoned"/> are queued: they then all share the second iteration.
    /// </summary>
    private static async Task<(Task<DiffusionCompleted>[] Innocent, Task<DiffusionCompleted>[] Poisoned)> CrowdAsync(
        ScriptedDenoiser denoiser, DiffusionIterationLoop loop, DiffusionParameters[] innocent, DiffusionParameters[] poisoned)
    {
        Task<DiffusionCompleted> primer = DrainAsync(loop.RunAsync(denoiser.Job(Body(1, 1, label: 0)), Ct));
        await denoiser.WhenEntered(1);
        Task<DiffusionCompleted>[] good = [.. innocent.Select(b => DrainAsync(loop.RunAsync(denoiser.Job(b), Ct)))];
        Task<DiffusionCompleted>[] bad = [.. poisoned.Select(b => DrainAsync(loop.RunAsync(denoiser.Job(b), Ct)))];
        Assert.Equal(1 + innocent.Length + poisoned.Length, loop.ActiveRequests);
        denoiser.Open();
        await primer.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        return (good, bad);
    }

    private static async Task<DiffusionCompleted> DrainAsync(IAsyncEnumerable<DiffusionEvent> events)
    {
        DiffusionEvent? last = null;
        await foreach (DiffusionEvent e in events.WithCancellation(Ct))
        {
            last = e;
        }

        return Assert.IsType<DiffusionCompleted>(last);
    }

    /// <summary>Each body's result from the request-level loop on a denoiser of its own (the reference).</summary>
    private static async Task<List<DiffusionCompleted>> AloneAsync(IEnumerable<DiffusionParameters> bodies)
    {
        var alone = new ScriptedDenoiser();
        var results = new List<DiffusionCompleted>();
        foreach (DiffusionParameters b in bodies)
        {
            results.Add(await DrainAsync(new DiffusionRequestLoop(GenerationTelemetry.None).RunAsync(alone.Job(b), progress: true, Ct)));
        }

        return results;
    }
}
