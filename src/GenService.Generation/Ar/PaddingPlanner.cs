namespace GenService.Generation.Ar;

/// <summary>
/// Splits a recompute iteration (right-padded prefixes, no KV cache) into decoder calls by prefix length. One call pads
/// every row to the longest prefix: with sequences spread over lengths 1..L that computes about twice the tokens it
/// needs; one call per length pays the fixed cost of a call (packing, batcher hops, graph launch) many times. The
/// planner takes the split with the least predicted time under a cost model fitted to this decoder's own calls:
/// <code>
///   seconds(call) ≈ a + b · rows · width        (a: fixed cost per call, b: cost per padded token)
///   lengths sorted ascending; best[i] = min over j &lt; i of best[j] + a + b · (i − j) · length[i − 1]
/// </code>
/// (a group of consecutive sorted lengths pads to its last, longest one; O(n²) for n rows, n ≤ max_batch_size).
/// The fit is a least-squares line over an exponentially weighted window of recent calls; until it has seen calls of
/// different sizes it plans one call, as before. Which calls a row shares never changes its numbers (causal attention
/// and the mask keep padding out), so the plan is a speed choice only.
/// </summary>
internal sealed class PaddingPlanner
{
    // About the last 200 calls count: enough to follow a load change, enough to average out a noisy host.
    private const double Decay = 0.995;
    private const int MinCalls = 8;

    private double _w, _sx, _sy, _sxx, _sxy;
    private int _calls;

    /// <summary>Fixed seconds per call of the current fit (NaN before one).</summary>
    public double FixedSeconds { get; private set; } = double.NaN;

    /// <summary>Seconds per padded token of the current fit (NaN before one).</summary>
    public double TokenSeconds { get; private set; } = double.NaN;

    /// <summary>Records one call: <paramref name="paddedTokens"/> = rows × width, and its wall time.</summary>
    public void Observe(int paddedTokens, double seconds)
    {
        if (!(seconds > 0) || paddedTokens <= 0)
        {
            return;
        }

        double x = paddedTokens;
        _w = (_w * Decay) + 1;
        _sx = (_sx * Decay) + x;
        _sy = (_sy * Decay) + seconds;
        _sxx = (_sxx * Decay) + (x * x);
        _sxy = (_sxy * Decay) + (x * seconds);
        _calls++;
        double varX = (_sxx / _w) - ((_sx / _w) * (_sx / _w));
        if (_calls < MinCalls || varX <= 1e-9 * (_sxx / _w))
        {
            return; // every call the same size so far: the line is not determined
        }

        double b = ((_sxy / _w) - ((_sx / _w) * (_sy / _w))) / varX;
        double a = (_sy / _w) - (b * (_sx / _w));
        if (b > 0)
        {
            TokenSeconds = b;
            FixedSeconds = Math.Max(0, a);
        }
    }

    /// <summary>
    /// The calls for rows of these prefix lengths: each group lists indexes into <paramref name="lengths"/>. Without
    /// a fit, one group holding every row.
    /// </summary>
    public List<List<int>> Plan(IReadOnlyList<int> lengths)
    {
        int n = lengths.Count;
        int[] order = [.. Enumerable.Range(0, n).OrderBy(i => lengths[i])];
        if (n <= 1 || double.IsNaN(TokenSeconds))
        {
            return [[.. order]];
        }

        // Costs in units of one padded token: a call costs ratio + rows × width.
        double ratio = FixedSeconds / TokenSeconds;
        var best = new double[n + 1];
        var cut = new int[n + 1];
        for (int i = 1; i <= n; i++)
        {
            best[i] = double.PositiveInfinity;
            int width = lengths[order[i - 1]];
            for (int j = 0; j < i; j++)
            {
                double cost = best[j] + ratio + ((double)(i - j) * width);
                if (cost < best[i])
                {
                    best[i] = cost;
                    cut[i] = j;
                }
            }
        }

        var groups = new List<List<int>>();
        for (int i = n; i > 0; i = cut[i])
        {
            groups.Add([.. order[cut[i]..i]]);
        }

        groups.Reverse();
        return groups;
    }
}
