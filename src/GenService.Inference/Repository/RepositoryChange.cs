namespace GenService.Inference.Repository;

/// <summary>What the repository does about a model folder that changed on disk.</summary>
public enum RepositoryChange
{
    /// <summary>Nothing: the folder is not a model folder and nothing is loaded from it, or an admin unloaded the model.</summary>
    None,

    /// <summary>A model folder the repository does not serve yet (new, failed, or back after removal): load it.</summary>
    Load,

    /// <summary>A served model's files changed: load a new version beside the old one, which drains (the reload path).</summary>
    Reload,

    /// <summary>The folder (or its manifest) is gone: unload the model once its requests drain.</summary>
    Unload,
}

/// <summary>The decision table of the repository watcher: folder on disk and repository entry in, action out.</summary>
public static class RepositoryChanges
{
    /// <param name="isModelFolder">The folder exists and holds a model.json or model_index.json.</param>
    /// <param name="entry">The repository's entry for the folder, or null when it has none.</param>
    /// <param name="explicitlyUnloaded">An admin unloaded the model (POST .../unload): the watcher leaves it be.</param>
    public static RepositoryChange Decide(bool isModelFolder, ModelEntry? entry, bool explicitlyUnloaded)
    {
        if (!isModelFolder)
        {
            return entry is null || entry.State == ModelState.Unloaded ? RepositoryChange.None : RepositoryChange.Unload;
        }

        if (explicitlyUnloaded)
        {
            return RepositoryChange.None;
        }

        // Loading: the files may have changed after the running load read them; another load follows it (a slot's
        // loads are serialized), so the model ends up with what is on disk now.
        return entry?.Model is not null ? RepositoryChange.Reload : RepositoryChange.Load;
    }
}
