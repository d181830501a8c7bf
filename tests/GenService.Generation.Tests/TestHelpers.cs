namespace GenService.Generation.Tests;

/// <summary>Small helpers shared by the engine tests.</summary>
internal static class TestHelpers
{
    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }

        return max;
    }
}
