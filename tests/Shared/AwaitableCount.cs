namespace GenService.Testing;

/// <summary>
/// A count (calls that entered a fake, batches it ran) that a test can await reaching a value: the test then goes on
/// at the exact event instead of polling the count or sleeping and hoping the event came. Thread-safe; waiters are
/// resumed asynchronously, never on the thread that counted. A wait that never ends fails after
/// <see cref="SafetyTimeout"/> (a broken test fails instead of hanging; it is no time bound on the code under test).
/// </summary>
/// <remarks>Compiled into each test project (linked from tests/Shared), so it stays internal to each.</remarks>
internal sealed class AwaitableCount
{
    private readonly Lock _lock = new();
    private readonly List<(int Count, TaskCompletionSource Reached)> _waiters = [];
    private int _value;

    public static TimeSpan SafetyTimeout { get; } = TimeSpan.FromSeconds(30);

    public int Value
    {
        get
        {
            lock (_lock)
            {
                return _value;
            }
        }
    }

    /// <summary>Adds one and completes every waiter whose count is now reached; returns the new value.</summary>
    public int Increment()
    {
        List<TaskCompletionSource>? reached = null;
        int value;
        lock (_lock)
        {
            value = ++_value;
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Count <= value)
                {
                    (reached ??= []).Add(_waiters[i].Reached);
                    _waiters.RemoveAt(i);
                }
            }
        }

        reached?.ForEach(r => r.TrySetResult());
        return value;
    }

    /// <summary>Completes when the count is at least <paramref name="count"/> (at once if it already is).</summary>
    public async Task WhenReached(int count)
    {
        Task reached;
        lock (_lock)
        {
            if (_value >= count)
            {
                return;
            }

            var source = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((count, source));
            reached = source.Task;
        }

        try
        {
            await reached.WaitAsync(SafetyTimeout, TestContext.Current.CancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The count stayed at {Value} while the test waited for {count}: the event never came.");
        }
    }
}
