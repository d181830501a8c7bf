using System.Diagnostics.Metrics;
using GenService.Inference.Batching;
using GenService.Inference.Metrics;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Testing;

namespace GenService.Inference.Tests.Batching;

/// <summary>
/// The batcher's failure path (DynamicBatcher.Isolation.cs): a merged call that fails on one caller's row is bisected
/// by request, so the innocent requests complete with their own numbers, the offenders get a 400-class
/// <see cref="InputNotComputableException"/>, and a call that fails for everyone keeps the original error. Eight
/// single-row requests fill a batch of eight at once (the fake clock never moves), so every test merges the same call.
/// </summary>
public sealed class BatchIsolationTests : IAsyncLifetime
{
    private const float PoisonValue = -999f;
    private const int Requests = 8;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly ObservedTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly TestMeterFactory _meters = new();
    private readonly MeterListener _listener = new();
    private readonly List<DynamicBatcher> _batchers = [];
    private int _badInput;

    public ValueTask InitializeAsync()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, _meters) && instrument.Name == "genservice.rejected")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "reason" && (string?)tag.Value == "bad_input")
                {
                    Interlocked.Add(ref _badInput, (int)value);
                }
            }
        });
        _listener.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (DynamicBatcher b in _batchers)
        {
            await b.DisposeAsync();
        }

        _listener.Dispose();
        _meters.Dispose();
    }

    [Fact]
    public async Task One_offender_in_a_merged_call_fails_alone_and_the_innocent_requests_complete_with_their_own_rows()
    {
        var exec = new FakeExecutor { Poison = PoisonValue };
        DynamicBatcher batcher = Create(exec);
        (Tensor[] inputs, Task<InferenceResult>[] tasks) = Send(batcher, offenders: [5]);

        await AssertOutcomes(inputs, tasks, offenders: [5]);

        // The first call merged all eight; then halves, quarters, eighths down the failing side: 2 x log2(8) re-runs.
        Assert.Equal(8, exec.Batches.First().Rows);
        Assert.Equal(6, batcher.IsolationReruns);
        Assert.Equal(1 + 6, exec.Batches.Count);
        Assert.Equal(1, Volatile.Read(ref _badInput));
    }

    [Fact]
    public async Task Two_offenders_in_both_halves_fail_alone_within_the_bisection_bound()
    {
        var exec = new FakeExecutor { Poison = PoisonValue };
        DynamicBatcher batcher = Create(exec);
        (Tensor[] inputs, Task<InferenceResult>[] tasks) = Send(batcher, offenders: [1, 6]);

        await AssertOutcomes(inputs, tasks, offenders: [1, 6]);

        // Each offender costs at most 2 x log2(8) re-runs; here the two share the top split: 10 of at most 12.
        Assert.Equal(10, batcher.IsolationReruns);
        Assert.True(batcher.IsolationReruns <= 2 * 2 * 3);
        Assert.Equal(2, Volatile.Read(ref _badInput));
    }

    [Fact]
    public async Task A_call_that_fails_for_every_request_fails_them_all_with_the_original_error_not_a_400()
    {
        var boom = new InvalidOperationException("model bug: every row fails");
        var exec = new FakeExecutor { Throw = boom };
        DynamicBatcher batcher = Create(exec);
        (_, Task<InferenceResult>[] tasks) = Send(batcher, offenders: []);

        foreach (Task<InferenceResult> t in tasks)
        {
            Exception e = await Assert.ThrowsAnyAsync<Exception>(() => t.WaitAsync(TimeSpan.FromSeconds(10), Ct));
            Assert.Same(boom, e);
        }

        // Nothing to compare with anywhere in the tree: every split was tried, 2 x (8 - 1) re-runs, and nobody blamed.
        Assert.Equal(14, batcher.IsolationReruns);
        Assert.Equal(0, Volatile.Read(ref _badInput));

        exec.Throw = null;
        Tensor after = Row(0.5f);
        var next = new InferenceRequest { Inputs = new Dictionary<string, Tensor> { ["x"] = after }, DispatchImmediately = true };
        AssertRows(after, await batcher.InferAsync(next, Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct));
    }

    [Fact]
    public async Task An_offender_alone_in_its_call_keeps_the_runtime_error_since_nothing_shows_the_model_works()
    {
        var exec = new FakeExecutor { Poison = PoisonValue };
        DynamicBatcher batcher = Create(exec, maxBatch: 1);
        Task<InferenceResult> alone = batcher.InferAsync(Request(Row(PoisonValue)), Ct).AsTask();

        await Assert.ThrowsAsync<InvalidOperationException>(() => alone.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        Assert.Equal(0, batcher.IsolationReruns);
        Assert.Equal(0, Volatile.Read(ref _badInput));
    }

    [Fact]
    public void An_index_input_outside_its_range_is_refused_before_queueing_with_the_allowed_range()
    {
        var signature = new GraphSignature(
            [
                new TensorSpec("x", "latent", TensorElementType.Float32, [-1, 3]),
                new TensorSpec("label", "class_label", TensorElementType.Int64, [-1]) { Values = new IndexRange(0, 9, "class labels of model 'm'") },
            ],
            [new TensorSpec("y", "sample", TensorElementType.Float32, [-1, 3])]);
        var exec = new FakeExecutor();
        var batcher = new DynamicBatcher("m", "generator", signature, exec, Settings(8), _time, new GenServiceMetrics(_meters));
        _batchers.Add(batcher);

        foreach (long bad in new long[] { -1, 10, 1_000_000 })
        {
            var request = new InferenceRequest
            {
                Inputs = new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats(new float[6], 2, 3), ["label"] = new Tensor(TensorElementType.Int64, [2], new long[] { 3, bad }) },
            };
            RequestValidationException e = Assert.Throws<RequestValidationException>(() => { _ = batcher.InferAsync(request, Ct); });
            Assert.Equal("inputs.label", e.Field);
            Assert.Contains($"holds {bad} at element 1", e.Message, StringComparison.Ordinal);
            Assert.Contains("0..9", e.Message, StringComparison.Ordinal);
        }

        Assert.Equal(0, batcher.QueuedRows);
        Assert.Empty(exec.Batches);
    }

    private static BatcherSettings Settings(int maxBatch) => new(maxBatch, TimeSpan.FromMilliseconds(10), 64, 1, TimeSpan.FromSeconds(30));

    private DynamicBatcher Create(FakeExecutor executor, int maxBatch = Requests)
    {
        var signature = new GraphSignature(
            [new TensorSpec("x", "latent", TensorElementType.Float32, [-1, 3])],
            [new TensorSpec("y", "sample", TensorElementType.Float32, [-1, 3])]);
        var batcher = new DynamicBatcher("m", "generator", signature, executor, Settings(maxBatch), _time, new GenServiceMetrics(_meters));
        _batchers.Add(batcher);
        return batcher;
    }

    /// <summary>Eight one-row requests; those at <paramref name="offenders"/> carry the poison value.</summary>
    private static (Tensor[] Inputs, Task<InferenceResult>[] Tasks) Send(DynamicBatcher batcher, int[] offenders)
    {
        Tensor[] inputs = [.. Enumerable.Range(0, Requests).Select(i => Row(offenders.Contains(i) ? PoisonValue : i + 1))];
        Task<InferenceResult>[] tasks = [.. inputs.Select(x => batcher.InferAsync(Request(x), Ct).AsTask())];
        return (inputs, tasks);
    }

    private static async Task AssertOutcomes(Tensor[] inputs, Task<InferenceResult>[] tasks, int[] offenders)
    {
        for (int i = 0; i < tasks.Length; i++)
        {
            if (offenders.Contains(i))
            {
                InputNotComputableException e = await Assert.ThrowsAsync<InputNotComputableException>(() => tasks[i].WaitAsync(TimeSpan.FromSeconds(10), Ct));
                Assert.Contains("indices element out of data bounds", e.Message, StringComparison.Ordinal);
                Assert.DoesNotContain("   at ", e.Message, StringComparison.Ordinal); // the runtime's first line, no stack
            }
            else
            {
                AssertRows(inputs[i], await tasks[i].WaitAsync(TimeSpan.FromSeconds(10), Ct));
            }
        }
    }

    private static Tensor Row(float first) => Tensor.FromFloats([first, 0.25f, -0.5f], 1, 3);

    private static InferenceRequest Request(Tensor x) => new() { Inputs = new Dictionary<string, Tensor> { ["x"] = x } };

    private static void AssertRows(Tensor input, InferenceResult result)
    {
        Assert.Equal(FakeExecutor.Compute(input).AsFloats(), result.Outputs["y"].AsFloats());
    }
}
