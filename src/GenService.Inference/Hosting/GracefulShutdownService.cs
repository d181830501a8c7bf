using GenService.Inference.Options;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Inference.Hosting;

/// <summary>
/// The shutdown sequence (docs/architecture.md, "Shutdown"): on ApplicationStopping the service turns not ready at
/// once; in <see cref="StoppingAsync"/>, which the host runs before stopping any service (the web server included),
/// it waits the readiness delay, refuses new work, and waits for the work in flight, i.e. every queued and running
/// request in the batchers and loops, until it ends or the host's shutdown timeout (the token) passes. Only then do
/// the server and the repository stop, so nothing that was accepted is cut off unless the timeout ran out.
/// </summary>
internal sealed class GracefulShutdownService(
    ServiceLifecycle lifecycle,
    IHostApplicationLifetime lifetime,
    IOptions<ShutdownOptions> options,
    TimeProvider time,
    ILoggerFactory loggerFactory) : IHostedLifecycleService
{
    private readonly ILogger _logger = loggerFactory.CreateLogger("GenService.Inference.Shutdown");
    private CancellationTokenRegistration _stopping;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(NotReady);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        NotReady();
        TimeSpan delay = TimeSpan.FromSeconds(options.Value.ReadinessDelaySeconds);
        try
        {
            if (delay > TimeSpan.Zero && !lifecycle.Refusing.IsCompleted)
            {
                // Load balancers poll readiness every few seconds: keep serving until they have seen it turn 503.
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
            }

            if (!lifecycle.Refusing.IsCompleted)
            {
                lifecycle.RefuseNewWork();
                Log.ShutdownRefusing(_logger, lifecycle.InFlight);
            }

            await lifecycle.WhenDrained().WaitAsync(cancellationToken).ConfigureAwait(false);
            Log.ShutdownDrained(_logger);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            lifecycle.RefuseNewWork();
            Log.ShutdownDrainTimedOut(_logger, lifecycle.InFlight);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        _stopping.Dispose();
        if (lifecycle.ShuttingDown)
        {
            (long taken, long refused, long finished) = lifecycle.Totals;
            Log.ShutdownTotals(_logger, taken, finished, lifecycle.InFlight, refused);
        }

        return Task.CompletedTask;
    }

    private void NotReady()
    {
        if (!lifecycle.ShuttingDown)
        {
            lifecycle.MarkShuttingDown();
            Log.ShutdownNotReady(_logger, options.Value.ReadinessDelaySeconds);
        }
    }
}
