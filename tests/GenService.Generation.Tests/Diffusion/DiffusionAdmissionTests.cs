using System.Diagnostics.Metrics;
using GenService.Generation.Diffusion;
using GenService.Inference;
using GenService.Inference.Callers;
using GenService.Inference.Metrics;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static GenService.Generation.Tests.TestHelpers;

namespace GenService.Generation.Tests.Diffusion;

/// <summary>
/// Who gets in and who gets out of the diffusion loop, counted in iterations of a gated denoiser: a light caller is not
/// held back by a heavy caller's backlog (round-robin admission across callers), a request past its deadline (the
/// loop's, or the shorter one its caller asked for) fails with <see cref="DeadlineExceededException"/> and stops being
/// computed, and a disconnect or a full queue moves its counter exactly once.
/// </summary>
public sealed class DiffusionAdmissionTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly RefusalCounters _counters;
    private readonly GenerationTelemetry _telemetry;

    public DiffusionAdmissionTests()
    {
        IMeterFactory meters = _services.GetRequiredService<IMeterFactory>();
        _counters = new RefusalCounters(meters);
        _telemetry = new GenerationTelemetry(new GenServiceMetrics(meters), NullLogger<GenerationTelemetry>.Instance);
    }

    public void Dispose()
    {
        _counters.Dispose();
        _services.Dispose();
    }

    private static DiffusionParameters Body(ulong seed, int steps, int count, int label) => new() { Seed = seed, Steps = steps, Count = count, ClassLabel = label };

    private DiffusionIterationLoop Loop(ScriptedDenoiser denoiser, int maxRows = 0, int maxQueuedSamples = 4096, TimeProvider? time = null, TimeSpan? deadline = null)
        => new(denoiser, denoiser.Manifest, maxRows, maxQueuedSamples, metrics: null, _telemetry, time ?? TimeProvider.System, NullLogger.Instance)
        {
            Deadline = deadline ?? DiffusionIterationLoop.DefaultDeadline,
        };

    private static async Task<DiffusionCompleted> CompleteAsync(IAsyncEnumerable<DiffusionEvent> events)
    {
        DiffusionEvent? last = null;
        await foreach (DiffusionEvent e in events.WithCancellation(Ct))
        {
            last = e;
        }

        return Assert.IsType<DiffusionCompleted>(last);
    }

    /// <summary>Submits as <paramref name="caller"/>: the loop reads the caller where the request is queued.</summary>
    private static Task<DiffusionCompleted> RunAs(string caller, DiffusionIterationLoop loop, DiffusionJob job)
    {
        using CallerContext.Scope scope = CallerContext.Enter(caller);
        return CompleteAsync(loop.RunAsync(job, Ct, progress: false)); // queued synchronously by the first MoveNextAsync
    }

    [Fact]
    public async Task A_light_callers_request_is_admitted_at_the_first_boundary_where_rows_free_up_whatever_a_heavy_caller_queued()
    {
        // 8 rows per iteration. The heavy caller's first request (8 samples x 5 steps, label 0) fills them and is held
        // in its first call until the heavy caller has queued 39 more and the light caller its 1-sample, 5-step request
        // (label 3). FIFO would run the light request after all 40 heavy ones: calls 200..204.
        var denoiser = new ScriptedDenoiser(maxBatchSize: 64, gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser, maxRows: 8);
        var heavy = new List<Task<DiffusionCompleted>> { RunAs("key:heavy", loop, denoiser.Job(Body(0, 5, 8, 0))) };
        await denoiser.WhenEntered(1);
        heavy.AddRange(Enumerable.Range(1, 39).Select(i => RunAs("key:heavy", loop, denoiser.Job(Body((ulong)i, 5, 8, 0)))));
        Task<DiffusionCompleted> light = RunAs("key:light", loop, denoiser.Job(Body(99, 5, 1, 3)));
        Assert.Equal(41, loop.ActiveRequests);
        denoiser.Open();
        await light;
        await Task.WhenAll(heavy);

        // The bound: with two callers waiting, the light sample is among the first two items admitted once rows free
        // up, i.e. at the boundary after the first heavy request's 5 iterations: it runs in calls 5..9, beside 7 of the
        // second heavy request's samples (the turns alternate heavy, light, heavy, ... while rows are free).
        ScriptedDenoiser.Call[] calls = denoiser.CallsSnapshot();
        int[] lightCalls = [.. calls.Select((c, k) => (c, k)).Where(p => p.c.Labels.Contains(3L)).Select(p => p.k)];
        Assert.Equal([5, 6, 7, 8, 9], lightCalls);
        Assert.Equal(7, calls[5].Labels.Count(l => l == 0));
        Assert.All(calls, c => Assert.True(c.Rows <= 8, $"{c.Rows} rows"));

        // Nothing was lost to fairness: every sample ran its 5 steps, and the cap stayed full while work waited (the
        // last heavy sample, admitted one boundary after its request's other seven, ends alone in 5 calls of 1 row).
        Assert.Equal((40 * 8 * 5) + 5, calls.Sum(c => c.Rows));
        Assert.Equal(205, calls.Length);
        Assert.All(calls[..200], c => Assert.Equal(8, c.Rows));
    }

    [Fact]
    public async Task Within_one_caller_requests_keep_their_order_and_callers_take_turns_item_by_item()
    {
        // Cap 1 row: every iteration admits one item, so the admission order is the order labels appear in the calls.
        // Caller A queues two requests (labels 0 then 1, 2 samples each), caller B one (label 2, 2 samples), all while
        // a first request of A (label 3) holds the only row in its first call.
        var denoiser = new ScriptedDenoiser(maxBatchSize: 8, gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser, maxRows: 1);
        Task<DiffusionCompleted> head = RunAs("a", loop, denoiser.Job(Body(1, 1, 1, 3)));
        await denoiser.WhenEntered(1);
        Task<DiffusionCompleted>[] rest =
        [
            RunAs("a", loop, denoiser.Job(Body(2, 1, 2, 0))),
            RunAs("a", loop, denoiser.Job(Body(3, 1, 2, 1))),
            RunAs("b", loop, denoiser.Job(Body(4, 1, 2, 2))),
        ];
        denoiser.Open();
        await Task.WhenAll([head, .. rest]);

        // A, B, A, B, then A alone: A's second request waits for its first, never for B.
        Assert.Equal([3L, 0L, 2L, 0L, 2L, 1L, 1L], denoiser.CallsSnapshot().Select(c => c.Labels.Single()));
    }

    [Fact]
    public async Task A_request_past_its_deadline_fails_and_its_rows_stop_before_the_next_iteration()
    {
        // X asks for 2 s (shorter than the loop's 10 s, as X-Request-Timeout-Ms does); Y, submitted at the same time,
        // keeps the loop's deadline. The clock moves only when the test says so.
        var time = new FakeTimeProvider();
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser, time: time, deadline: TimeSpan.FromSeconds(10));
        IAsyncEnumerator<DiffusionEvent> x = loop.RunAsync(denoiser.Job(Body(1, 100, 2, 3)), Ct).GetAsyncEnumerator(Ct);
        ValueTask<bool> first;
        using (RequestDeadline.Enter(time.GetUtcNow() + TimeSpan.FromSeconds(2)))
        {
            first = x.MoveNextAsync(); // queued here, where the caller's deadline is current
        }

        Task<DiffusionCompleted> y = CompleteAsync(loop.RunAsync(denoiser.Job(Body(2, 30, 1, 1)), Ct));

        // Three steps, then the deadline passes while the fourth iteration (with X's rows) is held in the denoiser.
        denoiser.Release(3);
        Assert.True(await first);
        Assert.True(await x.MoveNextAsync());
        Assert.True(await x.MoveNextAsync());
        await denoiser.WhenEntered(4);
        time.Advance(TimeSpan.FromMilliseconds(1999));
        Assert.Equal(2, loop.ActiveRequests);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, loop.ActiveRequests); // X is out at once
        denoiser.Open();
        await y;
        DeadlineExceededException error = await Assert.ThrowsAsync<DeadlineExceededException>(async () =>
        {
            while (await x.MoveNextAsync())
            {
            }
        });
        await x.DisposeAsync();
        Assert.Contains("2000 ms", error.Message, StringComparison.Ordinal);

        // X's rows (label 3) were in the iteration under way when its deadline passed, and in none after it.
        ScriptedDenoiser.Call[] calls = denoiser.CallsSnapshot();
        Assert.Equal(3, Array.FindLastIndex(calls, c => c.Labels.Contains(3L)));
        Assert.Equal((2 * 4) + 30, denoiser.RowsComputed);
        Assert.Equal(1, _counters.Rejected("deadline"));
        Assert.Equal(0, _counters.Cancelled); // the reader leaving after the error is no cancellation
    }

    [Fact]
    public async Task A_request_waiting_for_admission_also_ends_at_its_deadline()
    {
        var time = new FakeTimeProvider();
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser, maxRows: 1, time: time, deadline: TimeSpan.FromSeconds(10));
        Task<DiffusionCompleted> running = CompleteAsync(loop.RunAsync(denoiser.Job(Body(1, 3, 1, 0)), Ct));
        await denoiser.WhenEntered(1);
        time.Advance(TimeSpan.FromSeconds(5));
        Task<DiffusionCompleted> waiting = CompleteAsync(loop.RunAsync(denoiser.Job(Body(2, 3, 1, 1)), Ct));

        // 10 s after the first was queued it fails in the middle of its run; the second, queued 5 s later, fails
        // 5 s after that without a single row computed.
        time.Advance(TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => running);
        time.Advance(TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => waiting);
        denoiser.Open();
        Assert.Equal(0, loop.ActiveRequests);
        Assert.Equal(2, _counters.Rejected("deadline"));
        Assert.DoesNotContain(denoiser.CallsSnapshot(), c => c.Labels.Contains(1L));
    }

    [Fact]
    public async Task A_client_that_disconnects_counts_one_cancellation_and_its_rows_stop_within_one_iteration()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        denoiser.Release(2);
        int steps = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (DiffusionEvent e in loop.RunAsync(denoiser.Job(Body(1, 100, 3, 2)), cts.Token))
            {
                if (e is DiffusionStepDone && ++steps == 2)
                {
                    await denoiser.WhenEntered(3); // the third iteration is in the denoiser, held
                    await cts.CancelAsync();       // the token fires, then the reader leaves: one cancellation
                }
            }
        });
        long rowsAtCancel = denoiser.RowsComputed;
        denoiser.Open();

        // A later request runs to its end: by then the loop has passed the held iteration, the last with the rows.
        await CompleteAsync(loop.RunAsync(denoiser.Job(Body(2, 4, 1, 1)), Ct));
        Assert.Equal(2 * 3, rowsAtCancel);
        Assert.Equal((3 * 3) + 4, denoiser.RowsComputed); // at most the held iteration after the cancel
        Assert.Equal(1, _counters.Cancelled);

        // A reader that leaves right after its result is no cancellation.
        await CompleteAsync(loop.RunAsync(denoiser.Job(Body(3, 2, 1, 1)), Ct));
        Assert.Equal(1, _counters.Cancelled);
    }

    [Fact]
    public async Task A_full_loop_queue_is_refused_and_counted_as_queue_full()
    {
        var denoiser = new ScriptedDenoiser(gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser, maxRows: 1, maxQueuedSamples: 2);
        Task<DiffusionCompleted> head = CompleteAsync(loop.RunAsync(denoiser.Job(Body(1, 2, 1, 0)), Ct));
        await denoiser.WhenEntered(1);
        Task<DiffusionCompleted> waiting = CompleteAsync(loop.RunAsync(denoiser.Job(Body(2, 2, 2, 0)), Ct));
        QueueFullException full = await Assert.ThrowsAsync<QueueFullException>(() => CompleteAsync(loop.RunAsync(denoiser.Job(Body(3, 2, 1, 0)), Ct)));
        Assert.True(full.RetryAfter >= TimeSpan.FromSeconds(1));
        Assert.Equal(1, _counters.Rejected("queue_full"));
        denoiser.Open();
        await Task.WhenAll(head, waiting);
        Assert.Equal(0, _counters.Cancelled);
    }

    [Fact]
    public async Task A_callers_request_that_its_own_backlog_would_hold_past_half_its_deadline_is_shed_while_another_caller_gets_in()
    {
        // One row per iteration, one step per sample, a 20 s deadline; the fake clock moves 1 s per iteration, so the
        // heavy caller is served one item per second. After 11 admissions 29 of its 40 samples still wait: about 29 s,
        // more than half the deadline, so its next request is refused at once (429 + Retry-After) instead of timing out.
        var time = new FakeTimeProvider();
        var denoiser = new ScriptedDenoiser(maxBatchSize: 8, gated: true);
        using DiffusionIterationLoop loop = Loop(denoiser, maxRows: 1, time: time, deadline: TimeSpan.FromSeconds(20));
        List<Task<DiffusionCompleted>> heavy = [.. Enumerable.Range(0, 40).Select(i => RunAs("key:heavy", loop, denoiser.Job(Body((ulong)i, 1, 1, 0))))];
        await denoiser.WhenEntered(1);
        for (int k = 1; k <= 10; k++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            denoiser.Release(1);
            await denoiser.WhenEntered(k + 1);
        }

        Assert.Equal(29, loop.WaitingItems);   // the backlog the waiting_items gauge reports
        CallerBacklogException shed = await Assert.ThrowsAsync<CallerBacklogException>(() => RunAs("key:heavy", loop, denoiser.Job(Body(100, 1, 1, 0))));
        Assert.Equal(TimeSpan.FromSeconds(29 - 10), shed.RetryAfter);   // the estimated wait past half the deadline
        Assert.Contains("29 s", shed.Message, StringComparison.Ordinal);
        Assert.Equal(1, _counters.Rejected("backlog"));

        // The light caller has no backlog of its own: it is admitted (and, round-robin, runs within two iterations).
        Task<DiffusionCompleted> light = RunAs("key:light", loop, denoiser.Job(Body(99, 1, 1, 3)));
        Assert.Equal(31, loop.ActiveRequests);   // 30 heavy (one in the held call) and the light one
        denoiser.Open();
        await light;
        await Task.WhenAll(heavy);
        Assert.Equal(1, _counters.Rejected("backlog"));
        Assert.Equal(0, _counters.Rejected("deadline"));
        int lightCall = Array.FindIndex(denoiser.CallsSnapshot(), c => c.Labels.Contains(3L));
        Assert.InRange(lightCall, 11, 12);
    }
}
