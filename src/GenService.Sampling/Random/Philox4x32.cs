namespace GenService.Sampling.Random;

/// <summary>
/// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
/// as easy as 1, 2, 3" (SC'11), as in Random123's <c>philox4x32</c> with 10 rounds. A pure function
/// (counter, key) -> 4 words: no state, so any block of any stream can be computed directly.
/// </summary>
internal static class Philox4x32
{
    private const uint M0 = 0xD2511F53;
    private const uint M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9; // golden ratio
    private const uint W1 = 0xBB67AE85; // sqrt(3) - 1

    /// <summary>Ten rounds over <paramref name="counter"/> (4 words) with <paramref name="key0"/>, <paramref name="key1"/>; writes 4 words.</summary>
    public static void Block(ReadOnlySpan<uint> counter, uint key0, uint key1, Span<uint> output)
    {
        uint c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
        for (var round = 0; round < 10; round++)
        {
            var p0 = (ulong)M0 * c0;
            var p1 = (ulong)M1 * c2;
            var hi0 = (uint)(p0 >> 32);
            var lo0 = (uint)p0;
            var hi1 = (uint)(p1 >> 32);
            var lo1 = (uint)p1;
            c0 = hi1 ^ c1 ^ key0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ key1;
            c3 = lo0;
            key0 += W0;
            key1 += W1;
        }

        output[0] = c0;
        output[1] = c1;
        output[2] = c2;
        output[3] = c3;
    }
}
