namespace GenService.Inference.Manifest;

/// <summary>One graph role of a family and its canonical names (the contract's "Roles by family" table).</summary>
/// <param name="Name">The role: the key under <c>graphs</c> in model.json, and the second half of its v2 name.</param>
/// <param name="Required">Every model of the family has it.</param>
/// <param name="Inputs">Canonical inputs every such graph maps.</param>
/// <param name="OptionalInputs">Canonical inputs a graph may map.</param>
/// <param name="Outputs">Canonical outputs every such graph maps.</param>
/// <param name="OptionalOutputs">Canonical outputs a graph may map (a VAE encoder maps one of two forms).</param>
public sealed record FamilyRole(string Name, bool Required, string[] Inputs, string[] OptionalInputs, string[] Outputs, string[]? OptionalOutputs = null)
{
    public string[] OptionalOutputs { get; init; } = OptionalOutputs ?? [];
}

/// <summary>
/// One /v1 route of a family, <c>POST /v1/{family}/{model}/{Path}</c>, offered when the model has <paramref name="Roles"/>
/// and none of <paramref name="UnlessRoles"/>.
/// </summary>
public sealed record FamilyRoute(string Path, string[] Roles, string[]? UnlessRoles = null);

/// <summary>
/// A model family in one place: its wire name (model.json's <c>family</c>, the /v1 route segment, the
/// <c>family</c> field of responses), its graph roles (what the manifest loader checks) and its /v1 routes (what
/// <c>GET /v1/models</c> lists). Adding a route or a role is a change here, not in the loader and the listing apart.
/// </summary>
public sealed class FamilyDescriptor
{
    public static readonly FamilyDescriptor Gan = new(
        ModelFamily.Gan,
        "gan",
        [new("generator", true, ["latent"], ["class_label"], ["sample"])],
        [new("samples", ["generator"]), new("interpolations", ["generator"])]);

    public static readonly FamilyDescriptor Vae = new(
        ModelFamily.Vae,
        "vae",
        [new("decoder", true, ["latent"], ["class_label"], ["sample"]), new("encoder", false, ["sample"], ["class_label"], ["mean", "log_var"])],
        [new("samples", ["decoder"]), new("encode", ["encoder"]), new("reconstruct", ["encoder", "decoder"]), new("interpolations", ["decoder"])]);

    public static readonly FamilyDescriptor Flow = new(
        ModelFamily.Flow,
        "flow",
        [new("inverse", true, ["latent"], ["class_label"], ["sample"]), new("forward", false, ["sample"], ["class_label"], ["latent", "log_det"])],
        [new("samples", ["inverse"]), new("encode", ["forward"]), new("log-likelihood", ["forward"]), new("interpolations", ["inverse"])]);

    public static readonly FamilyDescriptor Diffusion = new(
        ModelFamily.Diffusion,
        "diffusion",
        [
            new("denoiser", true, ["sample", "timestep"], ["class_label", "encoder_hidden_states"], ["prediction"]),

            // A latent text-to-image pipeline (an export folder, docs/model-contract.md): the prompt's encoder, the VAE.
            new("text_encoder", false, ["input_ids"], [], ["hidden_states"]),
            new("vae_decoder", false, ["latent"], [], ["sample"]),
            new("vae_encoder", false, ["sample"], [], [], ["latent_parameters", "latent_sample"]),
        ],
        [new("samples", ["denoiser"]), new("interpolations", ["denoiser"], UnlessRoles: ["text_encoder"])]);

    /// <summary>AR decoders also take the KV-cache names <c>past_key_values.N.key/value</c> -> <c>present.N.key/value</c> (checked by the loader).</summary>
    public static readonly FamilyDescriptor Ar = new(
        ModelFamily.Ar,
        "ar",
        [new("decoder", true, ["input_ids"], ["attention_mask", "position_ids"], ["logits"])],
        [new("samples", ["decoder"]), new("log-likelihood", ["decoder"])]);

    private FamilyDescriptor(ModelFamily family, string wireName, FamilyRole[] roles, FamilyRoute[] routes)
    {
        Family = family;
        WireName = wireName;
        Roles = roles;
        Routes = routes;
    }

    /// <summary>Every family, in the contract's order.</summary>
    public static IReadOnlyList<FamilyDescriptor> All { get; } = [Gan, Vae, Flow, Diffusion, Ar];

    public ModelFamily Family { get; }

    /// <summary>"gan", "vae", "flow", "diffusion" or "ar".</summary>
    public string WireName { get; }

    /// <summary>Roles, required first.</summary>
    public IReadOnlyList<FamilyRole> Roles { get; }

    /// <summary>Routes, in the order <c>GET /v1/models</c> lists them.</summary>
    public IReadOnlyList<FamilyRoute> Routes { get; }

    public static FamilyDescriptor Of(ModelFamily family) => All.First(d => d.Family == family);

    /// <summary>The family of a wire name (exact, lower-case), or null.</summary>
    public static FamilyDescriptor? FromWireName(string? name) => All.FirstOrDefault(d => d.WireName == name);

    public FamilyRole? Role(string name) => Roles.FirstOrDefault(r => r.Name == name);

    /// <summary>The routes a model with these graph roles offers.</summary>
    public IEnumerable<FamilyRoute> RoutesFor(IReadOnlyCollection<string> roles)
        => Routes.Where(r => r.Roles.All(roles.Contains) && !(r.UnlessRoles ?? []).Any(roles.Contains));
}

/// <summary>Shorthands on <see cref="ModelFamily"/>.</summary>
public static class ModelFamilyExtensions
{
    /// <summary>The family's wire name (<see cref="FamilyDescriptor.WireName"/>).</summary>
    public static string WireName(this ModelFamily family) => FamilyDescriptor.Of(family).WireName;
}
