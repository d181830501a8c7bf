using System.Diagnostics.Metrics;
using System.Net.Http.Json;
using GenService.Api.Tests.Families.DiffusionScheduling;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Repository;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

/// <summary>
/// A client that disconnects in the middle of a diffusion request, over HTTP: the server stops computing it within one
/// step (the iteration already inside ONNX Runtime is the last to carry its rows) and counts one cancellation.
/// </summary>
public sealed class DisconnectTests
{
    [Fact]
    public async Task A_client_that_disconnects_mid_diffusion_stops_its_compute_within_one_step_and_counts_one_cancellation()
    {
        string repo = RepositoryPaths.CopyToTemp(TinyDiffusionHosts.Models, "tiny-ddpm");
        try
        {
            await using var factory = new GenServiceFactory(repo, new Dictionary<string, string?>
            {
                ["GenService:Diffusion:Scheduling"] = "iteration",
                ["GenService:Repository:Watch"] = "false",
            });
            await factory.InitializeAsync();
            using HttpClient client = factory.CreateClient();
            using var counters = new RefusalCounters(factory.Services.GetRequiredService<IMeterFactory>());

            // A version of tiny-ddpm whose denoiser calls are held by a gate.
            ModelRepository models = factory.Services.GetRequiredService<ModelRepository>();
            GatedExecutor denoiser = (await GatedExecutor.LoadGatedAsync(models, Ct, "tiny-ddpm"))["tiny-ddpm.denoiser"];

            // One sample, 50 steps: let two steps through, hold the third inside ONNX Runtime, then disconnect.
            using var disconnect = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            Task<HttpResponseMessage> call = client.PostAsJsonAsync(
                "/v1/diffusion/tiny-ddpm/samples", new { count = 1, seed = 5, steps = 50, output = "tensor" }, disconnect.Token);
            await denoiser.WhenEntered(1);
            denoiser.Release(2);
            await denoiser.WhenEntered(3);
            await disconnect.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
            await counters.WhenCancelled(1).WaitAsync(AwaitableCount.SafetyTimeout, Ct);
            Assert.Equal(3, denoiser.Rows);

            // Let everything through and run a 4-step request to its end: by then the loop has passed the held step.
            denoiser.Open();
            await client.PostOkAsync("/v1/diffusion/tiny-ddpm/samples", new { count = 1, seed = 6, steps = 4, output = "tensor" });

            // The held step was the last with the cancelled request's row: 3 of its rows, then the new request's 4.
            Assert.Equal(3 + 4, denoiser.Rows);
            Assert.Equal(1, counters.Cancelled);
            Assert.Equal(0, counters.Rejected("deadline"));
        }
        finally
        {
            Directory.Delete(repo, recursive: true);
        }
    }
}
