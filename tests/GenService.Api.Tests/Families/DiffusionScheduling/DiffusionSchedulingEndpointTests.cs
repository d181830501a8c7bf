using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families.DiffusionScheduling;

/// <summary>Two hosts over the tiny-ddpm test model (ONNX, max_batch_size 8): iteration-level and request-level scheduling.</summary>
public sealed class TinyDiffusionHosts : IAsyncLifetime
{
    public static string Models => Path.Combine(RepositoryPaths.Root, "tests", "GenService.Api.Tests", "Families", "DiffusionScheduling", "TestModels");

    public GenServiceFactory Iteration { get; } = new(Models, new Dictionary<string, string?> { ["GenService:Diffusion:Scheduling"] = "iteration" });

    public GenServiceFactory Request { get; } = new(Models, new Dictionary<string, string?> { ["GenService:Diffusion:Scheduling"] = "request" });

    public async ValueTask InitializeAsync()
    {
        await Iteration.InitializeAsync();
        await Request.InitializeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await Iteration.DisposeAsync();
        await Request.DisposeAsync();
    }
}

/// <summary>
/// Through HTTP and ONNX Runtime: a sample is the same alone or in a crowd of mixed requests (1e-3), both scheduling
/// modes give the same samples (1e-4), SSE progress works in iteration mode, and the loop's metrics report.
/// </summary>
public sealed class DiffusionSchedulingEndpointTests(TinyDiffusionHosts hosts) : IClassFixture<TinyDiffusionHosts>
{
    private const string Url = "/v1/diffusion/tiny-ddpm/samples";

    /// <summary>Mixed samplers, step counts, guidance, classes, eta and img2img strengths.</summary>
    private static readonly object[] Mixed =
    [
        new { seed = 11, count = 3, steps = 40, sampler = "ddim", class_label = 0, output = "tensor" },
        new { seed = 12, count = 2, steps = 10, sampler = "ddpm", class_label = 1, output = "tensor" },
        new { seed = 13, count = 2, steps = 25, sampler = "dpm_solver_pp", class_label = 2, guidance_scale = 2.5, output = "tensor" },
        new { seed = 14, count = 4, steps = 15, sampler = "euler", output = "tensor" },
        new { seed = 15, count = 1, steps = 30, sampler = "euler_ancestral", class_label = 3, output = "tensor" },
        new { seed = 16, count = 2, steps = 20, sampler = "ddim", eta = 0.6, class_label = 1, guidance_scale = 1.8, output = "tensor" },
        new { seed = 17, count = 3, steps = 50, sampler = "ddim", class_label = 2, init = new { data = new float[] { 0.5f, -0.5f, 0.25f, -1, 1, 0, 0, 0.5f, -0.25f, 0.75f, -0.75f, 0, 0.1f, -0.1f, 0.9f, -0.9f } }, strength = 0.45, output = "tensor" },
    ];

    [Fact]
    public async Task Samples_are_the_same_alone_or_in_a_crowd_of_mixed_requests()
    {
        using HttpClient client = hosts.Iteration.CreateClient();
        var alone = new List<float[][]>();
        foreach (object body in Mixed)
        {
            alone.Add((await client.PostOkAsync(Url, body)).AllData());
        }

        // Twice the mix at once, so more rows than one iteration holds (max_batch_size 8): samples wait, join and leave.
        JsonNode[] crowd = await Task.WhenAll(Mixed.Concat(Mixed).Select(b => client.PostOkAsync(Url, b)));
        for (int r = 0; r < crowd.Length; r++)
        {
            float[][] got = crowd[r].AllData();
            float[][] want = alone[r % Mixed.Length];
            Assert.Equal(want.Length, got.Length);
            for (int i = 0; i < got.Length; i++)
            {
                Assert.True(MaxAbsDiff(got[i], want[i]) <= 1e-3, $"request {r % Mixed.Length} sample {i}: {MaxAbsDiff(got[i], want[i])}");
            }
        }
    }

    [Fact]
    public async Task Iteration_and_request_scheduling_give_the_same_samples()
    {
        using HttpClient iteration = hosts.Iteration.CreateClient();
        using HttpClient request = hosts.Request.CreateClient();
        JsonNode[] a = await Task.WhenAll(Mixed.Select(b => iteration.PostOkAsync(Url, b)));
        JsonNode[] b = await Task.WhenAll(Mixed.Select(b => request.PostOkAsync(Url, b)));
        for (int r = 0; r < Mixed.Length; r++)
        {
            Assert.Equal(b[r]["nfe"]!.GetValue<int>(), a[r]["nfe"]!.GetValue<int>());
            float[][] x = a[r].AllData(), y = b[r].AllData();
            for (int i = 0; i < x.Length; i++)
            {
                Assert.True(MaxAbsDiff(x[i], y[i]) <= 1e-4, $"request {r} sample {i}: {MaxAbsDiff(x[i], y[i])}");
            }
        }
    }

    [Fact]
    public async Task Streaming_sends_a_progress_event_per_step_in_iteration_mode()
    {
        using HttpClient client = hosts.Iteration.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, Url) { Content = System.Net.Http.Json.JsonContent.Create(new { seed = 3, count = 12, class_label = 1, steps = 6 }) };
        request.Headers.Accept.ParseAdd("text/event-stream");
        HttpResponseMessage response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        string[] events = [.. text.Split('\n').Where(l => l.StartsWith("event:", StringComparison.Ordinal)).Select(l => l[6..].Trim())];

        // 12 samples > 8 rows per iteration: progress k is sent once every sample has done step k.
        Assert.Equal([.. Enumerable.Repeat("progress", 6), "result"], events);
        int[] steps = [.. text.Split('\n').Where(l => l.StartsWith("data:", StringComparison.Ordinal)).SkipLast(1).Select(l => JsonNode.Parse(l[5..])!["step"]!.GetValue<int>())];
        Assert.Equal([1, 2, 3, 4, 5, 6], steps);
    }

    [Fact]
    public async Task The_scheduler_reports_rows_per_iteration_iteration_time_and_active_requests()
    {
        // The host's own loop and meter. The gauge is read from inside the first three iterations (on the loop, while
        // the request is surely in flight): polling from the test would race a request that finishes in a few ms.
        IMeterFactory meters = hosts.Iteration.Services.GetRequiredService<IMeterFactory>();
        using var metrics = new LoopMetricsRecorder(meters, "diffusion", "tiny-ddpm", gaugeDuringIterations: 3);

        using HttpClient client = hosts.Iteration.CreateClient();
        JsonNode response = await client.PostOkAsync(Url, new { seed = 5, count = 6, steps = 100, class_label = 0, output = "tensor" });

        // Alone on the loop (this class's tests run one at a time): 100 iterations of the six unguided samples' rows.
        Assert.Equal(100, response["nfe"]!.GetValue<int>());
        await metrics.WhenRecorded(iterations: 100, requests: 1);
        int[] rows = metrics.Rows;
        Assert.Equal(Enumerable.Repeat(6, 100), rows);
        Assert.Equal(rows.Select(r => (long)r), metrics.RowsCounted);
        Assert.Equal(rows.Length, metrics.Seconds.Length);   // their values: DiffusionLoopRegistryTests, on a fake clock
        Assert.Equal([1, 1, 1], metrics.Active);

        // Network evaluations: each sample's denoiser rows, summed.
        Assert.Equal([6L * 100], metrics.Evaluations);
    }
}
