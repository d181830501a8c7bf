using System.Diagnostics.Metrics;
using GenService.Inference.Batching;
using GenService.Inference.Callers;
using GenService.Inference.Metrics;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace GenService.Inference.Tests.Batching;

public sealed class DynamicBatcherTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly ObservedTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly List<DynamicBatcher> _batchers = [];

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (DynamicBatcher b in _batchers)
        {
            await b.DisposeAsync();
        }
    }

    private DynamicBatcher Create(FakeExecutor executor, int maxBatch = 4, double delayMs = 10, int maxQueue = 64, int concurrency = 1,
        long width = -1, double deadlineMs = 30_000, GenServiceMetrics? metrics = null)
    {
        var signature = new GraphSignature(
            [new TensorSpec("x", "latent", TensorElementType.Float32, [-1, width])],
            [new TensorSpec("y", "sample", TensorElementType.Float32, [-1, width])]);
        var settings = new BatcherSettings(maxBatch, TimeSpan.FromMilliseconds(delayMs), maxQueue, concurrency, TimeSpan.FromMilliseconds(deadlineMs));
        var batcher = new DynamicBatcher("m", "generator", signature, executor, settings, _time, metrics);
        _batchers.Add(batcher);
        return batcher;
    }

    private static int _counter;

    /// <summary>Rows with distinct values so each row can be traced through batches.</summary>
    private static Tensor Rows(int rows, int width = 3)
    {
        float[] data = new float[rows * width];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = Interlocked.Increment(ref _counter) * 0.25f;
        }

        return Tensor.FromFloats(data, rows, width);
    }

    private static InferenceRequest Request(Tensor x, DateTimeOffset? deadline = null) =>
        new() { Inputs = new Dictionary<string, Tensor> { ["x"] = x }, Deadline = deadline };

    /// <summary>
    /// Completes when the scheduling loop starts waiting out the queue delay (<paramref name="delayMs"/> on the fake
    /// clock) while <paramref name="queuedRows"/> rows are queued: from then on it does nothing until more work
    /// comes or the clock moves, so what has not happened by then does not happen on its own.
    /// </summary>
    private Task LoopWaitsOutTheDelay(DynamicBatcher batcher, double delayMs, int queuedRows)
        => _time.WhenTimerArmed(due => due == TimeSpan.FromMilliseconds(delayMs) && batcher.QueuedRows == queuedRows);

    /// <summary>
    /// Sends one more row and returns its result. The queue is FIFO, so once it is answered every row queued before
    /// it has been computed or has left the queue: what was not computed by then never will be.
    /// </summary>
    private static async Task<Tensor> Probe(DynamicBatcher batcher)
    {
        Tensor probe = Rows(1);
        AssertRowsEqual(probe, await batcher.InferAsync(Request(probe), Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct));
        return probe;
    }

    private static void AssertRowsEqual(Tensor input, InferenceResult result)
    {
        Tensor expected = FakeExecutor.Compute(input);
        Tensor actual = result.Outputs["y"];
        Assert.Equal(expected.Shape, actual.Shape);
        float[] e = expected.AsFloats(), a = actual.AsFloats();
        for (int i = 0; i < e.Length; i++)
        {
            Assert.True(Math.Abs(e[i] - a[i]) <= 1e-5f, $"element {i}: expected {e[i]}, got {a[i]}");
        }
    }

    [Fact]
    public async Task Concurrent_requests_fill_a_batch_at_once_and_the_rest_waits_for_the_delay()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 4, delayMs: 10);
        Task waiting = LoopWaitsOutTheDelay(batcher, delayMs: 10, queuedRows: 2);
        Tensor[] inputs = [.. Enumerable.Range(0, 6).Select(_ => Rows(1))];
        Task<InferenceResult>[] tasks = [.. inputs.Select(x => batcher.InferAsync(Request(x), Ct).AsTask())];

        await waiting;
        Assert.Single(exec.Batches);                      // two rows left: not a full batch, delay not over
        Assert.Equal(4, exec.Batches.First().Rows);
        Assert.Equal(2, batcher.QueuedRows);

        _time.Advance(TimeSpan.FromMilliseconds(10));
        InferenceResult[] results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.Equal([4, 2], exec.Batches.Select(b => b.Rows));
        for (int i = 0; i < inputs.Length; i++)
        {
            AssertRowsEqual(inputs[i], results[i]);
        }

        Assert.All(results.Take(4), r => Assert.Equal(4, r.BatchSize));
        Assert.All(results.Skip(4), r => Assert.Equal(2, r.BatchSize));
        Assert.All(results.Skip(4), r => Assert.Equal(TimeSpan.FromMilliseconds(10), r.QueueTime));
    }

    [Fact]
    public async Task A_lone_request_runs_when_the_queue_delay_is_over()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 8, delayMs: 5);
        Task waiting = LoopWaitsOutTheDelay(batcher, delayMs: 5, queuedRows: 2);
        Tensor x = Rows(2);
        Task<InferenceResult> task = batcher.InferAsync(Request(x), Ct).AsTask();

        await waiting;                                    // the whole 5 ms, from the request's arrival
        Assert.Empty(exec.Batches);
        _time.Advance(TimeSpan.FromMilliseconds(4));
        Assert.Empty(exec.Batches);                       // the loop's timer is due at 5 ms: nothing woke it
        _time.Advance(TimeSpan.FromMilliseconds(1));
        InferenceResult result = await task.WaitAsync(TimeSpan.FromSeconds(10), Ct);

        AssertRowsEqual(x, result);
        Assert.Equal(TimeSpan.FromMilliseconds(5), result.QueueTime);
        Assert.Equal(2, result.BatchSize);
    }

    [Fact]
    public async Task A_request_marked_dispatch_immediately_leaves_at_once_and_takes_queued_company_along()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 8, delayMs: 50);
        Tensor a = Rows(2), b = Rows(2), now = Rows(1);
        Task waiting = LoopWaitsOutTheDelay(batcher, delayMs: 50, queuedRows: 4);
        Task<InferenceResult> ta = batcher.InferAsync(Request(a), Ct).AsTask();
        Task<InferenceResult> tb = batcher.InferAsync(Request(b), Ct).AsTask();
        await waiting;
        Assert.Empty(exec.Batches);                       // 4 of 8 rows, the 50 ms delay not over

        var urgent = new InferenceRequest { Inputs = new Dictionary<string, Tensor> { ["x"] = now }, DispatchImmediately = true };
        InferenceResult[] results = await Task.WhenAll(ta, tb, batcher.InferAsync(urgent, Ct).AsTask()).WaitAsync(TimeSpan.FromSeconds(10), Ct);

        // No time passed on the clock: the marked request sent the batch, with the queued rows in it, in order.
        Assert.Equal([5], exec.Batches.Select(x => x.Rows));
        AssertRowsEqual(a, results[0]);
        AssertRowsEqual(b, results[1]);
        AssertRowsEqual(now, results[2]);
        Assert.All(results, r => Assert.Equal(5, r.BatchSize));
        Assert.Equal(TimeSpan.Zero, results[2].QueueTime);
    }

    [Fact]
    public async Task Two_requests_marked_dispatch_immediately_run_as_two_batches_at_once_and_company_rides_with_the_first()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 8, delayMs: 50, concurrency: 2);
        Tensor small = Rows(1), p1 = Rows(3), p2 = Rows(3);
        Task waiting = LoopWaitsOutTheDelay(batcher, delayMs: 50, queuedRows: 1);
        Task<InferenceResult> ts = batcher.InferAsync(Request(small), Ct).AsTask();
        await waiting;
        Task<InferenceResult> t1 = batcher.InferAsync(Immediate(p1), Ct).AsTask();
        Task<InferenceResult> t2 = batcher.InferAsync(Immediate(p2), Ct).AsTask();

        // 7 compatible rows fit one batch of 8, but the two parts of a split iteration must not be merged back.
        await exec.WhenEntered(2);
        Assert.Equal(2, exec.Running);
        exec.Release();
        InferenceResult[] results = await Task.WhenAll(ts, t1, t2).WaitAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.Equal([3, 4], exec.Batches.Select(x => x.Rows).Order());
        Assert.Equal(2, exec.MaxConcurrent);
        AssertRowsEqual(small, results[0]);
        AssertRowsEqual(p1, results[1]);
        AssertRowsEqual(p2, results[2]);
        Assert.Equal(4, results[1].BatchSize);            // the queued single row went with the first part
        Assert.Equal(3, results[2].BatchSize);

        static InferenceRequest Immediate(Tensor x) => new() { Inputs = new Dictionary<string, Tensor> { ["x"] = x }, DispatchImmediately = true };
    }

    [Fact]
    public async Task Output_buffers_are_written_in_place_when_the_request_runs_alone_and_untouched_when_it_is_merged()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 8, delayMs: 50);

        // Alone in its batch: the graph writes into the caller's buffer (longer than the output, as a pooled one is),
        // and the result is that buffer.
        Tensor x = Rows(2);
        var buffer = new Tensor(TensorElementType.Float32, [2, 3], new float[10]);
        InferenceResult alone = await batcher.InferAsync(WithBuffer(x, buffer), Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Same(buffer, alone.Outputs["y"]);
        Assert.Equal(FakeExecutor.Compute(x).AsFloats(), buffer.FloatSpan.ToArray());
        Assert.Equal(1, exec.InPlaceBatches);

        // Merged with a queued request: the batch's output is split into new tensors and the buffer is left alone.
        Tensor a = Rows(2), b = Rows(2);
        var untouched = new Tensor(TensorElementType.Float32, [2, 3], new float[6]);
        Task<InferenceResult> ta = batcher.InferAsync(Request(a), Ct).AsTask();
        Task<InferenceResult> tb = batcher.InferAsync(WithBuffer(b, untouched), Ct).AsTask();
        InferenceResult[] merged = await Task.WhenAll(ta, tb).WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(4, merged[1].BatchSize);
        Assert.NotSame(untouched, merged[1].Outputs["y"]);
        AssertRowsEqual(a, merged[0]);
        AssertRowsEqual(b, merged[1]);
        Assert.All(untouched.AsFloats(), v => Assert.Equal(0f, v));
        Assert.Equal(1, exec.InPlaceBatches);

        static InferenceRequest WithBuffer(Tensor x, Tensor y) => new()
        {
            Inputs = new Dictionary<string, Tensor> { ["x"] = x },
            DispatchImmediately = true,
            OutputBuffers = new Dictionary<string, Tensor> { ["y"] = y },
        };
    }

    [Fact]
    public async Task A_large_request_is_split_into_batches_and_reassembled_in_order()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 4, delayMs: 0);
        Tensor x = Rows(10);

        InferenceResult result = await batcher.InferAsync(Request(x), Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.Equal([4, 4, 2], exec.Batches.Select(b => b.Rows));
        AssertRowsEqual(x, result);
        Assert.Equal(4, result.BatchSize);
    }

    [Fact]
    public async Task Split_chunks_mix_with_other_requests_and_every_row_keeps_its_own_result()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 4, delayMs: 0);
        Tensor blocker = Rows(1);
        Task<InferenceResult> first = batcher.InferAsync(Request(blocker), Ct).AsTask();
        await exec.WhenEntered(1);                        // the blocking batch

        Tensor a = Rows(3), b = Rows(6), c = Rows(1);
        Task<InferenceResult>[] tasks = [.. new[] { a, b, c }.Select(x => batcher.InferAsync(Request(x), Ct).AsTask())];
        exec.Release();
        InferenceResult[] results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await first;

        // FIFO: [a(3)] then b's chunks (4, 2) with c's row filling the last batch.
        Assert.Equal([1, 3, 4, 3], exec.Batches.Select(t => t.Rows));
        AssertRowsEqual(a, results[0]);
        AssertRowsEqual(b, results[1]);
        AssertRowsEqual(c, results[2]);
    }

    [Fact]
    public async Task A_full_queue_rejects_at_once_with_a_retry_after()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 2, delayMs: 0, maxQueue: 4);
        Task<InferenceResult> running = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        await exec.WhenEntered(1);                        // the running batch

        Task<InferenceResult> queued = batcher.InferAsync(Request(Rows(3)), Ct).AsTask();
        Assert.Equal(3, batcher.QueuedRows);

        // Retry-After: the batches ahead (2) at the batch time so far (no batch has finished: the initial 10 ms),
        // below the 1 s floor.
        QueueFullException ex = Assert.Throws<QueueFullException>(() => { _ = batcher.InferAsync(Request(Rows(2)), Ct); });
        Assert.Equal(TimeSpan.FromSeconds(1), ex.RetryAfter);
        Assert.Contains("m.generator", ex.Message, StringComparison.Ordinal);
        Assert.Equal(3, batcher.QueuedRows);

        // One row still fits.
        Task<InferenceResult> fits = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        exec.Release();
        await Task.WhenAll(running, queued, fits).WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(5, exec.TotalRows);
    }

    [Fact]
    public async Task Refusals_and_cancellations_are_counted_once_each_with_their_reason()
    {
        using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        IMeterFactory meters = services.GetRequiredService<IMeterFactory>();
        using var counters = new RefusalCounters(meters);
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 2, delayMs: 0, maxQueue: 4, metrics: new GenServiceMetrics(meters));
        Task<InferenceResult> running = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        await exec.WhenEntered(1);                        // the running batch

        // A full queue: refused at once, counted as queue_full.
        Task<InferenceResult> queued = batcher.InferAsync(Request(Rows(3)), Ct).AsTask();
        Assert.Throws<QueueFullException>(() => { _ = batcher.InferAsync(Request(Rows(2)), Ct); });
        Assert.Equal(1, counters.Rejected("queue_full"));

        // Still queued at the deadline its caller asked for (RequestDeadline, from X-Request-Timeout-Ms): deadline.
        Task<InferenceResult> doomed;
        using (RequestDeadline.Enter(_time.GetUtcNow().AddMilliseconds(20)))
        {
            doomed = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        }

        _time.Advance(TimeSpan.FromMilliseconds(20));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => doomed.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(1, counters.Rejected("deadline"));

        // A caller that goes away while queued: one cancellation, however the cancel and the leaving race.
        using var cts = new CancellationTokenSource();
        Task<InferenceResult> cancelled = batcher.InferAsync(Request(Rows(1)), cts.Token).AsTask();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(1, counters.Cancelled);

        exec.Release();
        await Task.WhenAll(running, queued).WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal((1, 1, 1), (counters.Rejected("queue_full"), counters.Rejected("deadline"), counters.Cancelled));
    }

    [Fact]
    public async Task A_request_still_queued_at_its_deadline_fails_and_is_never_computed()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 4, delayMs: 0);
        Task<InferenceResult> running = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        await exec.WhenEntered(1);                        // the running batch

        Tensor late = Rows(2);
        Task<InferenceResult> doomed = batcher.InferAsync(Request(late, _time.GetUtcNow().AddMilliseconds(100)), Ct).AsTask();
        _time.Advance(TimeSpan.FromMilliseconds(99));     // fake timers due by now fire inside Advance
        Assert.False(doomed.IsCompleted);

        _time.Advance(TimeSpan.FromMilliseconds(1));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => doomed.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(0, batcher.QueuedRows);

        exec.Release();
        await running.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Tensor probe = await Probe(batcher);
        Assert.Equal([1, 1], exec.Batches.Select(b => b.Rows)); // the running row, then the probe alone
        Assert.Equal(probe.AsFloats()[0], exec.AllFirstColumns.Last());
        Assert.DoesNotContain(late.AsFloats()[0], exec.AllFirstColumns);
    }

    [Fact]
    public async Task The_default_deadline_applies_when_the_request_sets_none()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 4, delayMs: 0, deadlineMs: 50);
        Task<InferenceResult> running = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        await exec.WhenEntered(1);                        // the running batch
        Task<InferenceResult> doomed = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();

        _time.Advance(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => doomed.WaitAsync(TimeSpan.FromSeconds(10), Ct));

        // The running one is past its queue deadline too, but it had started: it finishes.
        exec.Release();
        await running.WaitAsync(TimeSpan.FromSeconds(10), Ct);
    }

    [Fact]
    public async Task A_request_cancelled_while_queued_leaves_the_queue_and_is_never_computed()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 4, delayMs: 0);
        Task<InferenceResult> running = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        await exec.WhenEntered(1);                        // the running batch

        using var cts = new CancellationTokenSource();
        Tensor gone = Rows(2);
        Tensor kept = Rows(1);
        Task<InferenceResult> cancelled = batcher.InferAsync(Request(gone), cts.Token).AsTask();
        Task<InferenceResult> other = batcher.InferAsync(Request(kept), Ct).AsTask();
        Assert.Equal(3, batcher.QueuedRows);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(1, batcher.QueuedRows);

        exec.Release();
        AssertRowsEqual(kept, await other.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        await running;
        Assert.Equal(2, exec.TotalRows);
        Assert.DoesNotContain(gone.AsFloats()[0], exec.AllFirstColumns);
    }

    [Fact]
    public async Task A_cancelled_split_request_sends_no_further_chunks()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 2, delayMs: 0);
        using var cts = new CancellationTokenSource();
        Task<InferenceResult> big = batcher.InferAsync(Request(Rows(6)), cts.Token).AsTask();
        await exec.WhenEntered(1);                        // the first chunk
        Assert.Equal(4, batcher.QueuedRows);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => big.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(0, batcher.QueuedRows);
        exec.Release();
        await Probe(batcher);
        Assert.Equal([2, 1], exec.Batches.Select(b => b.Rows)); // the first chunk, then the probe alone
        Assert.Equal(2 + 1, exec.TotalRows);
    }

    [Fact]
    public async Task An_already_cancelled_token_is_rejected_before_queueing()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, delayMs: 0);
        Tensor cancelled = Rows(1);
        Assert.Throws<OperationCanceledException>(() => { _ = batcher.InferAsync(Request(cancelled), new CancellationToken(true)); });
        Assert.Equal(0, batcher.QueuedRows);
        Tensor probe = await Probe(batcher);
        Assert.Equal([probe.AsFloats()[0]], exec.AllFirstColumns); // one batch: the probe alone
    }

    [Fact]
    public async Task Requests_with_different_non_batch_shapes_are_never_mixed()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 8, delayMs: 10);
        Tensor a = Rows(1, width: 3), b = Rows(1, width: 5), c = Rows(2, width: 3), d = Rows(1, width: 5);
        Task waiting = LoopWaitsOutTheDelay(batcher, delayMs: 10, queuedRows: 5);
        Task<InferenceResult>[] tasks = [.. new[] { a, b, c, d }.Select(x => batcher.InferAsync(Request(x), Ct).AsTask())];

        await waiting;
        Assert.Empty(exec.Batches);
        _time.Advance(TimeSpan.FromMilliseconds(10));

        // Width 3 heads the queue and goes first; then the width-5 rows, whose delay is also over.
        InferenceResult[] results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10), Ct);

        Assert.Equal(2, exec.Batches.Count);
        Tensor[] batches = [.. exec.Batches];
        Assert.Equal([3L, 5L], batches.Select(t => t.Shape[1]));
        Assert.Equal([3, 2], batches.Select(t => t.Rows));
        AssertRowsEqual(a, results[0]);
        AssertRowsEqual(b, results[1]);
        AssertRowsEqual(c, results[2]);
        AssertRowsEqual(d, results[3]);
    }

    [Fact]
    public async Task Up_to_instances_batches_run_at_once()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, maxBatch: 1, delayMs: 0, concurrency: 2);
        Task<InferenceResult>[] tasks = [.. Enumerable.Range(0, 5).Select(_ => batcher.InferAsync(Request(Rows(1)), Ct).AsTask())];

        await exec.WhenEntered(2);                        // two running batches, held: both slots taken
        Assert.Equal(2, exec.Running);
        Assert.Equal(3, batcher.QueuedRows);
        exec.Release();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(2, exec.MaxConcurrent);
    }

    [Fact]
    public async Task Concurrent_load_gives_every_row_its_unbatched_result()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, maxBatch: 16, delayMs: 0, maxQueue: 10_000, concurrency: 2);
        Tensor[] inputs = [.. Enumerable.Range(0, 200).Select(i => Rows(1 + (i % 5)))];
        Task<InferenceResult>[] tasks = [.. inputs.Select(x => Task.Run(() => batcher.InferAsync(Request(x), Ct).AsTask(), Ct))];
        InferenceResult[] results = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(20), Ct);
        for (int i = 0; i < inputs.Length; i++)
        {
            AssertRowsEqual(inputs[i], results[i]);
        }

        Assert.Equal(inputs.Sum(x => x.Rows), exec.TotalRows);
    }

    [Fact]
    public async Task A_failing_batch_fails_its_requests_and_the_batcher_keeps_serving()
    {
        var exec = new FakeExecutor { Throw = new InvalidOperationException("boom") };
        DynamicBatcher batcher = Create(exec, delayMs: 0);
        await Assert.ThrowsAsync<InvalidOperationException>(() => batcher.InferAsync(Request(Rows(1)), Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct));
        exec.Throw = null;
        Tensor x = Rows(1);
        AssertRowsEqual(x, await batcher.InferAsync(Request(x), Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct));
    }

    [Fact]
    public void Bad_inputs_are_rejected_naming_the_field()
    {
        var exec = new FakeExecutor();
        DynamicBatcher batcher = Create(exec, width: 3);
        RequestValidationException missing = Assert.Throws<RequestValidationException>(() =>
            { _ = batcher.InferAsync(new InferenceRequest { Inputs = new Dictionary<string, Tensor> { ["z"] = Rows(1) } }, Ct); });
        Assert.Equal("inputs.x", missing.Field);

        RequestValidationException dtype = Assert.Throws<RequestValidationException>(() =>
            { _ = batcher.InferAsync(Request(Tensor.FromLongs([1, 2, 3], 1, 3)), Ct); });
        Assert.Contains("FP32", dtype.Message, StringComparison.Ordinal);

        RequestValidationException shape = Assert.Throws<RequestValidationException>(() => { _ = batcher.InferAsync(Request(Rows(1, width: 4)), Ct); });
        Assert.Contains("[?,3]", shape.Message, StringComparison.Ordinal);

        RequestValidationException output = Assert.Throws<RequestValidationException>(() =>
            { _ = batcher.InferAsync(new InferenceRequest { Inputs = new Dictionary<string, Tensor> { ["x"] = Rows(1) }, Outputs = ["nope"] }, Ct); });
        Assert.Equal("outputs", output.Field);
    }

    [Fact]
    public async Task Drain_waits_for_running_work_then_closes_and_disposes_the_executor()
    {
        var exec = new FakeExecutor(held: true);
        DynamicBatcher batcher = Create(exec, delayMs: 0);
        Task<InferenceResult> running = batcher.InferAsync(Request(Rows(1)), Ct).AsTask();
        await exec.WhenEntered(1);                        // the running batch

        Task drain = batcher.DrainAndCloseAsync(TimeSpan.Zero, "a test closed it", Ct);
        Assert.False(drain.IsCompleted);
        Assert.False(exec.Disposed);

        exec.Release();
        await running.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await drain.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.True(exec.Disposed);
        ModelNotReadyException ex = Assert.Throws<ModelNotReadyException>(() => { _ = batcher.InferAsync(Request(Rows(1)), Ct); });
        Assert.Contains("a test closed it", ex.Message, StringComparison.Ordinal);
    }
}
