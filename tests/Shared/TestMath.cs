global using static GenService.Testing.TestMath;

namespace GenService.Testing;

/// <summary>Comparisons of float results shared by the test projects (linked from tests/Shared).</summary>
internal static class TestMath
{
    /// <summary>The largest |a_i - b_i|; the lengths must agree.</summary>
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
