using GenService.Generation.Ar;

namespace GenService.Generation.Tests.Ar;

public sealed class PaddingPlannerTests
{
    /// <summary>A planner that has seen calls costing exactly <paramref name="a"/> + <paramref name="b"/> · tokens.</summary>
    private static PaddingPlanner Fitted(double a, double b)
    {
        var planner = new PaddingPlanner();
        for (int i = 0; i < 50; i++)
        {
            int tokens = 16 + (37 * i % 997);
            planner.Observe(tokens, a + (b * tokens));
        }

        return planner;
    }

    [Fact]
    public void Recovers_the_fixed_and_per_token_cost_of_the_calls_it_saw()
    {
        PaddingPlanner planner = Fitted(0.002, 1e-6);
        Assert.Equal(0.002, planner.FixedSeconds, 1e-9);
        Assert.Equal(1e-6, planner.TokenSeconds, 1e-12);
    }

    [Fact]
    public void Plans_one_call_until_calls_of_different_sizes_were_measured()
    {
        var planner = new PaddingPlanner();
        for (int i = 0; i < 100; i++)
        {
            planner.Observe(640, 0.001);
        }

        Assert.True(double.IsNaN(planner.TokenSeconds));
        List<List<int>> plan = planner.Plan([5, 60, 1, 33]);
        Assert.Equal([[2, 0, 3, 1]], plan); // one call, rows by length
    }

    [Fact]
    public void Free_calls_give_every_length_its_own_call_and_costly_calls_one_call()
    {
        int[] lengths = [4, 9, 4, 30, 9, 17];
        List<List<int>> free = Fitted(0, 1e-6).Plan(lengths);
        Assert.Equal(4, free.Count);
        Assert.All(free, g => Assert.Single(g.Select(i => lengths[i]).Distinct()));

        List<List<int>> costly = Fitted(1, 1e-6).Plan(lengths);
        Assert.Single(costly);
        Assert.Equal(6, costly[0].Count);
    }

    [Fact]
    public void The_plan_is_the_cheapest_split_of_the_sorted_lengths()
    {
        // Against brute force over every split of 9 sorted lengths into consecutive groups (2^8 of them).
        var random = new Random(7);
        for (int trial = 0; trial < 40; trial++)
        {
            int[] lengths = [.. Enumerable.Range(0, 9).Select(_ => 1 + random.Next(64))];
            double a = random.NextDouble() * 1e-4, b = 1e-6;
            PaddingPlanner planner = Fitted(a, b);
            double Cost(IEnumerable<IEnumerable<int>> groups) => groups.Sum(g => planner.FixedSeconds + (planner.TokenSeconds * g.Count() * g.Max()));

            List<List<int>> plan = planner.Plan(lengths);
            Assert.Equal(lengths.Length, plan.Sum(g => g.Count));
            Assert.Equal(Enumerable.Range(0, lengths.Length), plan.SelectMany(g => g).Order());
            double planned = Cost(plan.Select(g => g.Select(i => lengths[i])));

            int[] sorted = [.. lengths.Order()];
            double best = double.PositiveInfinity;
            for (int mask = 0; mask < 1 << (sorted.Length - 1); mask++)
            {
                var groups = new List<List<int>> { new() { sorted[0] } };
                for (int k = 1; k < sorted.Length; k++)
                {
                    if ((mask & (1 << (k - 1))) != 0)
                    {
                        groups.Add([]);
                    }

                    groups[^1].Add(sorted[k]);
                }

                best = Math.Min(best, Cost(groups));
            }

            Assert.Equal(best, planned, 1e-12);
        }
    }
}
