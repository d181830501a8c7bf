using GenService.Inference.Hosting;
using GenService.Inference.Options;
using GenService.Testing;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;

namespace GenService.Inference.Tests.Hosting;

/// <summary>The shutdown sequence on a fake clock: not ready at once, work taken during the readiness delay, then refused, then drained or given up on.</summary>
public sealed class GracefulShutdownServiceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly ObservedTimeProvider _time = new(DateTimeOffset.UnixEpoch);
    private readonly ServiceLifecycle _lifecycle = new();
    private readonly ApplicationLifetime _lifetime = new(NullLogger<ApplicationLifetime>.Instance);

    private GracefulShutdownService Create(int delaySeconds) => new(
        _lifecycle,
        _lifetime,
        Microsoft.Extensions.Options.Options.Create(new ShutdownOptions { ReadinessDelaySeconds = delaySeconds, DrainTimeoutSeconds = 25 }),
        _time,
        NullLoggerFactory.Instance);

    [Fact]
    public async Task Not_ready_at_once_work_still_taken_during_the_delay_then_refused_and_the_stop_waits_for_the_work_in_flight()
    {
        GracefulShutdownService service = Create(delaySeconds: 5);
        await service.StartAsync(Ct);
        Assert.False(_lifecycle.Ready);
        _lifecycle.MarkStarted();
        Assert.True(_lifecycle.Ready);
        IDisposable running = _lifecycle.TryEnter()!;

        _lifetime.StopApplication();
        Assert.False(_lifecycle.Ready);
        Assert.True(_lifecycle.ShuttingDown);

        Task delayStarted = _time.WhenTimerArmed(due => due == TimeSpan.FromSeconds(5));
        Task stopping = service.StoppingAsync(CancellationToken.None);
        await delayStarted;

        // During the delay the load balancer has not seen the 503 yet: requests are still taken.
        using (IDisposable? during = _lifecycle.TryEnter())
        {
            Assert.NotNull(during);
        }

        Assert.False(_lifecycle.Refusing.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(5));
        await _lifecycle.Refusing.WaitAsync(AwaitableCount.SafetyTimeout, Ct);
        Assert.Null(_lifecycle.TryEnter());

        // The request that was running keeps the host waiting until it ends.
        Assert.False(stopping.IsCompleted);
        Assert.Equal(1, _lifecycle.InFlight);
        running.Dispose();
        running.Dispose();   // twice is harmless
        await stopping.WaitAsync(AwaitableCount.SafetyTimeout, Ct);
        Assert.Equal(0, _lifecycle.InFlight);

        // The accounting the service logs when it stops: the running request and the one taken during the delay
        // were taken and finished (the double Dispose counts once); the one after the delay was refused.
        Assert.Equal((Taken: 2L, Refused: 1L, Finished: 2L), _lifecycle.Totals);
    }

    [Fact]
    public async Task The_drain_gives_up_when_the_hosts_shutdown_timeout_passes()
    {
        GracefulShutdownService service = Create(delaySeconds: 0);
        await service.StartAsync(Ct);
        _lifecycle.MarkStarted();
        using IDisposable stuck = _lifecycle.TryEnter()!;

        using var timeout = new CancellationTokenSource();
        Task stopping = service.StoppingAsync(timeout.Token);
        await _lifecycle.Refusing.WaitAsync(AwaitableCount.SafetyTimeout, Ct);
        Assert.False(stopping.IsCompleted);

        await timeout.CancelAsync();
        await stopping.WaitAsync(AwaitableCount.SafetyTimeout, Ct);   // ends without throwing: the host goes on stopping
        Assert.Equal(1, _lifecycle.InFlight);
        Assert.Null(_lifecycle.TryEnter());
        Assert.Equal((Taken: 1L, Refused: 1L, Finished: 0L), _lifecycle.Totals);   // logged as 1 unfinished
    }
}
