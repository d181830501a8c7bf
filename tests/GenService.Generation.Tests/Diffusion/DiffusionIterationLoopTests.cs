using GenService.Generation.Diffusion;
using static GenService.Generation.Tests.TestHelpers;

namespace GenService.Generation.Tests.Diffusion;

/// <summary>
/// The iteration-level loop against a scripted, row-independent denoiser: same samples as the request-level
/// loop whatever the company, one call per iteration with a timestep per row, the row cap, FIFO admission
/// (per sample, never skipping the head), and cancelled requests leaving before the next iteration.
/// </summary>
public sealed class DiffusionIterationLoopTests
{
    private static DiffusionParameters Body(ulong seed, int steps, string sampler = "ddim", int count = 1, int? label = null, double? guidance = null, double? eta = null, int intermediates = 0)
        => new()
        {
            Seed = seed,
            Steps = steps,
            Sampler = sampler,
            Count = count,
            ClassLabel = label,
            GuidanceScale = guidance,
            Eta = eta,
            ReturnIntermediates = intermediates == 0 ? null : intermediates,
        };

    /// <summary>Mixed samplers, step counts, guidance, eta and img2img at once.</summary>
    private static DiffusionParameters[] MixedBodies() =>
    [
        Body(1, 12, "ddim", count: 3, label: 0, intermediates: 2),
        Body(2, 5, "ddpm", count: 2, label: 1),
        Body(3, 9, "dpm_solver_pp", count: 1, label: 2, guidance: 3.0),
        Body(4, 7, "euler", count: 2, label: 3),
        Body(5, 4, "euler_ancestral", count: 1),
        Body(6, 10, "ddim", count: 2, label: 1, eta: 0.7),
        new DiffusionParameters { Seed = 7, Steps = 20, Count = 2, ClassLabel = 2, Init = [0.5f, -0.5f, 0.25f, -1f], Strength = 0.6 },
    ];

    /// <summary>The request-level loop's events for <paramref name="job"/> (the reference the iteration loop must match).</summary>
    private static IAsyncEnumerable<DiffusionEvent> RequestLevel(DiffusionJob job)
        => new DiffusionRequestLoop(GenerationTelemetry.None).RunAsync(job, progress: true, Ct);

    private static async Task<(List<DiffusionEvent> Events, DiffusionCompleted Done)> DrainAsync(IAsyncEnumerable<DiffusionEvent> events)
    {
        var all = new List<DiffusionEvent>();
        await foreach (DiffusionEvent e in events.WithCancellation(Ct))
        {
            all.Add(e);
        }

        return (all, Assert.IsType<DiffusionCompleted>(all[^1]));
    }

    /// <summary>
    /// Runs <paramref name="jobs"/> on the loop with a known arrival: the first alone in the first iteration, held at
    /// the gate until every other job is queued, so the second iteration admits all of them at once (as many rows as
    /// the cap allows). Without the hold, how many requests share an iteration depends on when each one arrives.
    /// </summary>
    private static async Task<(List<DiffusionEvent> Events, DiffusionCompleted Done)[]> CrowdAsync(
        ScriptedDenoiser gated, DiffusionIterationLoop loop, DiffusionJob[] jobs, Func<Task>? afterArrival = null)
    {
        Task<(List<DiffusionEvent>, DiffusionCompleted)> first = DrainAsync(loop.RunAsync(jobs[0], Ct));
        await gated.WhenEntered(1);
        Task<(List<DiffusionEvent>, DiffusionCompleted)>[] rest = [.. jobs.Skip(1).Select(j => DrainAsync(loop.RunAsync(j, Ct)))];
        Assert.Equal(jobs.Length, loop.ActiveRequests); // queued synchronously by RunAsync's first MoveNextAsync
        if (afterArrival is not null)
        {
            await afterArrival();
        }

        gated.Open();
        return await Task.WhenAll([first, .. rest]);
    }

    [Fact]
    public async Task A_crowd_of_mixed_requests_gives_each_the_samples_of_the_request_level_loop()
    {
        var alone = new ScriptedDenoiser();
        var crowd = new ScriptedDenoiser(maxBatchSize: 64, gated: true);
        using DiffusionIterationLoop loop = crowd.Loop();
        DiffusionParameters[] bodies = MixedBodies();

        List<DiffusionCompleted> expected = await AloneAsync(alone, bodies);

        DiffusionJob[] jobs = [.. bodies.Select(crowd.Job)];
        var results = await CrowdAsync(crowd, loop, jobs);

        for (int r = 0; r < bodies.Length; r++)
        {
            (List<DiffusionEvent> events, DiffusionCompleted done) = results[r];

            // One progress event per step, in order, then the result.
            int[] progress = [.. events.OfType<DiffusionStepDone>().Select(e => e.Step)];
            Assert.Equal(Enumerable.Range(1, jobs[r].StepsToRun), progress);
            Assert.Equal(expected[r].Samples.Length, done.Samples.Length);
            for (int i = 0; i < done.Samples.Length; i++)
            {
                Assert.True(MaxAbsDiff(done.Samples[i], expected[r].Samples[i]) <= 1e-6, $"request {r} sample {i}");
            }

            Assert.Equal(expected[r].Intermediates?.Sum(l => l.Count), done.Intermediates?.Sum(l => l.Count));
        }

        // Work was shared: far fewer calls than the requests' steps added up, and some call mixed timesteps. Exactly:
        // one call per iteration, the first request alone in the first, every other one from the second on.
        ScriptedDenoiser.Call[] calls = crowd.CallsSnapshot();
        int stepsSum = jobs.Sum(j => j.StepsToRun);
        Assert.True(calls.Length < stepsSum / 2, $"{calls.Length} calls for {stepsSum} request-steps");
        Assert.Equal(Math.Max(jobs[0].StepsToRun, 1 + jobs.Skip(1).Max(j => j.StepsToRun)), calls.Length);
        Assert.Equal(jobs.Sum(RowsPerIteration), calls[1].Rows);
        Assert.Contains(calls, c => c.Timesteps.Distinct().Count() > 2);
        Assert.Equal(jobs.Sum(j => j.Count * j.NetworkEvaluations), calls.Sum(c => c.Rows));
    }

    [Fact]
    public async Task On_a_denoiser_with_two_sessions_large_iterations_run_as_two_concurrent_calls_and_samples_stay_the_same()
    {
        var alone = new ScriptedDenoiser();
        var crowd = new ScriptedDenoiser(maxBatchSize: 64, gated: true) { Concurrency = 2 };
        using DiffusionIterationLoop loop = crowd.Loop();
        DiffusionParameters[] bodies = [.. MixedBodies(), .. Enumerable.Range(0, 6).Select(i => Body(20 + (ulong)i, 8, count: 5, label: i % 4, guidance: i % 2 == 0 ? 2.0 : null))];

        List<DiffusionCompleted> expected = await AloneAsync(alone, bodies);

        // The second iteration holds every request (59 rows, under the cap of 64): two parts, held at the gate
        // together, so both are inside the denoiser at once.
        DiffusionJob[] jobs = [.. bodies.Select(crowd.Job)];
        Assert.Equal(2, DiffusionIterationLoop.PartsFor(jobs.Sum(RowsPerIteration), crowd.Concurrency));
        var results = await CrowdAsync(crowd, loop, jobs, afterArrival: async () =>
        {
            crowd.Release(1);
            await crowd.WhenEntered(3);
            Assert.Equal(2, crowd.InFlight);
        });
        for (int r = 0; r < bodies.Length; r++)
        {
            DiffusionCompleted done = results[r].Done;
            Assert.Equal(Enumerable.Range(1, jobs[r].StepsToRun), results[r].Events.OfType<DiffusionStepDone>().Select(e => e.Step));
            for (int i = 0; i < done.Samples.Length; i++)
            {
                Assert.True(MaxAbsDiff(done.Samples[i], expected[r].Samples[i]) <= 1e-6, $"request {r} sample {i}");
            }
        }

        // Split iterations: two calls at once, never more than the sessions, each of at least MinRowsPerPart rows;
        // every row computed once.
        ScriptedDenoiser.Call[] calls = crowd.CallsSnapshot();
        Assert.Equal(2, crowd.MaxInFlight);
        Assert.Contains(calls, c => c.Rows >= DiffusionIterationLoop.MinRowsPerPart && c.Rows < 2 * DiffusionIterationLoop.MinRowsPerPart);
        Assert.Equal(jobs.Sum(j => j.Count * j.NetworkEvaluations), calls.Sum(c => c.Rows));
    }

    [Fact]
    public async Task A_failed_call_of_a_split_iteration_fails_its_requests_after_the_other_part_ends_and_the_loop_goes_on()
    {
        // 40 rows on two sessions: every iteration is two concurrent calls of 20 rows. The first call to enter fails
        // at once; the other is held at the gate until the failure has left the denoiser.
        var denoiser = new ScriptedDenoiser(maxBatchSize: 64, gated: true) { Concurrency = 2, FailCall = 1 };
        using DiffusionIterationLoop loop = denoiser.Loop();
        int inFlightAtError = -1;
        Task<InvalidOperationException> failing = Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            try
            {
                await DrainAsync(loop.RunAsync(denoiser.Job(Body(1, 6, count: 40, label: 2)), Ct));
            }
            finally
            {
                inFlightAtError = denoiser.InFlight;
            }
        });

        await denoiser.WhenEntered(2);                  // both parts of the first iteration
        await denoiser.WhenLeft(1);
        Assert.Equal(1, denoiser.InFlight);             // the failed part is out; the other is still held
        Assert.False(failing.IsCompleted);              // so the request has not failed yet
        denoiser.Open();
        InvalidOperationException error = await failing;

        Assert.Equal(ScriptedDenoiser.FailureMessage, error.Message);
        Assert.Equal(0, inFlightAtError); // the other part ended before the request was failed
        Assert.Equal(0, loop.ActiveRequests);

        // The loop goes on: the next request gets the samples it gets alone.
        DiffusionParameters body = Body(2, 5, count: 2, label: 1);
        List<DiffusionCompleted> expected = await AloneAsync(new ScriptedDenoiser(), [body]);
        (_, DiffusionCompleted done) = await DrainAsync(loop.RunAsync(denoiser.Job(body), Ct));
        for (int i = 0; i < 2; i++)
        {
            Assert.True(MaxAbsDiff(done.Samples[i], expected[0].Samples[i]) <= 1e-6, $"sample {i}");
        }
    }

    [Theory]
    [InlineData(64, 1, 1)]
    [InlineData(64, 2, 2)]
    [InlineData(31, 2, 1)] // two parts would leave one under MinRowsPerPart
    [InlineData(32, 2, 2)]
    [InlineData(40, 4, 2)]
    [InlineData(0, 2, 1)]
    public void An_iteration_splits_into_one_part_per_session_while_each_keeps_enough_rows(int rows, int concurrency, int parts) =>
        Assert.Equal(parts, DiffusionIterationLoop.PartsFor(rows, concurrency));

    [Fact]
    public void Slices_keep_the_batch_order_and_split_the_rows_evenly_with_guided_samples_whole()
    {
        var denoiser = new ScriptedDenoiser(maxBatchSize: 64);
        var random = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            // Random mixes of plain (1-row) and guided (2-row) samples.
            List<DiffusionSampleCursor> batch = [.. Enumerable.Range(0, random.Next(2, 40)).SelectMany(i =>
                DiffusionRequestLoop.Cursors(denoiser.Job(Body((ulong)i, 3, count: 1, label: 1, guidance: random.Next(2) == 0 ? 2.0 : null))).Samples)];
            int rows = batch.Sum(s => s.Rows);
            int parts = random.Next(1, 4);
            List<List<DiffusionSampleCursor>> slices = DiffusionIterationLoop.Slices(batch, rows, parts);

            Assert.Equal(batch, slices.SelectMany(s => s));
            Assert.All(slices, s => Assert.NotEmpty(s));
            Assert.True(slices.Count <= parts);
            int[] sliceRows = [.. slices.Select(s => s.Sum(c => c.Rows))];
            Assert.True(sliceRows.Max() - sliceRows.Min() <= 2 || slices.Count < parts, $"rows {string.Join('/', sliceRows)} of {rows} in {parts} parts");
        }
    }

    [Fact]
    public async Task Rows_per_iteration_stay_under_the_cap_and_admission_is_fifo_per_sample()
    {
        var denoiser = new ScriptedDenoiser(maxBatchSize: 64, gated: true);
        using DiffusionIterationLoop loop = denoiser.Loop(maxRows: 4);

        // A holds 3 of 4 rows for 20 steps; B (3 samples) is admitted one sample at a time as rows free up;
        // C (1 sample) fits beside A at once but must not overtake B, the head of the queue. A's first iteration is
        // held until B and C are queued, so every call is known: A alone, then one B sample beside A per 5 calls.
        DiffusionJob a = denoiser.Job(Body(1, 20, count: 3, label: 0));
        DiffusionJob b = denoiser.Job(Body(2, 5, count: 3, label: 1));
        DiffusionJob c = denoiser.Job(Body(3, 5, count: 1, label: 2));
        Task<(List<DiffusionEvent>, DiffusionCompleted)> ta = DrainAsync(loop.RunAsync(a, Ct));
        await denoiser.WhenEntered(1);
        Task<(List<DiffusionEvent>, DiffusionCompleted)> tb = DrainAsync(loop.RunAsync(b, Ct));
        Task<(List<DiffusionEvent>, DiffusionCompleted)> tc = DrainAsync(loop.RunAsync(c, Ct));
        Assert.Equal(3, loop.ActiveRequests);
        denoiser.Open();
        await Task.WhenAll(ta, tb, tc);

        ScriptedDenoiser.Call[] calls = denoiser.CallsSnapshot();
        Assert.All(calls, call => Assert.True(call.Rows <= 4, $"{call.Rows} rows"));

        // A sample is admitted where its first timestep appears with its request's label.
        long bFirst = (long)Math.Round(b.Sampler.Timesteps[0]);
        int[] bAdmitted = [.. calls.Select((call, k) => (call, k)).SelectMany(p => Enumerable.Range(0, p.call.Rows)
            .Where(r => p.call.Labels[r] == 1 && p.call.Timesteps[r] == bFirst).Select(_ => p.k))];
        int cAdmitted = Array.FindIndex(calls, call => call.Labels.Contains(2));
        int aLast = Array.FindLastIndex(calls, call => call.Labels.Contains(0));
        Assert.Equal(3, bAdmitted.Length);
        Assert.True(bAdmitted[0] < bAdmitted[1] && bAdmitted[1] < bAdmitted[2], "B admitted one sample at a time");
        Assert.True(bAdmitted[2] < aLast, "B's last sample joined while A still ran (partial admission)");
        Assert.True(cAdmitted > bAdmitted[2], $"C (call {cAdmitted}) overtook B's last sample (call {bAdmitted[2]})");

        // Exactly: B's samples join at calls 1, 6 and 11 (each as the one before finishes its 5 steps), C at 16 when
        // B's last one finishes; A runs calls 0..19 and C alone the last one.
        Assert.Equal([1, 6, 11], bAdmitted);
        Assert.Equal(16, cAdmitted);
        Assert.Equal(19, aLast);
        Assert.Equal(21, calls.Length);
        Assert.Equal([3, .. Enumerable.Repeat(4, 19), 1], calls.Select(call => call.Rows));

        // Partial admission does not change B's samples.
        var alone = new ScriptedDenoiser();
        DiffusionCompleted bAlone = (await DrainAsync(RequestLevel(alone.Job(Body(2, 5, count: 3, label: 1))))).Done;
        DiffusionCompleted bCrowd = (await tb).Item2;
        for (int i = 0; i < 3; i++)
        {
            Assert.True(MaxAbsDiff(bCrowd.Samples[i], bAlone.Samples[i]) <= 1e-6);
        }
    }

    [Fact]
    public async Task A_cancelled_request_stops_being_computed_at_the_next_iteration()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = denoiser.Loop();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        DiffusionJob x = denoiser.Job(Body(1, 100, count: 2, label: 3));
        DiffusionJob y = denoiser.Job(Body(2, 30, count: 1, label: 1));
        IAsyncEnumerator<DiffusionEvent> xEvents = loop.RunAsync(x, cts.Token).GetAsyncEnumerator(cts.Token);
        ValueTask<bool> first = xEvents.MoveNextAsync();
        Task<(List<DiffusionEvent>, DiffusionCompleted)> ty = DrainAsync(loop.RunAsync(y, Ct));

        // Let X run three steps, then the client goes away while the fourth iteration (with X's rows) is in the
        // denoiser, held at the gate.
        denoiser.Release(3);
        Assert.True(await first);
        Assert.True(await xEvents.MoveNextAsync());
        Assert.True(await xEvents.MoveNextAsync());
        await denoiser.WhenEntered(4);
        await cts.CancelAsync();
        int callsAtCancel = denoiser.CallsSnapshot().Length;
        Assert.Equal(3, callsAtCancel);
        denoiser.Open();
        await ty;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            while (await xEvents.MoveNextAsync())
            {
            }
        });
        await xEvents.DisposeAsync();

        // At most the iteration already under way when the cancel came carried X's rows (label 3): here exactly that
        // one (call index 3), so X computed 4 steps of 2 rows, and Y all of its 30.
        ScriptedDenoiser.Call[] calls = denoiser.CallsSnapshot();
        int lastWithX = Array.FindLastIndex(calls, call => call.Labels.Contains(3));
        Assert.Equal(callsAtCancel, lastWithX);
        Assert.Equal((2 * 4) + 30, denoiser.RowsComputed); // X's remaining steps were not computed
        Assert.Equal(0, loop.ActiveRequests);
    }

    [Fact]
    public async Task A_consumer_that_stops_reading_leaves_the_loop()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = denoiser.Loop();
        denoiser.Release(2);
        await foreach (DiffusionEvent e in loop.RunAsync(denoiser.Job(Body(1, 200, count: 1, label: 0)), Ct))
        {
            Assert.IsType<DiffusionStepDone>(e);
            await denoiser.WhenEntered(3);
            break;
        }

        // Leaving the enumeration ends the request at once: two steps were let through, and the third was already
        // inside the denoiser (held at the gate) when the reader left; nothing after it is computed.
        Assert.Equal(0, loop.ActiveRequests);
        denoiser.Open();

        // A later request (label 1) runs to its end: by then the loop has passed the iteration after the held one,
        // where it dropped the reader's sample.
        await DrainAsync(loop.RunAsync(denoiser.Job(Body(2, 4, count: 1, label: 1)), Ct));
        ScriptedDenoiser.Call[] calls = denoiser.CallsSnapshot();
        Assert.Equal(3, calls.Count(call => call.Labels.Contains(0L)));
        Assert.Equal(3 + 4, denoiser.RowsComputed); // the reader's 3 rows, then the later request's 4
        Assert.Equal(3 + 4, denoiser.Entered);
    }

    [Fact]
    public async Task A_guided_sample_runs_even_when_the_cap_is_one_row()
    {
        var denoiser = new ScriptedDenoiser(maxBatchSize: 1);
        using DiffusionIterationLoop loop = denoiser.Loop();
        (_, DiffusionCompleted done) = await DrainAsync(loop.RunAsync(denoiser.Job(Body(9, 6, count: 2, label: 2, guidance: 2.5)), Ct));
        var alone = new ScriptedDenoiser();
        DiffusionCompleted expected = (await DrainAsync(RequestLevel(alone.Job(Body(9, 6, count: 2, label: 2, guidance: 2.5))))).Done;
        Assert.True(MaxAbsDiff(done.Samples[1], expected.Samples[1]) <= 1e-6);

        // Guided: each call holds one sample's null-class row (label 4) and then its conditional row, the order of
        // diffusers' guidance batch.
        Assert.All(denoiser.CallsSnapshot(), call => Assert.Equal([4L, 2L], call.Labels));
    }

    [Fact]
    public async Task Too_many_waiting_samples_are_refused_with_queue_full()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = denoiser.Loop(maxRows: 1, maxQueuedSamples: 3);
        IAsyncEnumerator<DiffusionEvent> head = loop.RunAsync(denoiser.Job(Body(1, 5, count: 1, label: 0)), Ct).GetAsyncEnumerator(Ct);
        ValueTask<bool> pending = head.MoveNextAsync();
        await denoiser.WhenEntered(1); // the head is admitted: nothing waits
        IAsyncEnumerator<DiffusionEvent> waiting = loop.RunAsync(denoiser.Job(Body(2, 5, count: 3, label: 0)), Ct).GetAsyncEnumerator(Ct);
        ValueTask<bool> waitingFirst = waiting.MoveNextAsync();
        Assert.Equal(2, loop.ActiveRequests);
        await Assert.ThrowsAsync<GenService.Inference.QueueFullException>(async () =>
        {
            await foreach (DiffusionEvent _ in loop.RunAsync(denoiser.Job(Body(3, 5, count: 1, label: 0)), Ct))
            {
            }
        });
        denoiser.Open();
        Assert.True(await pending);
        Assert.True(await waitingFirst);
        await head.DisposeAsync();
        await waiting.DisposeAsync();
    }

    [Fact]
    public async Task Iterations_ask_the_batcher_to_dispatch_at_once_and_request_level_steps_do_not()
    {
        // An iteration is a batch already: waiting max_queue_delay_ms in the batcher for company would only add
        // latency. Request-level steps must wait, so that concurrent requests' steps can merge.
        var denoiser = new ScriptedDenoiser(maxBatchSize: 8);
        using DiffusionIterationLoop loop = denoiser.Loop();
        await DrainAsync(loop.RunAsync(denoiser.Job(Body(4, 5, count: 3)), Ct));
        await DrainAsync(RequestLevel(denoiser.Job(Body(4, 5, count: 2))));
        bool[] flags = [.. denoiser.CallsSnapshot().Select(c => c.DispatchImmediately)];
        Assert.Equal(10, flags.Length);
        Assert.All(flags[..5], Assert.True);
        Assert.All(flags[5..], Assert.False);
    }

    /// <summary>Rows a job takes in every iteration it runs in (a guided sample takes two).</summary>
    private static int RowsPerIteration(DiffusionJob job) => DiffusionRequestLoop.Cursors(job).Samples.Sum(s => s.Rows);

    /// <summary>Each body's result from the request-level loop, one request at a time (the reference).</summary>
    private static async Task<List<DiffusionCompleted>> AloneAsync(ScriptedDenoiser alone, IEnumerable<DiffusionParameters> bodies)
    {
        var results = new List<DiffusionCompleted>();
        foreach (DiffusionParameters b in bodies)
        {
            results.Add((await DrainAsync(RequestLevel(alone.Job(b)))).Done);
        }

        return results;
    }
}
