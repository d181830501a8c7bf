using GenService.Inference.Manifest;
using GenService.Inference.Runtime;

namespace GenService.Inference.Repository;

public enum ModelState
{
    Loading,
    Ready,
    Failed,
    Unloaded,
}

/// <summary>
/// A model that loaded: its manifest and one runner per graph role. Runners stay valid while a
/// caller uses them even if the model is reloaded or unloaded meanwhile (the old version drains,
/// then is disposed).
/// </summary>
public interface ILoadedModel
{
    ModelManifest Manifest { get; }

    IReadOnlyDictionary<string, IGraphRunner> Graphs { get; }

    /// <summary>The runner for a role, or null when the model has no such graph.</summary>
    IGraphRunner? Graph(string role);
}

/// <summary>What the repository knows of one model folder: a snapshot, immutable.</summary>
/// <param name="Name">Folder name (= manifest name when valid).</param>
/// <param name="Directory">Absolute folder path.</param>
/// <param name="State">Loading, Ready, Failed or Unloaded.</param>
/// <param name="Manifest">The manifest when it parsed, even if the model then failed to load.</param>
/// <param name="Model">The serving version (may be the old one while a reload is Loading).</param>
/// <param name="Error">Why it is not ready, for a person to act on.</param>
/// <param name="LoadedAt">When the serving version became ready.</param>
public sealed record ModelEntry(
    string Name,
    string Directory,
    ModelState State,
    ModelManifest? Manifest,
    ILoadedModel? Model,
    string? Error,
    DateTimeOffset? LoadedAt);

/// <summary>
/// The model repository: scans the configured folder, validates and loads each model, and serves
/// snapshots. A broken model is Failed with a reason and never stops the others.
/// </summary>
public interface IModelRepository
{
    /// <summary>Every model folder seen, sorted by name.</summary>
    IReadOnlyList<ModelEntry> List();

    /// <summary>The entry for a model, or null.</summary>
    ModelEntry? Find(string name);

    /// <summary>
    /// The ready model, or throws <see cref="ModelNotFoundException"/> / <see cref="ModelNotReadyException"/>.
    /// </summary>
    ILoadedModel GetReady(string name);

    /// <summary>A graph by v2 name "&lt;model&gt;.&lt;role&gt;" of a ready model, or throws as <see cref="GetReady"/>.</summary>
    IGraphRunner GetGraph(string v2Name);

    /// <summary>Rescan the folder: load new models, keep loaded ones, mark vanished ones Unloaded.</summary>
    Task<IReadOnlyList<ModelEntry>> IndexAsync(CancellationToken cancellationToken);

    /// <summary>(Re)load one model from its folder; the old version serves until the new one is ready.</summary>
    Task<ModelEntry> LoadAsync(string name, CancellationToken cancellationToken);

    /// <summary>Unload a model; in-flight requests finish first. False when unknown.</summary>
    Task<bool> UnloadAsync(string name, CancellationToken cancellationToken);
}
