using Microsoft.Extensions.Logging;

namespace GenService.Api.Families.Diffusion;

/// <summary>Source-generated log messages of the diffusion scheduler; event ids are stable (4200-4299).</summary>
internal static partial class Log
{
    [LoggerMessage(4200, LogLevel.Information, "Diffusion scheduler for {Graph} started (at most {RowCap} rows per iteration).")]
    public static partial void SchedulerStarted(ILogger logger, string graph, int rowCap);

    [LoggerMessage(4201, LogLevel.Information, "Diffusion scheduler for {Graph} closed: {Reason}")]
    public static partial void SchedulerClosed(ILogger logger, string graph, string reason);

    [LoggerMessage(4202, LogLevel.Warning, "Diffusion iteration of {Graph} failed ({Rows} rows, {Requests} requests); those requests fail.")]
    public static partial void IterationFailed(ILogger logger, string graph, int rows, int requests, Exception exception);

    [LoggerMessage(4203, LogLevel.Debug, "Diffusion request on {Graph} left early after {Steps} of {Total} steps (cancelled).")]
    public static partial void RequestCancelled(ILogger logger, string graph, int steps, int total);
}
