namespace GenService.Sampling.Random;

/// <summary>
/// The random numbers of one sample: a Philox4x32-10 stream keyed by (seed, sample index, stream id), so sample
/// i's noise never depends on how many samples were asked for, how they were batched or what else was running.
/// </summary>
/// <remarks>
/// <code>
///   key     = (seed &amp; 0xffffffff, seed &gt;&gt; 32)
///   counter = (block, streamId, sampleIndex &amp; 0xffffffff, sampleIndex &gt;&gt; 32),  block = 0, 1, 2, ...
///   words   = philox4x32_10(counter, key)[0..3] for block 0, then block 1, ...  (consumed in order)
///   uniform = (w &gt;&gt; 8) * 2^-24                       in [0, 1), exact in float32
///   normal  : Box-Muller on the next two words w1, w2 (float64, rounded to float32):
///             u1 = ((w1 &gt;&gt; 8) + 0.5) * 2^-24 in (0, 1);  u2 = (w2 &gt;&gt; 8) * 2^-24
///             z = sqrt(-2 ln u1) * cos(2 pi u2), then sqrt(-2 ln u1) * sin(2 pi u2) on the next call
/// </code>
/// The sine half is kept for the next normal, so normals drawn one by one or by <see cref="FillNormal"/> in any
/// chunking give the same sequence. docs/reproducibility.md has a numpy version a client can run.
/// Not thread-safe: one stream belongs to one sample of one request.
/// </remarks>
public sealed class NoiseStream
{
    private const double TwoPi = 2 * Math.PI;
    private const double Inv24 = 1.0 / (1 << 24);

    private readonly uint _key0;
    private readonly uint _key1;
    private readonly uint[] _counter = new uint[4];
    private readonly uint[] _words = new uint[4];
    private int _nextWord = 4; // 4 = the current block is used up
    private bool _hasSpare;
    private float _spare;

    public NoiseStream(ulong seed, ulong sampleIndex, uint streamId = 0)
    {
        Seed = seed;
        SampleIndex = sampleIndex;
        StreamId = streamId;
        _key0 = (uint)seed;
        _key1 = (uint)(seed >> 32);
        _counter[0] = 0;
        _counter[1] = streamId;
        _counter[2] = (uint)sampleIndex;
        _counter[3] = (uint)(sampleIndex >> 32);
    }

    public ulong Seed { get; }

    public ulong SampleIndex { get; }

    public uint StreamId { get; }

    /// <summary>The next raw 32-bit word.</summary>
    public uint NextUInt32()
    {
        if (_nextWord == 4)
        {
            Philox4x32.Block(_counter, _key0, _key1, _words);
            // 2^32 blocks (2^34 words) per stream are far more than any sample needs; wrapping would repeat noise.
            _counter[0] = checked(_counter[0] + 1);
            _nextWord = 0;
        }

        return _words[_nextWord++];
    }

    /// <summary>A uniform float in [0, 1): the top 24 bits of a word times 2^-24.</summary>
    public float NextUniform() => (float)((NextUInt32() >> 8) * Inv24);

    /// <summary>A uniform float in (0, 1): ((w &gt;&gt; 8) + 0.5) * 2^-24, never 0 or 1 (safe for logarithms).</summary>
    public float NextUniformOpen() => (float)(((NextUInt32() >> 8) + 0.5) * Inv24);

    /// <summary>A standard normal (Box-Muller; see the type's remarks for the exact recipe).</summary>
    public float NextNormal()
    {
        if (_hasSpare)
        {
            _hasSpare = false;
            return _spare;
        }

        var u1 = ((NextUInt32() >> 8) + 0.5) * Inv24;
        var u2 = (NextUInt32() >> 8) * Inv24;
        var r = Math.Sqrt(-2.0 * Math.Log(u1));
        var angle = TwoPi * u2;
        _spare = (float)(r * Math.Sin(angle));
        _hasSpare = true;
        return (float)(r * Math.Cos(angle));
    }

    /// <summary>Fills <paramref name="destination"/> with standard normals, in stream order.</summary>
    public void FillNormal(Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = NextNormal();
        }
    }

    /// <summary>Fills <paramref name="destination"/> with uniforms in [0, 1), in stream order.</summary>
    public void FillUniform(Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = NextUniform();
        }
    }

    /// <summary>
    /// Standard normals truncated to [-bound, bound] by rejection: the normal sequence with every |z| &gt; bound
    /// skipped (the "truncation trick" of BigGAN/StyleGAN uses bound 2).
    /// </summary>
    public void FillTruncatedNormal(Span<float> destination, float bound)
    {
        // Below ~0.05 the acceptance rate (~4% at 0.05) makes rejection slow; no caller needs it.
        if (!(bound >= 0.05f) || float.IsInfinity(bound))
        {
            throw new ArgumentOutOfRangeException(nameof(bound), bound, "The truncation bound must be finite and at least 0.05.");
        }

        for (var i = 0; i < destination.Length; i++)
        {
            float z;
            do
            {
                z = NextNormal();
            }
            while (Math.Abs(z) > bound);
            destination[i] = z;
        }
    }
}
