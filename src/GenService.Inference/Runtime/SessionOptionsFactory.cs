using GenService.Inference.Hosting;
using GenService.Inference.Options;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace GenService.Inference.Runtime;

/// <summary>Builds ONNX Runtime <see cref="SessionOptions"/> from <see cref="InferenceOptions"/>.</summary>
internal static class SessionOptionsFactory
{
    /// <summary>
    /// Options for one session. With <c>cuda</c>, tries the CUDA provider; when its libraries are
    /// missing, falls back to the CPU with a warning (or throws when FailIfCudaUnavailable).
    /// </summary>
    /// <param name="options">The service's inference settings.</param>
    /// <param name="graph">model.role, for messages.</param>
    /// <param name="instances">Sessions of this graph (for the automatic CPU thread count).</param>
    /// <param name="logger">Where the CUDA fallback warning goes.</param>
    /// <param name="provider">"cpu" or "cuda": the provider actually used.</param>
    public static SessionOptions Create(InferenceOptions options, string graph, int instances, ILogger logger, out string provider)
    {
        SessionOptions? so = null;
        provider = "cpu";
        if (string.Equals(options.ExecutionProvider, "cuda", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                // The ONNX Runtime environment (its default logger) must exist before the CUDA provider options are
                // created; models load in parallel at startup, and without this the first graphs to load failed with
                // "Attempt to use DefaultLogger but none has been registered" and fell back to the CPU on a GPU host.
                _ = OrtEnv.Instance();
                using var cuda = new OrtCUDAProviderOptions();
                var settings = new Dictionary<string, string>(options.CudaProviderOptions, StringComparer.Ordinal)
                {
                    ["device_id"] = options.DeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
                cuda.UpdateOptions(settings);
                so = SessionOptions.MakeSessionOptionWithCudaProvider(cuda);
                provider = "cuda";
            }
            catch (Exception ex) when (ex is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException or InvalidOperationException)
            {
                if (options.FailIfCudaUnavailable)
                {
                    throw new InvalidOperationException($"CUDA execution provider unavailable for {graph} (device {options.DeviceId}) and GenService:FailIfCudaUnavailable is true: {ex.Message}", ex);
                }

                Log.CudaFallback(logger, graph, options.DeviceId, ex.Message);
            }
        }

        so ??= new SessionOptions();
        so.GraphOptimizationLevel = options.GraphOptimizationLevel.ToLowerInvariant() switch
        {
            "disable" => GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic" => GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended" => GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            _ => GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        if (IntraOpThreads(options.IntraOpNumThreads, provider, instances, Environment.ProcessorCount) is int threads)
        {
            so.IntraOpNumThreads = threads;
        }

        if (!options.IntraOpSpinning)
        {
            so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        }

        if (options.InterOpNumThreads > 0)
        {
            so.InterOpNumThreads = options.InterOpNumThreads;
            so.ExecutionMode = ExecutionMode.ORT_PARALLEL;
        }

        return so;
    }

    /// <summary>
    /// Intra-op threads for one session: the configured count; on the CPU, half the host's cores shared among the
    /// graph's sessions (max(1, cores / (2 x instances))), leaving the other half to the HTTP work, the samplers and
    /// the serving loops that run beside the graph; on CUDA, null (ONNX Runtime's default).
    /// </summary>
    /// <remarks>
    /// ONNX Runtime's own default, a thread per physical core, suits a process that only runs graphs. On the 2-core
    /// dev box it made a loaded 10-step diffusion request 2x slower than one thread, and the v2 route's throughput
    /// lower (docs/benchmarks.md, "Threads and sessions on a CPU host").
    /// </remarks>
    internal static int? IntraOpThreads(int configured, string provider, int instances, int cores) =>
        configured > 0 ? configured
        : provider == "cpu" ? Math.Max(1, cores / (2 * Math.Max(1, instances)))
        : null;
}
