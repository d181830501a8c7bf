using GenService.Generation.Loops;
using Microsoft.Extensions.Time.Testing;

namespace GenService.Generation.Tests.Loops;

/// <summary>
/// The waiting side of fair admission on its own: callers take turns one item at a time, FIFO within a caller, a caller
/// new to the turns comes last, and a request leaving (cancelled, past its deadline) does not disturb the turns.
/// </summary>
public sealed class CallerQueuesTests
{
    /// <summary>Serves every queued request item by item (<paramref name="items"/> each) and returns the order.</summary>
    private static List<string> Drain(CallerQueues<string> queues, Func<string, int> items)
    {
        var order = new List<string>();
        var admitted = new Dictionary<string, int>();
        while (queues.Next is { } r)
        {
            order.Add(r);
            admitted[r] = admitted.GetValueOrDefault(r) + 1;
            queues.Served(requestDone: admitted[r] == items(r), now: 0);
        }

        return order;
    }

    [Fact]
    public void Callers_take_turns_item_by_item_and_keep_their_own_order()
    {
        var queues = new CallerQueues<string>(TimeProvider.System);
        queues.Enqueue("heavy", "h1", 3);
        queues.Enqueue("heavy", "h2", 1);
        queues.Enqueue("light", "l1", 1);
        queues.Enqueue("other", "o1", 2);
        Assert.Equal(3, queues.Callers);

        // h1 has 3 items, h2 1, l1 1, o1 2.
        List<string> order = Drain(queues, r => r switch { "h1" => 3, "o1" => 2, _ => 1 });
        Assert.Equal(["h1", "l1", "o1", "h1", "o1", "h1", "h2"], order);
        Assert.Equal(0, queues.Callers);
        Assert.Null(queues.Next);
    }

    [Fact]
    public void A_caller_that_arrives_later_waits_at_most_one_turn_of_each_caller_already_waiting()
    {
        var queues = new CallerQueues<string>(TimeProvider.System);
        for (int i = 0; i < 40; i++)
        {
            queues.Enqueue("heavy", $"h{i}", 4);
        }

        queues.Enqueue("medium", "m0", 4);
        queues.Enqueue("medium", "m1", 4);
        Assert.Equal("h0", queues.Next);
        queues.Served(requestDone: false, now: 0);  // heavy had a turn: to the back
        queues.Enqueue("light", "l0", 4);      // comes after medium and heavy: at most 2 items before its own

        List<string> order = Drain(queues, _ => 4);
        Assert.Equal(2, order.IndexOf("l0"));
        Assert.Equal(["m0", "h0", "l0"], order[..3]);
    }

    [Fact]
    public void A_request_that_leaves_frees_its_callers_turn_only_when_it_was_the_last()
    {
        var queues = new CallerQueues<string>(TimeProvider.System);
        LinkedListNode<string> a1 = queues.Enqueue("a", "a1", 1);
        LinkedListNode<string> a2 = queues.Enqueue("a", "a2", 1);
        LinkedListNode<string> b1 = queues.Enqueue("b", "b1", 1);

        queues.Remove("a", a1, 1);
        Assert.Equal("a2", queues.Next);    // a keeps its turn with its next request
        queues.Remove("b", b1, 1);
        Assert.Equal(1, queues.Callers);
        queues.Remove("a", a2, 1);
        Assert.Equal(0, queues.Callers);
        Assert.Null(queues.Next);

        // Removing twice, or a node already served, changes nothing.
        queues.Remove("a", a2, 1);
        LinkedListNode<string> c1 = queues.Enqueue("c", "c1", 1);
        queues.Served(requestDone: true, now: 0);
        queues.Remove("c", c1, 1);
        Assert.Equal(0, queues.Callers);
    }

    [Fact]
    public void A_callers_estimated_wait_is_its_waiting_items_times_the_interval_between_its_recent_admissions()
    {
        var time = new FakeTimeProvider();
        var queues = new CallerQueues<string>(time);
        queues.Enqueue("heavy", "h", 40);
        Assert.Equal(TimeSpan.Zero, queues.EstimatedWait("light"));   // nothing waiting: no wait

        // Admitted at t = 0, 1, ..., 6 s: not yet enough admissions to trust a rate. Then 1 s per item over the last 5 s.
        for (int i = 0; i < CallerQueues<string>.MinRateSamples - 1; i++)
        {
            queues.Served(requestDone: false, time.GetTimestamp());
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Null(queues.EstimatedWait("heavy"));

        // The 8th admission at t = 7 s: 5 admissions in the last 5 s, 32 items still waiting.
        queues.Served(requestDone: false, time.GetTimestamp());
        Assert.Equal(TimeSpan.FromSeconds(32), queues.EstimatedWait("heavy"));

        // The rate is that of the last RateSpan (5 s): 40 more at 0.25 s apart (the loop sped up) replace the 1 s ones.
        queues.Enqueue("heavy", "h2", 40);
        for (int i = 0; i < 40; i++)
        {
            time.Advance(TimeSpan.FromSeconds(0.25));
            queues.Served(requestDone: false, time.GetTimestamp());
        }

        Assert.Equal(TimeSpan.FromSeconds(0.25 * 32), queues.EstimatedWait("heavy"));

        // Another caller's backlog is its own: a caller new to the queue has no measured rate, so it is never shed.
        queues.Enqueue("light", "l", 1);
        Assert.Null(queues.EstimatedWait("light"));

        // A request leaving takes its waiting items out of the estimate.
        LinkedListNode<string> gone = queues.Enqueue("heavy", "h3", 8);
        Assert.Equal(TimeSpan.FromSeconds(0.25 * 40), queues.EstimatedWait("heavy"));
        queues.Remove("heavy", gone, 8);
        Assert.Equal(TimeSpan.FromSeconds(0.25 * 32), queues.EstimatedWait("heavy"));
    }
}
