using System.Text.Json.Nodes;
using GenService.Api.Tests.Infrastructure;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;

namespace GenService.Api.Tests.Families;

/// <summary>
/// The /v1 wire contract answers alike on every route: an unknown field is a 400 that names it (an AR request with
/// a misspelt 'temprature' used to run at the default temperature), and an enumeration's bad value is a 400 that
/// lists every allowed value. The routes come from each shipped model's family descriptor, so a new route is covered.
/// </summary>
[Collection(RealModels.Name)]
public sealed class WireContractTests(GenServiceFactory factory)
{
    /// <summary>Every POST route of every shipped model, as GET /v1/models lists them.</summary>
    public static TheoryData<string> Routes()
    {
        var routes = new TheoryData<string>();
        foreach (string folder in Directory.GetDirectories(RepositoryPaths.RealModels).Order(StringComparer.Ordinal))
        {
            if (!File.Exists(Path.Combine(folder, ManifestLoader.FileName)))
            {
                continue;
            }

            ModelManifest manifest = ManifestLoader.Load(folder);
            FamilyDescriptor family = FamilyDescriptor.Of(manifest.Family);
            foreach (FamilyRoute route in family.RoutesFor([.. manifest.Graphs.Keys]))
            {
                routes.Add($"/v1/{family.WireName}/{manifest.Name}/{route.Path}");
            }
        }

        return routes;
    }

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task An_unknown_field_is_a_400_naming_it_on_every_v1_route(string route)
    {
        using HttpClient client = factory.CreateClient();
        (int status, _, string detail, _) = await client.PostProblemAsync(route, """{"temprature": 0.5}""");
        Assert.Equal(400, status);
        Assert.Contains("temprature", detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_family_has_routes_here()
    {
        // The theory above covers what the shipped models offer: every family, and every route of the contract.
        string[] routes = [.. Routes().Select(r => r.Data)];
        foreach (FamilyDescriptor family in FamilyDescriptor.All)
        {
            foreach (FamilyRoute route in family.Routes)
            {
                Assert.Contains(routes, r => r.StartsWith($"/v1/{family.WireName}/", StringComparison.Ordinal) && r.EndsWith("/" + route.Path, StringComparison.Ordinal));
            }
        }
    }

    [Theory]
    [InlineData("/v1/diffusion/digits-ddpm/samples", """{"sampler": "plms", "steps": 2}""", "sampler", "ddpm, ddim, dpm_solver_pp, euler, euler_ancestral, pndm")]
    [InlineData("/v1/diffusion/digits-ddpm/samples", """{"timestep_spacing": "karras", "steps": 2}""", "timestep_spacing", "leading, trailing, linspace")]
    [InlineData("/v1/diffusion/digits-ddpm/interpolations", """{"from": {"seed": 1}, "to": {"seed": 2}, "method": "cubic", "steps": 2}""", "method", "slerp, lerp")]
    [InlineData("/v1/gan/digits-gan/interpolations", """{"from": {"seed": 1}, "to": {"seed": 2}, "method": "cubic"}""", "method", "slerp, lerp")]
    [InlineData("/v1/vae/digits-vae/samples", """{"output": "jpeg"}""", "output", "png, tensor, both")]
    [InlineData("/v1/ar/digits-ar/samples", """{"output": "jpeg", "max_new_tokens": 1}""", "output", "png, tensor, both")]
    public async Task A_bad_enumeration_value_is_a_400_listing_the_allowed_values(string route, string body, string field, string allowed)
    {
        using HttpClient client = factory.CreateClient();
        (int status, string? f, string detail, _) = await client.PostProblemAsync(route, body);
        Assert.Equal(400, status);
        Assert.Equal(field, f);
        Assert.Contains($"must be one of {allowed}; got", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_misspelt_ar_field_is_refused_not_ignored()
    {
        using HttpClient client = factory.CreateClient();
        (int status, _, string detail, JsonNode body) = await client.PostProblemAsync("/v1/ar/words-ar/samples", """{"prompt": "ca", "temprature": 0}""");
        Assert.Equal(400, status);
        Assert.Contains("temprature", detail, StringComparison.Ordinal);
        Assert.NotNull(body["traceId"]);
    }
}
