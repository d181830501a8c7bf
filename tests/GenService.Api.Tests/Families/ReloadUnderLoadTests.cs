using System.Net;
using System.Text.Json.Nodes;
using GenService.Api.Tests.Families.DiffusionScheduling;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Repository;
using GenService.Testing;
using Microsoft.Extensions.DependencyInjection;
using static GenService.Api.Tests.Families.FamilyTestHelpers;

namespace GenService.Api.Tests.Families;

/// <summary>
/// Reloading models under load fails no request: requests held inside the batcher (tiny-gan) and in the diffusion
/// iteration loop mid-steps (tiny-ddpm) while both models are reloaded, one through the repository route and one
/// through the watcher's path (a file changed, the folder applied), all finish 200 with the samples they give alone.
/// </summary>
public sealed class ReloadUnderLoadTests
{
    private const string Gan = "/v1/gan/tiny-gan/samples";
    private const string Ddpm = "/v1/diffusion/tiny-ddpm/samples";

    private static readonly (string Url, object Body)[] Load =
    [
        (Gan, new { count = 2, seed = 1, class_label = 1, output = "tensor" }),
        (Gan, new { count = 3, seed = 2, class_label = 2, output = "tensor" }),
        (Gan, new { count = 1, seed = 3, output = "tensor" }),
        (Gan, new { count = 2, seed = 4, class_label = 0, output = "tensor" }),
        (Ddpm, new { count = 2, seed = 21, steps = 6, class_label = 1, output = "tensor" }),
        (Ddpm, new { count = 1, seed = 22, steps = 9, sampler = "ddim", output = "tensor" }),
        (Ddpm, new { count = 2, seed = 23, steps = 5, class_label = 3, guidance_scale = 2.0, output = "tensor" }),
    ];

    [Fact]
    public async Task Requests_in_the_batcher_and_mid_steps_in_a_loop_all_succeed_across_reloads()
    {
        string repo = RepositoryPaths.CopyToTemp(RepositoryPaths.TestModels, "tiny-gan");
        RepositoryPaths.CopyFolder(Path.Combine(TinyDiffusionHosts.Models, "tiny-ddpm"), Path.Combine(repo, "tiny-ddpm"));
        try
        {
            await using var factory = new GenServiceFactory(repo, new Dictionary<string, string?>
            {
                ["GenService:Diffusion:Scheduling"] = "iteration",
                ["GenService:Repository:Watch"] = "false",   // this test applies the watcher's path itself
            });
            await factory.InitializeAsync();
            using HttpClient client = factory.CreateClient();

            // Each request alone, for reference.
            var alone = new List<float[][]>();
            foreach ((string url, object body) in Load)
            {
                alone.Add((await client.PostOkAsync(url, body)).AllData());
            }

            // Version 2 of both models, its ONNX calls held by gates.
            ModelRepository models = factory.Services.GetRequiredService<ModelRepository>();
            IReadOnlyDictionary<string, GatedExecutor> gates = await GatedExecutor.LoadGatedAsync(models, Ct, "tiny-gan", "tiny-ddpm");
            GatedExecutor generator = gates["tiny-gan.generator"], denoiser = gates["tiny-ddpm.denoiser"];

            // The first wave. Request 0's batch is held inside ONNX Runtime and request 4 is three steps into the
            // diffusion loop (both known to be on version 2); the others follow at once, into the batcher's queue
            // and the loop, or, if they resolve the model after the reload, onto the new version.
            var first = new Task<JsonNode>[Load.Length];
            first[0] = client.PostOkAsync(Load[0].Url, Load[0].Body);
            await generator.WhenEntered(1);
            first[4] = client.PostOkAsync(Load[4].Url, Load[4].Body);
            await denoiser.WhenEntered(1);
            denoiser.Release(2);
            await denoiser.WhenEntered(3);
            foreach (int r in new[] { 1, 2, 3, 5, 6 })
            {
                first[r] = client.PostOkAsync(Load[r].Url, Load[r].Body);
            }

            // Reload both while they are held: tiny-ddpm through the route, tiny-gan as the watcher does it.
            using HttpResponseMessage reloaded = await client.PostAsync("/v2/repository/models/tiny-ddpm/load", null, Ct);
            Assert.Equal(HttpStatusCode.OK, reloaded.StatusCode);
            string manifest = Path.Combine(repo, "tiny-gan", "model.json");
            await File.WriteAllTextAsync(manifest, (await File.ReadAllTextAsync(manifest, Ct)).Replace("\"version\": \"1\"", "\"version\": \"3\"", StringComparison.Ordinal), Ct);
            Assert.Equal(RepositoryChange.Reload, await models.ApplyChangeAsync("tiny-gan", Ct));
            Assert.Equal("3", models.GetReady("tiny-gan").Manifest.Version);

            // The second wave goes to the new versions and finishes while the first is still held.
            JsonNode[] second = await Task.WhenAll(Load.Select(l => client.PostOkAsync(l.Url, l.Body)));
            Assert.False(first[0].IsCompleted);
            Assert.False(first[4].IsCompleted);

            generator.Open();
            denoiser.Open();
            JsonNode[] firstDone = await Task.WhenAll(first).WaitAsync(AwaitableCount.SafetyTimeout, Ct);
            for (int r = 0; r < Load.Length; r++)
            {
                foreach (JsonNode response in new[] { firstDone[r], second[r] })
                {
                    float[][] got = response.AllData();
                    Assert.Equal(alone[r].Length, got.Length);
                    for (int i = 0; i < got.Length; i++)
                    {
                        Assert.True(MaxAbsDiff(got[i], alone[r][i]) <= 1e-3, $"request {r} sample {i}: {MaxAbsDiff(got[i], alone[r][i])}");
                    }
                }
            }
        }
        finally
        {
            Directory.Delete(repo, recursive: true);
        }
    }
}
