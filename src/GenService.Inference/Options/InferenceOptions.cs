namespace GenService.Inference.Options;

/// <summary>
/// Inference settings, bound from the configuration section "GenService"
/// (environment variables <c>GenService__ExecutionProvider</c> and so on).
/// </summary>
public sealed class InferenceOptions
{
    public const string SectionName = "GenService";

    /// <summary>
    /// The model repository folder. Empty means the <c>models</c> folder beside <c>GenService.sln</c>
    /// (found by walking up from the content root), else <c>models</c> under the working directory.
    /// </summary>
    public string ModelRepository { get; set; } = "";

    /// <summary><c>cpu</c> (default) or <c>cuda</c>.</summary>
    public string ExecutionProvider { get; set; } = "cpu";

    /// <summary>CUDA device ordinal.</summary>
    public int DeviceId { get; set; }

    /// <summary>Extra CUDA provider options (e.g. <c>cudnn_conv_algo_search</c>), passed to OrtCUDAProviderOptions.UpdateOptions.</summary>
    public Dictionary<string, string> CudaProviderOptions { get; set; } = [];

    /// <summary>When CUDA is asked for but unavailable: false falls back to the CPU with a warning, true fails the load.</summary>
    public bool FailIfCudaUnavailable { get; set; }

    /// <summary>
    /// ONNX Runtime intra-op threads per session. 0 = automatic: on the CPU provider, half the host's cores shared
    /// among a graph's sessions, max(1, cores / (2 x instances)), because the service's HTTP work, samplers and
    /// serving loops need the rest; on CUDA, ONNX Runtime's default.
    /// </summary>
    public int IntraOpNumThreads { get; set; }

    /// <summary>
    /// Sessions per graph for every model, overriding each model.json's <c>instances</c>; 0 = use the
    /// model's own value. A deployment setting: the same model folder wants 2 or more sessions on a CPU
    /// host (two batches at once) and usually 1 on a GPU.
    /// </summary>
    public int Instances { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's intra-op worker threads spin (busy-wait) between calls instead of sleeping
    /// (<c>session.intra_op.allow_spinning</c>). Spinning saves a few microseconds per call on an otherwise idle
    /// machine, but a server shares its cores with HTTP work, and spinning workers take CPU time from it.
    /// </summary>
    public bool IntraOpSpinning { get; set; } = true;

    /// <summary>ONNX Runtime inter-op threads per session; 0 = ONNX Runtime's default.</summary>
    public int InterOpNumThreads { get; set; }

    /// <summary>disable | basic | extended | all.</summary>
    public string GraphOptimizationLevel { get; set; } = "all";

    /// <summary>Deadline of a request that sets none, from the moment it is queued.</summary>
    public int DefaultDeadlineMs { get; set; } = 30000;

    /// <summary>Run one batch-1 inference per graph before the model reports ready.</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>Load every model found at startup (in the background).</summary>
    public bool LoadOnStartup { get; set; } = true;

    /// <summary>
    /// After a reload or unload, how long the old version must stay idle (no request in flight) before
    /// its sessions are disposed. A caller in the middle of a multi-step loop (diffusion steps, AR tokens)
    /// leaves short gaps between calls; the grace keeps its runner alive across them.
    /// </summary>
    public int DrainGraceMs { get; set; } = 2000;

    internal static readonly string[] OptimizationLevels = ["disable", "basic", "extended", "all"];

    internal static readonly string[] Providers = ["cpu", "cuda"];

    /// <summary>Finds the default model folder: <c>models</c> next to GenService.sln above <paramref name="startDirectories"/>.</summary>
    internal static string FindDefaultRepository(params string?[] startDirectories)
    {
        foreach (string? start in startDirectories)
        {
            if (string.IsNullOrEmpty(start))
            {
                continue;
            }

            for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "GenService.sln")))
                {
                    return Path.Combine(dir.FullName, "models");
                }
            }
        }

        return Path.GetFullPath("models");
    }
}
