namespace GenService.Inference.Batching;

/// <summary>The rows of a failed call split by the request that owns them, as the failure paths re-run them apart.</summary>
public static class Owners
{
    /// <summary><paramref name="items"/> split by owner, in the order owners first appear, each owner's items in order.</summary>
    public static List<(TOwner Owner, List<TItem> Items)> Group<TItem, TOwner>(IEnumerable<TItem> items, Func<TItem, TOwner> ownerOf)
        where TOwner : class
    {
        var parts = new List<(TOwner Owner, List<TItem> Items)>();
        foreach (TItem item in items)
        {
            TOwner owner = ownerOf(item);
            int at = parts.FindIndex(p => ReferenceEquals(p.Owner, owner));
            if (at < 0)
            {
                parts.Add((owner, [item]));
            }
            else
            {
                parts[at].Items.Add(item);
            }
        }

        return parts;
    }
}
