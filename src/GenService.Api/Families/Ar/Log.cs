using Microsoft.Extensions.Logging;

namespace GenService.Api.Families.Ar;

/// <summary>Source-generated log messages of the AR scheduler; event ids are stable (4300-4399).</summary>
internal static partial class Log
{
    [LoggerMessage(4300, LogLevel.Information, "AR scheduler for {Graph} started (at most {RowCap} rows per iteration, {Path} path).")]
    public static partial void SchedulerStarted(ILogger logger, string graph, int rowCap, string path);

    [LoggerMessage(4301, LogLevel.Information, "AR scheduler for {Graph} closed: {Reason}")]
    public static partial void SchedulerClosed(ILogger logger, string graph, string reason);

    [LoggerMessage(4302, LogLevel.Warning, "AR iteration of {Graph} failed ({Rows} rows, {Requests} requests); those requests fail.")]
    public static partial void IterationFailed(ILogger logger, string graph, int rows, int requests, Exception exception);

    [LoggerMessage(4303, LogLevel.Debug, "AR request on {Graph} left early after {Calls} decoder calls (cancelled).")]
    public static partial void RequestCancelled(ILogger logger, string graph, int calls);
}
