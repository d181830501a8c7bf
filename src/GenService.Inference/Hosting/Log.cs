using GenService.Inference.Diagnostics;
using Microsoft.Extensions.Logging;

namespace GenService.Inference.Hosting;

/// <summary>Source-generated log messages of the inference core; event ids in <see cref="LogEvents"/>.</summary>
internal static partial class Log
{
    [LoggerMessage(LogEvents.CudaFallback, LogLevel.Warning, "CUDA execution provider unavailable for {Graph} (device {DeviceId}): {Reason}. Falling back to the CPU; set GenService:FailIfCudaUnavailable=true to fail instead.")]
    public static partial void CudaFallback(ILogger logger, string graph, int deviceId, string reason);

    [LoggerMessage(LogEvents.GraphLoaded, LogLevel.Information, "Loaded graph {Graph} ({Instances} sessions, provider {Provider}) in {ElapsedMs:0} ms.")]
    public static partial void GraphLoaded(ILogger logger, string graph, int instances, string provider, double elapsedMs);

    [LoggerMessage(LogEvents.ModelReady, LogLevel.Information, "Model {Model} version {Version} is ready.")]
    public static partial void ModelReady(ILogger logger, string model, string version);

    [LoggerMessage(LogEvents.ModelFailed, LogLevel.Error, "Model {Model} failed to load: {Reason}")]
    public static partial void ModelFailed(ILogger logger, string model, string reason, Exception? exception);

    [LoggerMessage(LogEvents.ModelRetired, LogLevel.Information, "Model {Model} version {Version} retired; draining before disposal.")]
    public static partial void ModelRetired(ILogger logger, string model, string version);

    [LoggerMessage(LogEvents.ModelUnloaded, LogLevel.Information, "Model {Model} unloaded.")]
    public static partial void ModelUnloaded(ILogger logger, string model);

    [LoggerMessage(LogEvents.Scanning, LogLevel.Information, "Scanning model repository {Path}: {Count} model folders.")]
    public static partial void Scanning(ILogger logger, string path, int count);

    [LoggerMessage(LogEvents.RepositoryMissing, LogLevel.Warning, "Model repository folder {Path} does not exist; no models are served.")]
    public static partial void RepositoryMissing(ILogger logger, string path);

    [LoggerMessage(LogEvents.BatchFailed, LogLevel.Error, "Batch of {Graph} failed ({Rows} rows).")]
    public static partial void BatchFailed(ILogger logger, string graph, int rows, Exception exception);

    [LoggerMessage(LogEvents.BatchRowsIsolated, LogLevel.Warning, "Batch of {Graph} failed on one request's input: {Reason} That request gets a 400; {Completed} other requests of the {Rows}-row batch completed ({Reruns} re-runs).")]
    public static partial void BatchRowsIsolated(ILogger logger, string graph, string reason, int completed, int rows, int reruns);

    [LoggerMessage(LogEvents.ReloadFailed, LogLevel.Warning, "Model {Model} reload failed; still serving version {Version}: {Reason}")]
    public static partial void ReloadFailed(ILogger logger, string model, string version, string reason);

    [LoggerMessage(LogEvents.DisposeFailed, LogLevel.Error, "Disposing retired model {Model} failed.")]
    public static partial void DisposeFailed(ILogger logger, string model, Exception exception);

    [LoggerMessage(LogEvents.WatchStarted, LogLevel.Information, "Watching model repository {Path} for changes (quiet period {QuietMs} ms).")]
    public static partial void WatchStarted(ILogger logger, string path, int quietMs);

    [LoggerMessage(LogEvents.WatchChange, LogLevel.Information, "Model folder {Model} changed on disk: {Action}.")]
    public static partial void WatchChange(ILogger logger, string model, string action);

    [LoggerMessage(LogEvents.WatchFailed, LogLevel.Warning, "Watching model repository {Path} failed: {Reason}; every folder will be checked again.")]
    public static partial void WatchFailed(ILogger logger, string path, string reason, Exception? exception);

    [LoggerMessage(LogEvents.ShutdownNotReady, LogLevel.Information, "Shutting down: readiness is now 503; new requests are refused in {DelaySeconds} s.")]
    public static partial void ShutdownNotReady(ILogger logger, int delaySeconds);

    [LoggerMessage(LogEvents.ShutdownRefusing, LogLevel.Information, "Shutting down: refusing new requests; waiting for {InFlight} in flight.")]
    public static partial void ShutdownRefusing(ILogger logger, int inFlight);

    [LoggerMessage(LogEvents.ShutdownDrained, LogLevel.Information, "Shutting down: every request in flight has finished.")]
    public static partial void ShutdownDrained(ILogger logger);

    [LoggerMessage(LogEvents.ShutdownDrainTimedOut, LogLevel.Warning, "Shutting down: the drain timeout passed with {InFlight} requests still in flight; stopping anyway (GenService:Shutdown:DrainTimeoutSeconds).")]
    public static partial void ShutdownDrainTimedOut(ILogger logger, int inFlight);

    [LoggerMessage(LogEvents.ShutdownTotals, LogLevel.Information, "Stopped: {Taken} requests taken since start, {Finished} finished, {Unfinished} unfinished; {Refused} refused with 503 while shutting down.")]
    public static partial void ShutdownTotals(ILogger logger, long taken, long finished, int unfinished, long refused);
}
