using System.Diagnostics.Metrics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using GenService.Api.Contracts;
using GenService.Api.Hosting;
using GenService.Generation;
using GenService.Generation.Ar;
using GenService.Generation.Loops;
using GenService.Api.Tests.Families.Ar;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Callers;
using GenService.Inference.Metrics;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families.ArScheduling;

/// <summary>
/// Two hosts over copies of words-ar (KV-cache decoder with attention_mask and position_ids) and digits-ar
/// (recompute decoder, input_ids only): iteration-level scheduling with at most 8 rows per iteration (so a crowd
/// waits, joins and leaves), and request-level scheduling.
/// </summary>
public sealed class ArSchedulingHosts : IAsyncLifetime
{
    private readonly string _root = RepositoryPaths.CopyToTemp(RepositoryPaths.RealModels, ArFixture.Words, ArFixture.Digits);

    public ArSchedulingHosts()
    {
        Iteration = new(_root, new Dictionary<string, string?> { ["GenService:Ar:Scheduling"] = "iteration", ["GenService:Ar:MaxRowsPerIteration"] = "8" });
        Request = new(_root, new Dictionary<string, string?> { ["GenService:Ar:Scheduling"] = "request" });
    }

    public GenServiceFactory Iteration { get; }

    public GenServiceFactory Request { get; }

    public async ValueTask InitializeAsync()
    {
        await Iteration.InitializeAsync();
        await Request.InitializeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Iteration.DisposeAsync();
        await Request.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }
}

/// <summary>
/// Iteration-level AR batching through HTTP and ONNX Runtime: a sample's tokens are the same alone, in a crowd of
/// requests with different prompts, lengths, filters and models, and under request-level scheduling; log-probs agree
/// to 1e-4; rows of different requests share decoder calls; a client that leaves stops costing compute; metrics report.
/// </summary>
public sealed class ArSchedulingTests(ArSchedulingHosts hosts) : IClassFixture<ArSchedulingHosts>
{
    private static string Url(string model) => $"/v1/ar/{model}/samples";

    /// <summary>Different prompt lengths (so different prefill widths and past lengths), filters, counts and stops.</summary>
    private static readonly (string Model, object Body)[] Mixed =
    [
        (ArFixture.Words, new { seed = 1, count = 3, prompt = "ca", temperature = 0.9, top_k = 10, max_new_tokens = 12 }),
        (ArFixture.Words, new { seed = 2, count = 2, temperature = 0, max_new_tokens = 20 }),
        (ArFixture.Words, new { seed = 3, count = 1, prompt = "str", temperature = 1.2, top_p = 0.9, max_new_tokens = 8 }),
        (ArFixture.Words, new { seed = 4, count = 4, prompt = "b", temperature = 1.0, repetition_penalty = 1.3 }),
        (ArFixture.Words, new { seed = 5, count = 2, prompt = "quint", stop = new[] { "e" }, temperature = 0.8 }),
        (ArFixture.Digits, new { seed = 6, count = 2, class_label = 3, temperature = 1.0, output = "tensor" }),
        (ArFixture.Digits, new { seed = 7, count = 1, class_label = 7, prompt_tokens = new[] { 0, 0, 5, 12 }, temperature = 0.7, output = "tensor" }),
        (ArFixture.Digits, new { seed = 8, count = 3, temperature = 1.0, max_new_tokens = 20, output = "tensor" }),
    ];

    /// <summary>Three times the mix.</summary>
    private static (string Model, object Body)[] Crowd => [.. Mixed, .. Mixed, .. Mixed];

    /// <summary>The engine's parameters for a body of <see cref="Mixed"/>, mapped as the endpoint maps it.</summary>
    private static ArParameters Parameters(object body)
    {
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        GenServiceHostingExtensions.ConfigureJson(json);
        return JsonSerializer.Deserialize<ArSampleRequest>(JsonSerializer.Serialize(body), json)!.ToParameters();
    }

    /// <summary>The result that ends <paramref name="events"/> (a job run on a loop).</summary>
    private static async Task<ArCompleted> CompleteAsync(IAsyncEnumerable<ArEvent> events)
    {
        await foreach (ArEvent e in events)
        {
            if (e is ArCompleted done)
            {
                return done;
            }
        }

        throw new InvalidOperationException("no result");
    }

    private static string[] Tokens(JsonNode response)
        => [.. response["samples"]!.AsArray().Select(s => string.Join(",", s!["tokens"]!.AsArray().Select(t => t!.GetValue<int>())) + "|" + s["finish_reason"])];

    [Fact]
    public async Task Samples_are_the_same_alone_in_a_crowd_and_under_request_level_scheduling()
    {
        using HttpClient client = hosts.Iteration.CreateClient();
        using HttpClient requestLevel = hosts.Request.CreateClient();
        var alone = new List<string[]>();
        foreach ((string model, object body) in Mixed)
        {
            alone.Add(Tokens(await client.PostOkAsync(Url(model), body)));
        }

        ArIterationLoop words = LoopOf(ArFixture.Words);
        long rowsBefore = words.RowsComputed;

        // Three times the mix at once: 54 sequences against 8 rows per iteration.
        (string Model, object Body)[] crowd = Crowd;
        JsonNode[] together = await Task.WhenAll(crowd.Select(m => client.PostOkAsync(Url(m.Model), m.Body)));
        JsonNode[] byRequest = await Task.WhenAll(Mixed.Select(m => requestLevel.PostOkAsync(Url(m.Model), m.Body)));
        for (int r = 0; r < together.Length; r++)
        {
            Assert.Equal(alone[r % Mixed.Length], Tokens(together[r]));
        }

        for (int r = 0; r < Mixed.Length; r++)
        {
            Assert.Equal(alone[r], Tokens(byRequest[r]));
        }

        // Whatever the HTTP requests' arrival: one words-ar row per generated token. (How many calls the crowd shared
        // depends on that arrival: A_crowd_that_arrives_together_shares_decoder_calls fixes it.)
        long tokens = together.Where((_, r) => crowd[r].Model == ArFixture.Words).Sum(t => t["samples"]!.AsArray().Sum(s => s!["tokens"]!.AsArray().Count));
        Assert.Equal(tokens, words.RowsComputed - rowsBefore);
        Assert.True(words.UsesCache);
        Assert.False(LoopOf(ArFixture.Digits).UsesCache);
    }

    [Fact]
    public async Task A_crowd_that_arrives_together_shares_decoder_calls()
    {
        // The words-ar part of the crowd above, on a loop of its own over the same decoder with the host's 8 rows per
        // iteration. Over HTTP how many prefills (one call per prompt width) land in one iteration depends on when the
        // requests arrive; here the first request's first call is held until every other request is queued.
        ILoadedModel words = hosts.Iteration.Repository.GetReady(ArFixture.Words);
        ArJob[] jobs = [.. Crowd.Where(m => m.Model == ArFixture.Words).Select(m => ArJob.Create(Parameters(m.Body), words, 64))];
        var gate = new GatedRunner(jobs[0].Decoder.Runner);
        var decoder = new ArDecoder(gate, jobs[0].Decoder.VocabSize);
        using var loop = new ArIterationLoop(decoder, words.Manifest.Name, words.Manifest.Tokens!.MaxLength, 8, 4096, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);
        Task<ArCompleted> first = CompleteAsync(loop.RunAsync(jobs[0] with { Decoder = decoder }, Ct, stream: false));
        await gate.WhenEntered(1);
        Task<ArCompleted>[] rest = [.. jobs.Skip(1).Select(j => CompleteAsync(loop.RunAsync(j with { Decoder = decoder }, Ct, stream: false)))];
        Assert.Equal(jobs.Length, loop.ActiveRequests);
        gate.Open();
        ArCompleted[] done = await Task.WhenAll([first, .. rest]);

        // The crowd shared calls: fewer calls than its requests' own nfe added up (request-level: equal), several rows
        // per call; every row is one generated token, every call went to the decoder.
        long nfe = done.Sum(d => d.DecoderCalls);
        long calls = loop.Calls;
        Assert.True(calls * 3 < nfe * 2, $"{calls} calls for {nfe} request-calls");
        Assert.True(loop.RowsComputed / (double)calls > 2, $"{loop.RowsComputed} rows in {calls} calls");
        Assert.Equal(done.Sum(d => d.Samples.Sum(s => s.Tokens.Length)), loop.RowsComputed);
        Assert.Equal(calls, gate.Calls);
    }

    [Fact]
    public async Task Streamed_log_probs_are_the_same_alone_and_in_a_crowd()
    {
        using HttpClient client = hosts.Iteration.CreateClient();
        var body = new { seed = 9, count = 2, prompt = "ma", temperature = 1.0, stream = true };
        List<double> alone = await StreamedLogProbsAsync(client, body);
        Task<JsonNode>[] others = [.. Mixed.Select(m => client.PostOkAsync(Url(m.Model), m.Body))];
        List<double> crowded = await StreamedLogProbsAsync(client, body);
        await Task.WhenAll(others);

        Assert.Equal(alone.Count, crowded.Count);
        Assert.True(alone.Count >= 4);
        for (int i = 0; i < alone.Count; i++)
        {
            Assert.True(Math.Abs(alone[i] - crowded[i]) <= 1e-4, $"token {i}: {alone[i]} vs {crowded[i]}");
        }
    }

    /// <summary>Six digits-ar jobs (classes 0..5) with prompts of 0, 5, .., 25 tokens: prefixes of six lengths.</summary>
    [Fact]
    public async Task Kv_cache_iterations_hand_the_decoder_pooled_buffers_and_read_what_it_wrote_into_them()
    {
        // words-ar's KV path: pasts, presents and logits of every call live in pooled arrays (no large-object-heap
        // garbage per iteration); the batcher runs each call alone, so the graph writes its outputs into them.
        ILoadedModel words = hosts.Iteration.Repository.GetReady(ArFixture.Words);
        ArJob job = ArJob.Create(new ArParameters { Seed = 11, Count = 5, Prompt = "st", Temperature = 1, MaxNewTokens = 8 }, words, 64);
        var recording = new RecordingRunner(job.Decoder.Runner);
        var decoder = new ArDecoder(recording, job.Decoder.VocabSize);
        using var loop = new ArIterationLoop(decoder, words.Manifest.Name, words.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);
        ArCompleted? pooled = null;
        await foreach (ArEvent e in loop.RunAsync(job with { Decoder = decoder }, Ct, stream: false))
        {
            pooled = e as ArCompleted;
        }

        ArCompleted? reference = null;
        await foreach (ArEvent e in new ArRequestLoop(GenerationTelemetry.None).RunAsync(job, stream: false, Ct))
        {
            reference = e as ArCompleted;
        }

        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(reference!.Samples[i].Tokens, pooled!.Samples[i].Tokens);
            Assert.Equal(reference.Samples[i].LogProbs, pooled.Samples[i].LogProbs, (a, b) => Math.Abs(a - b) <= 1e-4);
        }

        (InferenceRequest Request, InferenceResult Result)[] calls = recording.Snapshot();
        Assert.Equal(pooled!.DecoderCalls, calls.Length);
        Assert.All(calls, c =>
        {
            Assert.Equal(c.Request.Outputs!.Order(StringComparer.Ordinal), c.Request.OutputBuffers!.Keys.Order(StringComparer.Ordinal));
            Assert.All(c.Request.Outputs!, name => Assert.Same(c.Request.OutputBuffers![name], c.Result.Outputs[name]));
        });

        // After the prefill every call feeds pasts (one slot per layer's key and value) packed into the pool's arrays.
        Assert.All(calls.Skip(1), c => Assert.Equal(4, c.Request.Inputs.Count(i => i.Key.StartsWith("past_key_values.", StringComparison.Ordinal) && i.Value.Shape[2] > 0)));
    }

    /// <summary>The real decoder, recording every request and its result.</summary>
    private sealed class RecordingRunner(IGraphRunner inner) : WrappedRunner(inner)
    {
        private readonly List<(InferenceRequest, InferenceResult)> _calls = [];

        public (InferenceRequest Request, InferenceResult Result)[] Snapshot()
        {
            lock (_calls)
            {
                return [.. _calls];
            }
        }

        public override async ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
        {
            InferenceResult result = await Inner.InferAsync(request, cancellationToken);
            lock (_calls)
            {
                _calls.Add((request, result));
            }

            return result;
        }
    }

    private static ArJob[] PromptedDigitsJobs(ILoadedModel digits, ulong seed, int count, int maxNewTokens)
        => [.. Enumerable.Range(0, 6).Select(i => ArJob.Create(new ArParameters
        {
            Seed = seed + (ulong)i, Count = count, ClassLabel = i, Temperature = 1, MaxNewTokens = maxNewTokens,
            PromptTokens = [.. Enumerable.Repeat(3, 5 * i)],
        }, digits, 64))];

    /// <summary>
    /// Fits the planner to calls as good as free next to padded tokens, so every distinct prefix length gets its own
    /// call (with a frozen clock the loop's own zero-length measurements leave the fit alone).
    /// </summary>
    private static void OneCallPerLength(ArIterationLoop loop)
    {
        for (int i = 0; i < 50; i++)
        {
            loop.Planner.Observe(10 + (13 * i), (10 + (13 * i)) * 1e-6);
        }
    }

    [Fact]
    public async Task Recompute_rows_split_into_calls_by_length_give_the_same_tokens_and_log_probs()
    {
        // Prompts of different lengths, so one iteration holds prefixes of several lengths.
        ILoadedModel digits = hosts.Iteration.Repository.GetReady(ArFixture.Digits);
        ArJob[] jobs = PromptedDigitsJobs(digits, seed: 40, count: 2, maxNewTokens: 12);
        ArIterationLoop LoopOf(TimeProvider time) => new(jobs[0].Decoder, digits.Manifest.Name, digits.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, time, NullLogger.Instance);
        static async Task<ArSampleResult[]> Run(ArIterationLoop loop, ArJob job)
        {
            await foreach (ArEvent e in loop.RunAsync(job, Ct, stream: false))
            {
                if (e is ArCompleted done)
                {
                    return done.Samples;
                }
            }

            throw new InvalidOperationException("no result");
        }

        using ArIterationLoop one = LoopOf(TimeProvider.System);
        var alone = new List<ArSampleResult[]>();
        foreach (ArJob job in jobs)
        {
            alone.Add(await Run(one, job));
        }

        // Every distinct prefix length gets its own call. The first job's first call is held until the others are
        // queued, so they all join at the second iteration (else which lengths meet depends on their arrival).
        var gate = new GatedRunner(jobs[0].Decoder.Runner);
        var gated = new ArDecoder(gate, jobs[0].Decoder.VocabSize);
        using var split = new ArIterationLoop(gated, digits.Manifest.Name, digits.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, new FrozenTime(), NullLogger.Instance);
        OneCallPerLength(split);

        Task<ArSampleResult[]> firstJob = Run(split, jobs[0] with { Decoder = gated });
        await gate.WhenEntered(1);
        Task<ArSampleResult[]>[] others = [.. jobs.Skip(1).Select(job => Run(split, job with { Decoder = gated }))];
        gate.Open();
        ArSampleResult[][] together = await Task.WhenAll([firstJob, .. others]);
        for (int j = 0; j < jobs.Length; j++)
        {
            for (int i = 0; i < 2; i++)
            {
                Assert.Equal(alone[j][i].Tokens, together[j][i].Tokens);
                for (int t = 0; t < alone[j][i].LogProbs.Length; t++)
                {
                    Assert.True(Math.Abs(alone[j][i].LogProbs[t] - together[j][i].LogProbs[t]) <= 1e-4, $"job {j} sample {i} token {t}");
                }
            }
        }

        Assert.True(split.Calls > split.Iterations, $"{split.Calls} calls in {split.Iterations} iterations: the lengths were not split");

        // Exactly: job 0 alone in iteration 1, every job from iteration 2 on, one call per distinct sequence length
        // (start token + prompt + tokens so far) in each iteration.
        int[] joined = [1, .. Enumerable.Repeat(2, jobs.Length - 1)];
        int iterations = Enumerable.Range(0, jobs.Length).Max(j => joined[j] + together[j].Max(s => s.Tokens.Length) - 1);
        long expectedCalls = Enumerable.Range(1, iterations).Sum(k => Enumerable.Range(0, jobs.Length)
            .SelectMany(j => together[j].Where(s => k >= joined[j] && k - joined[j] < s.Tokens.Length).Select(_ => 1 + jobs[j].Prompt.Length + (k - joined[j])))
            .Distinct().Count());
        Assert.Equal(iterations, split.Iterations);
        Assert.Equal(expectedCalls, split.Calls);
    }

    [Fact]
    public async Task A_client_that_leaves_stops_costing_compute_within_an_iteration()
    {
        ILoadedModel words = hosts.Iteration.Repository.GetReady(ArFixture.Words);
        ArJob job = ArJob.Create(new ArParameters { Seed = 4, Count = 3, Temperature = 1, MaxNewTokens = 30 }, words, 64);
        var gate = new GatedRunner(job.Decoder.Runner);
        var decoder = new ArDecoder(gate, job.Decoder.VocabSize);
        job = job with { Decoder = decoder };
        using var loop = new ArIterationLoop(decoder, words.Manifest.Name, words.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        int tokens = 0;
        gate.Release(1);                              // the first iteration
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (ArEvent e in loop.RunAsync(job, cts.Token))
            {
                if (e is ArTokenGenerated && ++tokens == 3)
                {
                    // After the first iteration's three rows, while the second iteration's call is in the decoder.
                    await gate.WhenEntered(2);
                    await cts.CancelAsync();
                }
            }
        });

        Assert.Equal(0, loop.ActiveRequests);    // out at once
        gate.Open();

        // A later request runs to its end: by then the loop has passed the iteration after the held one, where it
        // dropped the leaver's rows. The iteration in flight when the client left finished; nothing after it ran.
        ArJob later = ArJob.Create(new ArParameters { Seed = 5, Count = 1, Temperature = 1, MaxNewTokens = 4 }, words, 64) with { Decoder = decoder };
        ArCompleted done = await CompleteAsync(loop.RunAsync(later, Ct, stream: false));
        int laterTokens = done.Samples.Single().Tokens.Length;
        Assert.Equal(2, gate.Calls - done.DecoderCalls);
        Assert.Equal((2 * 3) + laterTokens, loop.RowsComputed);
        Assert.Equal(0, loop.ActiveRequests);
    }

    [Fact]
    public async Task A_light_callers_sequence_is_admitted_at_the_first_boundary_where_rows_free_up_whatever_a_heavy_caller_queued()
    {
        // One row per iteration, so call k is iteration k. The heavy caller's first request (no prompt) holds the row,
        // held in its first call until the heavy caller has queued 39 more and the light caller one request whose
        // prompt "str" makes its first call 4 tokens wide (start + prompt; every other call here is 1 wide).
        ILoadedModel words = hosts.Iteration.Repository.GetReady(ArFixture.Words);
        var widths = new WidthRecorder(words.Graph("decoder")!);
        var gate = new GatedRunner(widths);
        ArJob reference = ArJob.Create(new ArParameters { Seed = 0, Count = 1, Temperature = 1, MaxNewTokens = 6 }, words, 64);
        var decoder = new ArDecoder(gate, reference.Decoder.VocabSize);
        using var loop = new ArIterationLoop(decoder, words.Manifest.Name, words.Manifest.Tokens!.MaxLength, 1, 4096, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);
        Task<ArCompleted> RunAs(string caller, ArParameters parameters)
        {
            using CallerContext.Scope scope = CallerContext.Enter(caller);
            return CompleteAsync(loop.RunAsync(ArJob.Create(parameters, words, 64) with { Decoder = decoder }, Ct, stream: false));
        }

        var heavy = new List<Task<ArCompleted>> { RunAs("key:heavy", new ArParameters { Seed = 0, Count = 1, Temperature = 1, MaxNewTokens = 6 }) };
        await gate.WhenEntered(1);
        heavy.AddRange(Enumerable.Range(1, 39).Select(i => RunAs("key:heavy", new ArParameters { Seed = (ulong)i, Count = 1, Temperature = 1, MaxNewTokens = 6 })));
        Task<ArCompleted> light = RunAs("key:light", new ArParameters { Seed = 99, Count = 1, Prompt = "str", Temperature = 1, MaxNewTokens = 3 });
        Assert.Equal(41, loop.ActiveRequests);
        gate.Open();
        ArCompleted lightDone = await light;
        ArCompleted[] heavyDone = await Task.WhenAll(heavy);

        // The bound: with two callers waiting, the light sequence is among the next two admitted as rows free up:
        // after the heavy caller's first request (its turn was first) and its second, never after all 40 (FIFO).
        int Length(ArCompleted done) => done.Samples.Single().Tokens.Length;
        int[] calls = [.. widths.Widths];
        int admitted = Array.IndexOf(calls, 4);
        Assert.Equal(Length(heavyDone[0]) + Length(heavyDone[1]), admitted);
        Assert.Equal(1, calls.Count(w => w == 4));
        Assert.Equal(heavyDone.Sum(Length) + Length(lightDone), calls.Length);
    }

    /// <summary>Records the width of every call's input_ids (tokens fed per row) in call order.</summary>
    private sealed class WidthRecorder(IGraphRunner inner) : WrappedRunner(inner)
    {
        public System.Collections.Concurrent.ConcurrentQueue<int> Widths { get; } = new();

        public override ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
        {
            Widths.Enqueue((int)request.Inputs["input_ids"].Shape[1]);
            return Inner.InferAsync(request, cancellationToken);
        }
    }

    [Fact]
    public async Task Request_level_mode_runs_no_iteration_loop()
    {
        using HttpClient client = hosts.Request.CreateClient();
        await client.PostOkAsync(Url(ArFixture.Words), new { seed = 1, count = 2, max_new_tokens = 4 });
        IArLoop loop = hosts.Request.Services.GetRequiredService<IArLoop>();
        Assert.Equal(LoopMode.Request, loop.Mode);
        Assert.IsType<ArRequestLoop>(loop);
    }

    [Fact]
    public async Task The_loop_reports_rows_per_iteration_iteration_time_and_active_requests()
    {
        // The host's own loop and meter; the gauge read from inside the first three iterations, on the loop.
        IMeterFactory meters = hosts.Iteration.Services.GetRequiredService<IMeterFactory>();
        using var metrics = new LoopMetricsRecorder(meters, "ar", ArFixture.Words, gaugeDuringIterations: 3);

        using HttpClient client = hosts.Iteration.CreateClient();
        JsonNode response = await client.PostOkAsync(Url(ArFixture.Words), new { seed = 5, count = 6, temperature = 1, max_new_tokens = 10 });

        // Alone on the loop (this class's tests run one at a time), the six sequences are admitted together and each
        // leaves after its last token: iteration k has a row per sample with more than k tokens, in one call.
        int[] lengths = [.. response["samples"]!.AsArray().Select(s => s!["tokens"]!.AsArray().Count)];
        int iterations = lengths.Max();
        await metrics.WhenRecorded(iterations, requests: 1);
        int[] rows = metrics.Rows;
        Assert.Equal([.. Enumerable.Range(0, iterations).Select(k => lengths.Count(n => n > k))], rows);
        Assert.Equal(6, rows[0]);
        Assert.Equal(iterations, response["nfe"]!.GetValue<int>());
        Assert.Equal(rows.Select(r => (long)r), metrics.RowsCounted);
        Assert.Equal(rows.Length, metrics.Seconds.Length);   // their values: Iteration_time_is_measured_on_the_loops_clock

        // In flight during each of the first three iterations, unless that one was its last (it finished first).
        Assert.Equal([.. Enumerable.Range(1, Math.Min(3, iterations)).Select(k => k < iterations ? 1 : 0)], metrics.Active);
        Assert.Contains(1, metrics.Active);

        // Network evaluations: one decoder row per generated token.
        Assert.Equal([lengths.Sum()], metrics.Evaluations);
    }

    [Fact]
    public async Task Iteration_time_is_measured_on_the_loops_clock_from_the_iterations_start_to_its_end()
    {
        // A registry as the host builds it, but on a meter of its own and a fake clock, over the words-ar decoder
        // behind a gate: while iteration k's call is held, the test moves the clock k ms.
        ILoadedModel words = hosts.Iteration.Repository.GetReady(ArFixture.Words);
        var parameters = new ArParameters { Seed = 5, Count = 3, Temperature = 1, MaxNewTokens = 5 };
        ArJob reference = ArJob.Create(parameters, words, 64);
        int[] lengths;
        using (var plain = new ArIterationLoop(reference.Decoder, words.Manifest.Name, words.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance))
        {
            lengths = [.. (await CompleteAsync(plain.RunAsync(reference, Ct, stream: false))).Samples.Select(s => s.Tokens.Length)];
        }

        var time = new FakeTimeProvider();
        await using ServiceProvider services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        IMeterFactory meters = services.GetRequiredService<IMeterFactory>();
        using var metrics = new LoopMetricsRecorder(meters, "ar", ArFixture.Words);
        var telemetry = new GenerationTelemetry(new GenServiceMetrics(meters), NullLogger<GenerationTelemetry>.Instance);
        using var registry = new ArLoopRegistry(Options.Create(new ArLoopOptions()), meters, telemetry, time, NullLoggerFactory.Instance);
        var gate = new GatedRunner(reference.Decoder.Runner);
        ArJob job = ArJob.Create(parameters, words, 64) with { Decoder = new ArDecoder(gate, reference.Decoder.VocabSize) };

        Task<ArCompleted> run = CompleteAsync(registry.RunAsync(job, stream: false, Ct));
        int iterations = lengths.Max();
        for (int k = 1; k <= iterations; k++)
        {
            await gate.WhenEntered(k);
            metrics.ReadGauge();                          // the request is in flight: its call is held
            time.Advance(TimeSpan.FromMilliseconds(k));
            gate.Release(1);
        }

        ArCompleted done = await run;
        await metrics.WhenRecorded(iterations, requests: 1);
        Assert.Equal(lengths, done.Samples.Select(s => s.Tokens.Length));
        Assert.Equal(iterations, gate.Calls);
        Assert.Equal([.. Enumerable.Range(1, iterations).Select(k => TimeSpan.FromMilliseconds(k).TotalSeconds)], metrics.Seconds);
        Assert.Equal([.. Enumerable.Range(0, iterations).Select(k => lengths.Count(n => n > k))], metrics.Rows);
        Assert.Equal(Enumerable.Repeat(1, iterations), metrics.Active);
        Assert.Equal([lengths.Sum()], metrics.Evaluations);
    }

    private ArIterationLoop LoopOf(string model)
    {
        var registry = (ArLoopRegistry)hosts.Iteration.Services.GetRequiredService<IArLoop>();
        IGraphRunner graph = hosts.Iteration.Repository.GetReady(model).Graph("decoder")!;
        return registry.Loops.Single(s => ReferenceEquals(s.Graph, graph));
    }

    private static async Task<List<double>> StreamedLogProbsAsync(HttpClient client, object body)
    {
        using HttpResponseMessage r = await client.PostAsJsonAsync(Url(ArFixture.Words), body, Ct);
        r.EnsureSuccessStatusCode();
        string text = await r.Content.ReadAsStringAsync(Ct);
        var logProbs = new List<(int Sample, int Index, double LogProb)>();
        string? evt = null;
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                evt = line[6..].Trim();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal) && evt == "token")
            {
                JsonNode data = JsonNode.Parse(line[5..])!;
                logProbs.Add((data["sample"]!.GetValue<int>(), data["index"]!.GetValue<int>(), data["token"]!["logprob"]!.GetValue<double>()));
            }
        }

        return [.. logProbs.OrderBy(t => t.Sample).ThenBy(t => t.Index).Select(t => t.LogProb)];
    }

    [Fact]
    public async Task A_failed_decoder_call_fails_the_requests_of_its_iteration_with_the_error_and_the_loop_goes_on()
    {
        // Six requests with prompts of different lengths, planned one call per length (as in the split test), on a
        // runner that fails every call until healed.
        ILoadedModel digits = hosts.Iteration.Repository.GetReady(ArFixture.Digits);
        ArJob[] jobs = PromptedDigitsJobs(digits, seed: 60, count: 1, maxNewTokens: 6);
        var runner = new FailingRunner(jobs[0].Decoder.Runner);
        var decoder = new ArDecoder(runner, jobs[0].Decoder.VocabSize);
        using var loop = new ArIterationLoop(decoder, digits.Manifest.Name, digits.Manifest.Tokens!.MaxLength, 0, 64, null, GenerationTelemetry.None, new FrozenTime(), NullLogger.Instance);
        OneCallPerLength(loop);

        async Task<Exception?> Run(ArJob job)
        {
            try
            {
                await foreach (ArEvent e in loop.RunAsync(job with { Decoder = decoder }, Ct, stream: false))
                {
                }

                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        }

        Exception?[] errors = await Task.WhenAll(jobs.Select(Run));

        // Each request gets the decoder's own error (none hangs, none gets another's result); no iteration completed.
        Assert.All(errors, e => Assert.Contains(FailingRunner.Message, Assert.IsType<InvalidOperationException>(e).Message, StringComparison.Ordinal));
        int calls = runner.Calls;
        Assert.Equal(0, runner.InFlight);
        Assert.Equal(0, loop.RowsComputed);

        // The loop is still there: once the decoder works again, a new request runs to its end, one call per token.
        // No more calls were made for the failed requests: the runner saw exactly that request's 6 calls and rows.
        runner.Heal();
        ArCompleted healed = await CompleteAsync(loop.RunAsync(jobs[0] with { Decoder = decoder }, Ct, stream: false));
        Assert.Equal(6, healed.Samples.Single().Tokens.Length);
        Assert.Equal(6, healed.DecoderCalls);
        Assert.Equal(calls + 6, runner.Calls);
        Assert.Equal(6, loop.RowsComputed);
    }

    /// <summary>Fails every call (after a yield, as a real failure would come) until <see cref="Heal"/>.</summary>
    private sealed class FailingRunner(IGraphRunner inner) : WrappedRunner(inner)
    {
        public const string Message = "injected decoder failure";
        private int _calls;
        private int _inFlight;
        private volatile bool _failing = true;

        public int Calls => Volatile.Read(ref _calls);

        public int InFlight => Volatile.Read(ref _inFlight);

        public void Heal() => _failing = false;

        public override async ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            Interlocked.Increment(ref _inFlight);
            try
            {
                if (_failing)
                {
                    await Task.Yield();
                    throw new InvalidOperationException(Message);
                }

                return await Inner.InferAsync(request, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }
}

/// <summary>A clock that never moves: every elapsed time is zero.</summary>
internal sealed class FrozenTime : TimeProvider
{
    public override long GetTimestamp() => 0;
}
