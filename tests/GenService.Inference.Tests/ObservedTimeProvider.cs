using GenService.Testing;
using Microsoft.Extensions.Time.Testing;

namespace GenService.Inference.Tests;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that tells a test when the code under test arms a timer: the moment a batcher's
/// scheduling loop starts waiting out max_queue_delay, or a drain starts its idle grace. From then on nothing
/// happens until the test adds work or advances the clock, so "nothing happened yet" is asserted at an exact point
/// instead of after a real-time sleep that gives the code a chance to misbehave.
/// </summary>
internal sealed class ObservedTimeProvider(DateTimeOffset start) : FakeTimeProvider(start)
{
    private readonly Lock _lock = new();
    private readonly List<(Func<TimeSpan, bool> Match, TaskCompletionSource Armed)> _waiters = [];

    /// <summary>
    /// Completes when a timer is next created with a due time that <paramref name="match"/> accepts. The predicate
    /// runs as the timer is armed, on the arming thread, so it can also check the state the code is in at that point
    /// (e.g. rows still queued). Create the wait before the action that arms the timer.
    /// </summary>
    public async Task WhenTimerArmed(Func<TimeSpan, bool> match)
    {
        var armed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _waiters.Add((match, armed));
        }

        try
        {
            await armed.Task.WaitAsync(AwaitableCount.SafetyTimeout, TestContext.Current.CancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException("No timer with the awaited due time was armed: the code never started that wait.");
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ITimer timer = base.CreateTimer(callback, state, dueTime, period);
        List<TaskCompletionSource>? armed = null;
        lock (_lock)
        {
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Match(dueTime))
                {
                    (armed ??= []).Add(_waiters[i].Armed);
                    _waiters.RemoveAt(i);
                }
            }
        }

        armed?.ForEach(a => a.TrySetResult());
        return timer;
    }
}
