using GenService.Generation.Loops;

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
            queues.Served(requestDone: admitted[r] == items(r));
        }

        return order;
    }

    [Fact]
    public void Callers_take_turns_item_by_item_and_keep_their_own_order()
    {
        var queues = new CallerQueues<string>();
        queues.Enqueue("heavy", "h1");
        queues.Enqueue("heavy", "h2");
        queues.Enqueue("light", "l1");
        queues.Enqueue("other", "o1");
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
        var queues = new CallerQueues<string>();
        for (int i = 0; i < 40; i++)
        {
            queues.Enqueue("heavy", $"h{i}");
        }

        queues.Enqueue("medium", "m0");
        queues.Enqueue("medium", "m1");
        Assert.Equal("h0", queues.Next);
        queues.Served(requestDone: false);  // heavy had a turn: to the back
        queues.Enqueue("light", "l0");      // comes after medium and heavy: at most 2 items before its own

        List<string> order = Drain(queues, _ => 4);
        Assert.Equal(2, order.IndexOf("l0"));
        Assert.Equal(["m0", "h0", "l0"], order[..3]);
    }

    [Fact]
    public void A_request_that_leaves_frees_its_callers_turn_only_when_it_was_the_last()
    {
        var queues = new CallerQueues<string>();
        LinkedListNode<string> a1 = queues.Enqueue("a", "a1");
        LinkedListNode<string> a2 = queues.Enqueue("a", "a2");
        LinkedListNode<string> b1 = queues.Enqueue("b", "b1");

        queues.Remove("a", a1);
        Assert.Equal("a2", queues.Next);    // a keeps its turn with its next request
        queues.Remove("b", b1);
        Assert.Equal(1, queues.Callers);
        queues.Remove("a", a2);
        Assert.Equal(0, queues.Callers);
        Assert.Null(queues.Next);

        // Removing twice, or a node already served, changes nothing.
        queues.Remove("a", a2);
        LinkedListNode<string> c1 = queues.Enqueue("c", "c1");
        queues.Served(requestDone: true);
        queues.Remove("c", c1);
        Assert.Equal(0, queues.Callers);
    }
}
