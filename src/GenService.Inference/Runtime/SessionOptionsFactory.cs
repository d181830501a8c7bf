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
    /// <remarks>The out value <c>provider</c> is "cpu" or "cuda": the provider actually used.</remarks>
    public static SessionOptions Create(InferenceOptions options, string graph, ILogger logger, out string provider)
    {
        SessionOptions? so = null;
        provider = "cpu";
        if (string.Equals(options.ExecutionProvider, "cuda", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
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
        if (options.IntraOpNumThreads > 0)
        {
            so.IntraOpNumThreads = options.IntraOpNumThreads;
        }

        if (options.InterOpNumThreads > 0)
        {
            so.InterOpNumThreads = options.InterOpNumThreads;
            so.ExecutionMode = ExecutionMode.ORT_PARALLEL;
        }

        return so;
    }
}
