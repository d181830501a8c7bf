using GenService.Inference.Diagnostics;
using Microsoft.Extensions.Logging;

namespace GenService.Generation;

/// <summary>Source-generated log messages of the generation engine; event ids in <see cref="LogEvents"/>.</summary>
internal static partial class Log
{
    [LoggerMessage(LogEvents.GenerationCompleted, LogLevel.Debug, "{Family} {Model}: {Count} samples, {Evaluations} network evaluations in {Calls} graph calls ({Loop} loop).")]
    public static partial void GenerationCompleted(ILogger logger, string family, string model, int count, long evaluations, int calls, string loop);

    [LoggerMessage(LogEvents.GenerationStopped, LogLevel.Information, "{Family} {Model}: generation stopped early ({Reason}) after {Evaluations} network evaluations.")]
    public static partial void GenerationStopped(ILogger logger, string family, string model, string reason, long evaluations);

    [LoggerMessage(LogEvents.DiffusionLoopStarted, LogLevel.Information, "Diffusion iteration loop for {Graph} started (at most {RowCap} rows per iteration).")]
    public static partial void DiffusionLoopStarted(ILogger logger, string graph, int rowCap);

    [LoggerMessage(LogEvents.DiffusionLoopClosed, LogLevel.Information, "Diffusion iteration loop for {Graph} closed: {Reason}")]
    public static partial void DiffusionLoopClosed(ILogger logger, string graph, string reason);

    [LoggerMessage(LogEvents.DiffusionIterationFailed, LogLevel.Warning, "Diffusion iteration of {Graph} failed ({Rows} rows, {Requests} requests); those requests fail.")]
    public static partial void DiffusionIterationFailed(ILogger logger, string graph, int rows, int requests, Exception exception);

    [LoggerMessage(LogEvents.DiffusionRequestCancelled, LogLevel.Debug, "Diffusion request on {Graph} left early after {Steps} of {Total} steps (cancelled).")]
    public static partial void DiffusionRequestCancelled(ILogger logger, string graph, int steps, int total);

    [LoggerMessage(LogEvents.ArLoopStarted, LogLevel.Information, "AR iteration loop for {Graph} started (at most {RowCap} rows per iteration, {Path} path).")]
    public static partial void ArLoopStarted(ILogger logger, string graph, int rowCap, string path);

    [LoggerMessage(LogEvents.ArLoopClosed, LogLevel.Information, "AR iteration loop for {Graph} closed: {Reason}")]
    public static partial void ArLoopClosed(ILogger logger, string graph, string reason);

    [LoggerMessage(LogEvents.ArIterationFailed, LogLevel.Warning, "AR iteration of {Graph} failed ({Rows} rows, {Requests} requests); those requests fail.")]
    public static partial void ArIterationFailed(ILogger logger, string graph, int rows, int requests, Exception exception);

    [LoggerMessage(LogEvents.ArRequestCancelled, LogLevel.Debug, "AR request on {Graph} left early after {Calls} decoder calls (cancelled).")]
    public static partial void ArRequestCancelled(ILogger logger, string graph, int calls);

    [LoggerMessage(LogEvents.IterationRequestIsolated, LogLevel.Warning, "Iteration of {Graph} failed on one request's input: {Reason} That request gets a 400; {Completed} other requests of the call continue.")]
    public static partial void IterationRequestIsolated(ILogger logger, string graph, string reason, int completed);
}
