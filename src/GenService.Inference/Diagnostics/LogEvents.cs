namespace GenService.Inference.Diagnostics;

/// <summary>
/// Every log event id of the service, in one table (ids are stable: log queries and alerts key on them). Each
/// project's source-generated <c>Log</c> class takes its ids from here; a new message gets the next free id of its range.
/// <code>
///   1000-1099  HTTP layer (GenService.Api): request errors
///   3000-3099  inference core (GenService.Inference): graphs, models, batches
///   4100-4199  generation, all families (GenService.Generation): requests completed or stopped
///   4200-4299  diffusion iteration loop
///   4300-4399  AR iteration loop
/// </code>
/// </summary>
public static class LogEvents
{
    // HTTP layer.
    public const int ClientGone = 1001;
    public const int RequestFailed = 1002;
    public const int Unhandled = 1003;

    // Inference core.
    public const int CudaFallback = 3000;
    public const int GraphLoaded = 3001;
    public const int ModelReady = 3002;
    public const int ModelFailed = 3003;
    public const int ModelRetired = 3004;
    public const int ModelUnloaded = 3005;
    public const int Scanning = 3006;
    public const int RepositoryMissing = 3007;
    public const int BatchFailed = 3008;
    public const int ReloadFailed = 3009;
    public const int DisposeFailed = 3010;
    public const int BatchRowsIsolated = 3011;

    // Inference core: the repository watcher and the shutdown sequence (3040-3049).
    public const int WatchStarted = 3040;
    public const int WatchChange = 3041;
    public const int WatchFailed = 3042;
    public const int ShutdownNotReady = 3043;
    public const int ShutdownRefusing = 3044;
    public const int ShutdownDrained = 3045;
    public const int ShutdownDrainTimedOut = 3046;
    public const int ShutdownTotals = 3047;

    // Generation.
    public const int GenerationCompleted = 4101;
    public const int GenerationStopped = 4102;

    // Diffusion iteration loop.
    public const int DiffusionLoopStarted = 4200;
    public const int DiffusionLoopClosed = 4201;
    public const int DiffusionIterationFailed = 4202;
    public const int DiffusionRequestCancelled = 4203;

    // AR iteration loop.
    public const int ArLoopStarted = 4300;
    public const int ArLoopClosed = 4301;
    public const int ArIterationFailed = 4302;
    public const int ArRequestCancelled = 4303;

    // Iteration loops, all families.
    public const int IterationRequestIsolated = 4150;
}
