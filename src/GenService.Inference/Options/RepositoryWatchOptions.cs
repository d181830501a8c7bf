using System.ComponentModel.DataAnnotations;

namespace GenService.Inference.Options;

/// <summary>
/// The model repository watcher, bound from <c>GenService:Repository</c> (environment variables
/// <c>GenService__Repository__Watch</c> and so on). With the watcher on, a model folder added, changed or removed is
/// loaded, reloaded or unloaded without <c>POST /v2/repository/index</c>.
/// </summary>
public sealed class RepositoryWatchOptions
{
    public const string SectionName = "GenService:Repository";

    /// <summary>Watch the model folder for changes (on by default).</summary>
    public bool Watch { get; set; } = true;

    /// <summary>
    /// Quiet period per model folder, in milliseconds: a folder is acted on once no file in it has changed for this
    /// long. Copying a large ONNX file writes for seconds and raises an event for every write, so the quiet period is
    /// what turns one copy into one load; a copy that pauses longer than this may load half-copied, fail (the model is
    /// not ready, with its error) and load again once the copy's next writes end.
    /// </summary>
    [Range(0, 600_000)]
    public int WatchDebounceMs { get; set; } = 2000;
}
