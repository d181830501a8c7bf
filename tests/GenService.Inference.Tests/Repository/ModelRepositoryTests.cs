using System.Diagnostics.Metrics;
using GenService.Inference.Batching;
using GenService.Inference.Hosting;
using GenService.Inference.Metrics;
using GenService.Inference.Options;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace GenService.Inference.Tests.Repository;

/// <summary>The repository, session pool and batcher on the real tiny ONNX graphs.</summary>
public sealed class ModelRepositoryTests : IDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly string[] AllModels = ["tiny-gan", "tiny-vae", "tiny-flow", "tiny-diffusion", "tiny-ar"];

    private readonly TestModelFolder _folder = new(AllModels);

    public void Dispose() => _folder.Dispose();

    private ModelRepository Create(int drainGraceMs = 0, bool warmUp = true, TimeProvider? time = null) => new(
        Microsoft.Extensions.Options.Options.Create(new InferenceOptions
        {
            ModelRepository = _folder.Root,
            DrainGraceMs = drainGraceMs,
            WarmUp = warmUp,
            IntraOpNumThreads = 1,
        }),
        new GenServiceMetrics(new TestMeterFactory()),
        time ?? TimeProvider.System,
        NullLoggerFactory.Instance);

    /// <summary>
    /// Disposes a repository that runs on a fake clock. Its dispose gives retiring versions 10 s of that clock, which
    /// the test then advances: a run that failed before an old version retired ends instead of waiting forever.
    /// </summary>
    private static async Task DisposeOnFakeClockAsync(ModelRepository repo, ObservedTimeProvider time)
    {
        Task waits = time.WhenTimerArmed(due => due == TimeSpan.FromSeconds(10));
        ValueTask disposing = repo.DisposeAsync();
        await waits;
        time.Advance(TimeSpan.FromSeconds(10));
        await disposing;
    }

    /// <summary>One row through the runner on its own (batch 1).</summary>
    private static async Task<float[]> Unbatched(IGraphRunner runner, float[] z, long y)
    {
        InferenceResult r = await runner.InferAsync(GanRequest(z, [y], 1), Ct);
        return r.Outputs["img"].AsFloats();
    }

    /// <param name="z">Latents, 4 per row.</param>
    /// <param name="y">Class labels, one per row.</param>
    /// <param name="rows">Rows.</param>
    /// <param name="now">
    /// Leave the batcher at once: on a fake clock a lone request would otherwise wait for max_queue_delay_ms of
    /// that clock to pass.
    /// </param>
    private static InferenceRequest GanRequest(float[] z, long[] y, int rows, bool now = false) => new()
    {
        Inputs = new Dictionary<string, Tensor> { ["z"] = Tensor.FromFloats(z, rows, 4), ["y"] = Tensor.FromLongs(y, rows) },
        DispatchImmediately = now,
    };

    [Fact]
    public async Task Every_committed_test_model_loads_ready_with_its_signature()
    {
        await using ModelRepository repo = Create();
        IReadOnlyList<ModelEntry> entries = await repo.IndexAsync(Ct);

        Assert.Equal(AllModels.Order(StringComparer.Ordinal), entries.Select(e => e.Name));
        Assert.All(entries, e => Assert.True(e.State == ModelState.Ready, $"{e.Name}: {e.State} {e.Error}"));

        GraphSignature gan = repo.GetGraph("tiny-gan.generator").Signature;
        Assert.Equal("z", gan.InputName("latent"));
        Assert.Equal("y", gan.InputName("class_label"));
        Assert.Equal("img", gan.OutputName("sample"));
        Assert.Equal([-1L, 4L], gan.Inputs.Single(i => i.Name == "z").Dims);
        Assert.Equal(TensorElementType.Int64, gan.Inputs.Single(i => i.Name == "y").ElementType);
        Assert.Equal(8, repo.GetGraph("tiny-gan.generator").MaxBatchSize);
        Assert.Equal("tiny-vae.encoder", repo.GetReady("tiny-vae").Graph("encoder")!.V2Name);
        Assert.Equal(100, repo.GetReady("tiny-diffusion").Manifest.Scheduler!.NumTrainTimesteps);
    }

    [Fact]
    public async Task Broken_models_fail_with_a_reason_while_the_good_ones_beside_them_are_ready()
    {
        _folder.Copy("tiny-gan", "missing-onnx");
        File.Delete(_folder.Path_("missing-onnx", "generator.onnx"));
        _folder.Copy("tiny-gan", "corrupt-onnx");
        File.WriteAllBytes(_folder.Path_("corrupt-onnx", "generator.onnx"), [0x08, 0x07, 0xFF, 0x13, 0x37, 0x00, 0x42]);
        _folder.Copy("tiny-gan", "wrong-names");
        _folder.EditManifest("wrong-names", j => j.Replace("\"latent\": \"z\"", "\"latent\": \"noise\"", StringComparison.Ordinal));
        _folder.Copy("tiny-gan", "wrong-rank");
        _folder.EditManifest("wrong-rank", j => j.Replace("\"latent_shape\": [\n    4\n  ]", "\"latent_shape\": [2, 2]", StringComparison.Ordinal));
        _folder.Copy("tiny-gan", "bad-json");
        _folder.EditManifest("bad-json", j => j.Replace("\"family\": \"gan\"", "\"family\": \"gan\",,", StringComparison.Ordinal));
        Directory.CreateDirectory(Path.Combine(_folder.Root, "not-a-model"));

        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);

        ModelEntry Entry(string n) => repo.Find(n) ?? throw new InvalidOperationException(n);
        Assert.Null(repo.Find("not-a-model"));
        Assert.Equal(ModelState.Ready, Entry("tiny-gan").State);
        Assert.Equal(ModelState.Ready, Entry("tiny-ar").State);

        Assert.Equal(ModelState.Failed, Entry("missing-onnx").State);
        Assert.Contains("models/missing-onnx/generator.onnx: file not found (graphs.generator.file)", Entry("missing-onnx").Error, StringComparison.Ordinal);
        Assert.NotNull(Entry("missing-onnx").Manifest);

        Assert.Equal(ModelState.Failed, Entry("corrupt-onnx").State);
        Assert.Contains("models/corrupt-onnx/generator.onnx: ONNX Runtime cannot load the graph", Entry("corrupt-onnx").Error, StringComparison.Ordinal);

        Assert.Equal(ModelState.Failed, Entry("wrong-names").State);
        Assert.Contains("graphs.generator.inputs.latent: the graph has no input 'noise'", Entry("wrong-names").Error, StringComparison.Ordinal);
        Assert.Contains("the graph input 'z' is not mapped", Entry("wrong-names").Error, StringComparison.Ordinal);

        Assert.Equal(ModelState.Failed, Entry("wrong-rank").State);
        Assert.Contains("'z' has rank 2 (shape [-1,4]) but latent needs rank 3", Entry("wrong-rank").Error, StringComparison.Ordinal);

        Assert.Equal(ModelState.Failed, Entry("bad-json").State);
        Assert.Contains("models/bad-json/model.json: not valid JSON", Entry("bad-json").Error, StringComparison.Ordinal);
        Assert.Null(Entry("bad-json").Manifest);

        ModelNotReadyException notReady = Assert.Throws<ModelNotReadyException>(() => repo.GetReady("corrupt-onnx"));
        Assert.Contains("failed to load", notReady.Message, StringComparison.Ordinal);
        Assert.Throws<ModelNotFoundException>(() => repo.GetReady("nope"));
        Assert.Throws<ModelNotFoundException>(() => repo.GetGraph("tiny-gan.discriminator"));
    }

    [Fact]
    public async Task Concurrent_rows_on_a_real_graph_equal_their_unbatched_results()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);
        IGraphRunner gan = repo.GetGraph("tiny-gan.generator");
        var rng = new Random(7);
        float[][] z = [.. Enumerable.Range(0, 64).Select(_ => Enumerable.Range(0, 4).Select(_ => (float)((rng.NextDouble() * 4) - 2)).ToArray())];
        long[] y = [.. Enumerable.Range(0, 64).Select(i => (long)(i % 3))];

        float[][] alone = new float[64][];
        for (int i = 0; i < 64; i++)
        {
            alone[i] = await Unbatched(gan, z[i], y[i]);
        }

        // Invariance against batch-1 runs (numpy reference numbers: the test above).
        Task<InferenceResult>[] tasks = [.. Enumerable.Range(0, 64).Select(i => Task.Run(() => gan.InferAsync(GanRequest(z[i], [y[i]], 1), Ct).AsTask(), Ct))];
        InferenceResult[] batched = await Task.WhenAll(tasks);
        for (int i = 0; i < 64; i++)
        {
            float[] b = batched[i].Outputs["img"].AsFloats();
            Assert.Equal(4, b.Length);
            for (int j = 0; j < 4; j++)
            {
                Assert.True(Math.Abs(b[j] - alone[i][j]) <= 1e-5f, $"row {i} element {j}: {b[j]} vs {alone[i][j]}");
            }
        }

        Assert.Contains(batched, r => r.BatchSize > 1);

        // A 20-row request is split (max 8) and reassembled in order.
        InferenceResult big = await gan.InferAsync(GanRequest([.. z.Take(20).SelectMany(r => r)], [.. y.Take(20)], 20), Ct);
        Assert.Equal([20L, 1, 2, 2], big.Outputs["img"].Shape);
        float[] bigData = big.Outputs["img"].AsFloats();
        for (int i = 0; i < 20; i++)
        {
            for (int j = 0; j < 4; j++)
            {
                Assert.True(Math.Abs(bigData[(i * 4) + j] - alone[i][j]) <= 1e-5f, $"split row {i} element {j}");
            }
        }
    }

    [Fact]
    public async Task The_real_graph_matches_numpy_reference_numbers_batched_and_alone()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(TestModelFolder.Source, "tiny-gan-reference.json")));
        float[] z = [.. doc.RootElement.GetProperty("z").EnumerateArray().Select(e => e.GetSingle())];
        long[] y = [.. doc.RootElement.GetProperty("y").EnumerateArray().Select(e => e.GetInt64())];
        double[] expected = [.. doc.RootElement.GetProperty("img").EnumerateArray().Select(e => e.GetDouble())];
        await using ModelRepository repo = Create();
        await repo.LoadAsync("tiny-gan", Ct);
        IGraphRunner gan = repo.GetGraph("tiny-gan.generator");

        float[] together = (await gan.InferAsync(GanRequest(z, y, y.Length), Ct)).Outputs["img"].AsFloats();
        for (int i = 0; i < y.Length; i++)
        {
            float[] alone = await Unbatched(gan, z[(i * 4)..((i + 1) * 4)], y[i]);
            for (int j = 0; j < 4; j++)
            {
                Assert.True(Math.Abs(together[(i * 4) + j] - expected[(i * 4) + j]) <= 1e-5, $"batched row {i}: {together[(i * 4) + j]} vs {expected[(i * 4) + j]}");
                Assert.True(Math.Abs(alone[j] - expected[(i * 4) + j]) <= 1e-5, $"alone row {i}: {alone[j]} vs {expected[(i * 4) + j]}");
            }
        }
    }

    [Fact]
    public async Task An_empty_kv_cache_with_zero_length_dims_runs_and_the_cache_grows()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);
        IGraphRunner ar = repo.GetGraph("tiny-ar.decoder");
        string ids = ar.Signature.InputName("input_ids")!, pk = ar.Signature.InputName("past_key_values.0.key")!, pv = ar.Signature.InputName("past_key_values.0.value")!;

        InferenceResult first = await ar.InferAsync(new InferenceRequest
        {
            Inputs = new Dictionary<string, Tensor>
            {
                [ids] = Tensor.FromLongs([0, 0], 2, 1),
                [pk] = Tensor.FromFloats([], 2, 2, 0, 3),
                [pv] = Tensor.FromFloats([], 2, 2, 0, 3),
            },
        }, Ct);
        Tensor presentK = first.Outputs[ar.Signature.OutputName("present.0.key")!];
        Assert.Equal([2L, 2, 1, 3], presentK.Shape);
        Assert.Equal([2L, 1, 6], first.Outputs[ar.Signature.OutputName("logits")!].Shape);

        InferenceResult second = await ar.InferAsync(new InferenceRequest
        {
            Inputs = new Dictionary<string, Tensor>
            {
                [ids] = Tensor.FromLongs([3, 4], 2, 1),
                [pk] = presentK,
                [pv] = first.Outputs[ar.Signature.OutputName("present.0.value")!],
            },
            Outputs = [ar.Signature.OutputName("present.0.key")!],
        }, Ct);
        Assert.Equal([2L, 2, 2, 3], second.Outputs.Single().Value.Shape);
    }

    [Fact]
    public async Task A_reload_serves_the_old_version_until_the_new_one_is_ready()
    {
        // The repository (its batchers, the old version's drain grace) runs on a fake clock: the grace passes when the
        // test moves the clock, and the test sees each moment the drain starts waiting it out.
        var time = new ObservedTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        TimeSpan grace = TimeSpan.FromMilliseconds(200);
        ModelRepository repo = Create(drainGraceMs: 200, time: time);
        try
        {
            await ReloadWhileServingAsync(repo, time, grace);
        }
        finally
        {
            await DisposeOnFakeClockAsync(repo, time);
        }
    }

    private async Task ReloadWhileServingAsync(ModelRepository repo, ObservedTimeProvider time, TimeSpan grace)
    {
        await repo.IndexAsync(Ct);
        ILoadedModel v1 = repo.GetReady("tiny-gan");
        IGraphRunner oldRunner = v1.Graph("generator")!;
        Assert.Equal("1", v1.Manifest.Version);

        _folder.EditManifest("tiny-gan", j => j.Replace("\"version\": \"1\"", "\"version\": \"2\"", StringComparison.Ordinal));
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var building = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        repo.BeforeBuild = async (_, ct) =>
        {
            building.TrySetResult();
            await hold.Task.WaitAsync(ct);
        };
        Task<ModelEntry> reload = repo.LoadAsync("tiny-gan", Ct);
        await building.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);

        // Mid-reload: Loading, still serving version 1.
        ModelEntry during = repo.Find("tiny-gan")!;
        Assert.Equal(ModelState.Loading, during.State);
        Assert.Same(v1, during.Model);
        Assert.Same(v1, repo.GetReady("tiny-gan"));
        await oldRunner.InferAsync(GanRequest([0, 0, 0, 0], [1], 1, now: true), Ct);

        // Once swapped, the old version drains in the background: idle, it starts its grace.
        Task graceStarted = time.WhenTimerArmed(due => due == grace);
        hold.SetResult();
        ModelEntry after = await reload.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Equal(ModelState.Ready, after.State);
        Assert.Equal("2", repo.GetReady("tiny-gan").Manifest.Version);
        Assert.NotSame(v1, repo.GetReady("tiny-gan"));
        await graceStarted;

        // A caller that still holds the old runner can finish its work during the drain grace...
        await oldRunner.InferAsync(GanRequest([1, 1, 1, 1], [2], 1, now: true), Ct);

        // ...so when that grace is over the old version was not idle for all of it: the grace starts again.
        Task graceRestarted = time.WhenTimerArmed(due => due == grace);
        time.Advance(grace);
        await graceRestarted;

        // ...and once the old version has been idle for the grace, it is closed.
        time.Advance(grace);
        await repo.RetiredAsync().WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await Assert.ThrowsAsync<ModelNotReadyException>(async () => await oldRunner.InferAsync(GanRequest([1, 1, 1, 1], [2], 1, now: true), Ct));
        await repo.GetReady("tiny-gan").Graph("generator")!.InferAsync(GanRequest([1, 1, 1, 1], [2], 1, now: true), Ct);
    }

    [Fact]
    public async Task A_failed_reload_keeps_the_old_version_serving_and_says_why()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);
        ILoadedModel v1 = repo.GetReady("tiny-gan");
        File.WriteAllBytes(_folder.Path_("tiny-gan", "generator.onnx"), [1, 2, 3]);

        ModelEntry entry = await repo.LoadAsync("tiny-gan", Ct);
        Assert.Equal(ModelState.Ready, entry.State);
        Assert.Same(v1, entry.Model);
        Assert.Contains("reload failed, still serving version 1", entry.Error, StringComparison.Ordinal);
        await v1.Graph("generator")!.InferAsync(GanRequest([0, 0, 0, 0], [0], 1), Ct);
    }

    [Fact]
    public async Task Unload_drains_then_closes_and_index_picks_up_new_and_vanished_folders()
    {
        await using ModelRepository repo = Create();
        await repo.IndexAsync(Ct);
        IGraphRunner runner = repo.GetGraph("tiny-vae.decoder");

        Assert.True(await repo.UnloadAsync("tiny-vae", Ct));
        Assert.Equal(ModelState.Unloaded, repo.Find("tiny-vae")!.State);
        Assert.Throws<ModelNotReadyException>(() => repo.GetReady("tiny-vae"));
        await Assert.ThrowsAsync<ModelNotReadyException>(async () => await runner.InferAsync(new InferenceRequest
        {
            Inputs = new Dictionary<string, Tensor> { ["z"] = Tensor.FromFloats([0, 0, 0], 1, 3) },
        }, Ct));
        Assert.False(await repo.UnloadAsync("nope", Ct));

        // An explicit unload survives a rescan; a new folder appears; a removed one is Unloaded.
        _folder.Copy("tiny-gan", "tiny-gan2");
        Directory.Delete(Path.Combine(_folder.Root, "tiny-flow"), recursive: true);
        await repo.IndexAsync(Ct);
        Assert.Equal(ModelState.Unloaded, repo.Find("tiny-vae")!.State);
        Assert.Equal(ModelState.Ready, repo.Find("tiny-gan2")!.State);
        Assert.Equal(ModelState.Unloaded, repo.Find("tiny-flow")!.State);

        // Load brings it back.
        Assert.Equal(ModelState.Ready, (await repo.LoadAsync("tiny-vae", Ct)).State);
        await Assert.ThrowsAsync<ModelNotFoundException>(() => repo.LoadAsync("../etc", Ct));
    }

    [Fact]
    public async Task The_host_registration_binds_options_and_loads_models_in_the_background()
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["GenService:ModelRepository"] = _folder.Root,
            ["GenService:IntraOpNumThreads"] = "1",
            ["GenService:CudaProviderOptions:cudnn_conv_algo_search"] = "HEURISTIC",
        });
        builder.Services.AddGenServiceInference();
        using IHost host = builder.Build();
        await host.StartAsync(Ct);

        InferenceOptions options = host.Services.GetRequiredService<IOptions<InferenceOptions>>().Value;
        Assert.Equal(_folder.Root, options.ModelRepository);
        Assert.Equal("HEURISTIC", options.CudaProviderOptions["cudnn_conv_algo_search"]);
        IModelRepository repo = host.Services.GetRequiredService<IModelRepository>();

        // StartAsync returned before the models loaded; the background scan it started ends once all are loaded.
        RepositoryStartupService startup = host.Services.GetServices<IHostedService>().OfType<RepositoryStartupService>().Single();
        await startup.Scan.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.Equal(AllModels.Length, repo.List().Count);
        Assert.All(repo.List(), e => Assert.Equal(ModelState.Ready, e.State));
        await host.StopAsync(Ct);
    }

    [Fact]
    public async Task GenService_Instances_overrides_every_model_json_and_is_what_the_model_reports()
    {
        var options = new InferenceOptions { ModelRepository = _folder.Root, Instances = 3, DrainGraceMs = 0 };
        await using var repo = new ModelRepository(Microsoft.Extensions.Options.Options.Create(options), null, TimeProvider.System, NullLoggerFactory.Instance);
        Assert.Equal(ModelState.Ready, (await repo.LoadAsync("tiny-gan", Ct)).State);
        Assert.Equal(3, repo.GetReady("tiny-gan").Manifest.Instances);
        Assert.Equal(3, Assert.IsType<DynamicBatcher>(repo.GetGraph("tiny-gan.generator")).Concurrency);

        // Three sessions really serve: rows sent at once still equal their one-by-one results.
        float[][] zs = [.. Enumerable.Range(0, 6).Select(i => new[] { i * 0.1f, -0.2f, 0.3f, i * -0.05f })];
        var alone = new List<float[]>();
        foreach (float[] z in zs)
        {
            alone.Add(await Unbatched(repo.GetGraph("tiny-gan.generator"), z, 1));
        }

        float[][] together = await Task.WhenAll(zs.Select(z => Unbatched(repo.GetGraph("tiny-gan.generator"), z, 1)));
        for (int i = 0; i < zs.Length; i++)
        {
            Assert.Equal(alone[i], together[i], (a, b) => Math.Abs(a - b) <= 1e-6f);
        }

        // 0 keeps each model's own value (tiny-gan's model.json says 2).
        options.Instances = 0;
        await using var own = new ModelRepository(Microsoft.Extensions.Options.Options.Create(options), null, TimeProvider.System, NullLoggerFactory.Instance);
        await own.LoadAsync("tiny-gan", Ct);
        Assert.Equal(2, own.GetReady("tiny-gan").Manifest.Instances);
    }

    [Theory]
    [InlineData(0, "cpu", 1, 16, 8)] // half the cores for the graph, half for HTTP and the samplers
    [InlineData(0, "cpu", 2, 16, 4)] // several sessions share that half
    [InlineData(0, "cpu", 1, 2, 1)]
    [InlineData(0, "cpu", 4, 2, 1)] // never below one thread
    [InlineData(0, "cuda", 2, 8, null)] // CUDA: ONNX Runtime's default
    [InlineData(3, "cpu", 2, 8, 3)] // an explicit count wins
    public void Intra_op_threads_default_to_half_the_cores_shared_among_a_graphs_cpu_sessions(int configured, string provider, int instances, int cores, int? expected) =>
        Assert.Equal(expected, SessionOptionsFactory.IntraOpThreads(configured, provider, instances, cores));

    [Fact]
    public void Bad_options_fail_at_start()
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["GenService:ModelRepository"] = _folder.Root,
            ["GenService:ExecutionProvider"] = "tpu",
        });
        builder.Services.AddGenServiceInference();
        using IHost host = builder.Build();
        OptionsValidationException ex = Assert.Throws<OptionsValidationException>(() => host.Services.GetRequiredService<IOptions<InferenceOptions>>().Value);
        Assert.Contains("ExecutionProvider", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cuda_requested_without_cuda_falls_back_to_the_cpu_unless_told_to_fail()
    {
        var options = new InferenceOptions { ModelRepository = _folder.Root, ExecutionProvider = "cuda", DrainGraceMs = 0 };
        await using (var repo = new ModelRepository(Microsoft.Extensions.Options.Options.Create(options), null, TimeProvider.System, NullLoggerFactory.Instance))
        {
            ModelEntry e = await repo.LoadAsync("tiny-gan", Ct);
            Assert.True(e.State == ModelState.Ready, e.Error);
        }

        options.FailIfCudaUnavailable = true;
        await using (var repo = new ModelRepository(Microsoft.Extensions.Options.Options.Create(options), null, TimeProvider.System, NullLoggerFactory.Instance))
        {
            ModelEntry e = await repo.LoadAsync("tiny-gan", Ct);
            Assert.Equal(ModelState.Failed, e.State);
            Assert.Contains("FailIfCudaUnavailable", e.Error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Metrics_record_batches_and_queue_depth()
    {
        using var listener = new MeterListener();
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, double>();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == GenServiceMetrics.MeterName)
            {
                l.EnableMeasurementEvents(i);
            }
        };
        listener.SetMeasurementEventCallback<int>((i, v, _, _) => seen.AddOrUpdate(i.Name, v, (_, o) => o + v));
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => seen.AddOrUpdate(i.Name, v, (_, o) => o + v));
        listener.SetMeasurementEventCallback<long>((i, v, _, _) => seen.AddOrUpdate(i.Name, v, (_, o) => o + v));
        listener.Start();

        await using ModelRepository repo = Create();
        await repo.LoadAsync("tiny-gan", Ct);
        await repo.GetGraph("tiny-gan.generator").InferAsync(GanRequest([0, 0, 0, 0, 1, 1, 1, 1], [0, 1], 2), Ct);
        listener.RecordObservableInstruments();

        Assert.Equal(2, seen["genservice.batch.size"]);
        Assert.True(seen.ContainsKey("genservice.compute"));
        Assert.True(seen.ContainsKey("genservice.queue.wait"));
        Assert.True(seen.ContainsKey("genservice.queue.depth"));
    }
}
