using System.Collections.Frozen;
using System.Text;

namespace GenService.Generation.TextToImage;

/// <summary>
/// Unicode Normalization Form C (UAX #15) in managed code, for CLIP's prompt cleaning. The service runs with
/// InvariantGlobalization, where <see cref="string.Normalize()"/> returns non-ASCII text unchanged, so "café" typed
/// with a combining accent would tokenize differently from the precomposed one (openai's ftfy.fix_text and Hugging
/// Face's CLIP normalizer both put text in NFC). The data is UnicodeNfc.Tables.cs, written by make_nfc_tables.py
/// from Python's unicodedata, the same data the Python reference tokenizer normalizes with.
/// </summary>
internal static partial class UnicodeNfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly int[] RangeStarts;
    private static readonly int[] RangeEnds;
    private static readonly byte[] RangeClasses;
    private static readonly FrozenDictionary<int, (int First, int Second)> Decomposition;
    private static readonly FrozenDictionary<long, int> Composition;

    // Code points that can make NFC differ from the input: they decompose, have a non-zero combining class, or can
    // be the second half of a composition (Hangul vowels and trailing consonants included). Text without any is NFC.
    private static readonly FrozenSet<int> MaybeChanging;

    static UnicodeNfc()
    {
        ReadOnlySpan<int> ranges = CombiningClassRanges;
        int n = ranges.Length / 3;
        RangeStarts = new int[n];
        RangeEnds = new int[n];
        RangeClasses = new byte[n];
        var maybe = new HashSet<int>();
        for (int i = 0; i < n; i++)
        {
            RangeStarts[i] = ranges[3 * i];
            RangeEnds[i] = ranges[(3 * i) + 1];
            RangeClasses[i] = (byte)ranges[(3 * i) + 2];
            for (int cp = RangeStarts[i]; cp <= RangeEnds[i]; cp++)
            {
                maybe.Add(cp);
            }
        }

        ReadOnlySpan<int> d = Decompositions;
        var decomposition = new Dictionary<int, (int, int)>(d.Length / 4);
        var composition = new Dictionary<long, int>();
        for (int i = 0; i < d.Length; i += 4)
        {
            decomposition[d[i]] = (d[i + 1], d[i + 2]);
            maybe.Add(d[i]);
            if (d[i + 3] == 1)
            {
                composition[Pair(d[i + 1], d[i + 2])] = d[i];
                maybe.Add(d[i + 2]);
            }
        }

        for (int cp = VBase; cp < VBase + VCount; cp++)
        {
            maybe.Add(cp);
        }

        for (int cp = TBase + 1; cp < TBase + TCount; cp++)
        {
            maybe.Add(cp);
        }

        Decomposition = decomposition.ToFrozenDictionary();
        Composition = composition.ToFrozenDictionary();
        MaybeChanging = maybe.ToFrozenSet();
    }

    /// <summary>The NFC form of <paramref name="text"/> (the same instance when it already is NFC, the usual case).</summary>
    public static string Normalize(string text)
    {
        if (IsSurelyNfc(text))
        {
            return text;
        }

        var points = new List<int>(text.Length + 8);
        for (int i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32(text[i], text[i + 1]);
                i++;
            }

            Decompose(cp, points);
        }

        Reorder(points);
        int length = Compose(points);
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < length; i++)
        {
            int cp = points[i];
            if (cp is >= 0xD800 and <= 0xDFFF)
            {
                sb.Append((char)cp); // a lone surrogate stays as it was
            }
            else
            {
                sb.Append(new Rune(cp));
            }
        }

        return sb.ToString();
    }

    /// <summary>Canonical combining class (0 for starters).</summary>
    public static int CombiningClass(int cp)
    {
        if (cp < 0x300)
        {
            return 0;
        }

        int i = Array.BinarySearch(RangeStarts, cp);
        if (i < 0)
        {
            i = ~i - 1;
        }

        return i >= 0 && cp <= RangeEnds[i] ? RangeClasses[i] : 0;
    }

    private static bool IsSurelyNfc(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c < 0x300)
            {
                continue;
            }

            int cp = c;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32(c, text[++i]);
            }

            if (MaybeChanging.Contains(cp) || cp is >= SBase and < SBase + SCount)
            {
                return false;
            }
        }

        return true;
    }

    private static void Decompose(int cp, List<int> into)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            int s = cp - SBase;
            into.Add(LBase + (s / NCount));
            into.Add(VBase + (s % NCount / TCount));
            if (s % TCount != 0)
            {
                into.Add(TBase + (s % TCount));
            }

            return;
        }

        if (Decomposition.TryGetValue(cp, out (int First, int Second) d))
        {
            Decompose(d.First, into);
            if (d.Second >= 0)
            {
                Decompose(d.Second, into);
            }

            return;
        }

        into.Add(cp);
    }

    /// <summary>Canonical ordering: a stable sort by combining class of each run of non-starters.</summary>
    private static void Reorder(List<int> points)
    {
        for (int i = 1; i < points.Count; i++)
        {
            int cc = CombiningClass(points[i]);
            if (cc == 0)
            {
                continue;
            }

            int j = i;
            int cp = points[i];
            while (j > 0 && CombiningClass(points[j - 1]) > cc)
            {
                points[j] = points[j - 1];
                j--;
            }

            points[j] = cp;
        }
    }

    /// <summary>Canonical composition in place (UAX #15's algorithm); returns the new length.</summary>
    private static int Compose(List<int> points)
    {
        if (points.Count == 0)
        {
            return 0;
        }

        int starterPos = 0;
        int starter = points[0];
        int lastClass = CombiningClass(starter);
        if (lastClass != 0)
        {
            lastClass = 256; // a leading non-starter composes with nothing
        }

        int outPos = 1;
        for (int i = 1; i < points.Count; i++)
        {
            int cp = points[i];
            int cc = CombiningClass(cp);
            int composite = ComposePair(starter, cp);
            if (composite >= 0 && (lastClass < cc || lastClass == 0))
            {
                points[starterPos] = composite;
                starter = composite;
                continue;
            }

            if (cc == 0)
            {
                starterPos = outPos;
                starter = cp;
            }

            lastClass = cc;
            points[outPos++] = cp;
        }

        return outPos;
    }

    private static int ComposePair(int first, int second)
    {
        int l = first - LBase;
        if (l is >= 0 and < LCount)
        {
            int v = second - VBase;
            return v is >= 0 and < VCount ? SBase + (((l * VCount) + v) * TCount) : -1;
        }

        int s = first - SBase;
        if (s is >= 0 and < SCount && s % TCount == 0)
        {
            int t = second - TBase;
            return t is > 0 and < TCount ? first + t : -1;
        }

        return Composition.TryGetValue(Pair(first, second), out int c) ? c : -1;
    }

    private static long Pair(int first, int second) => ((long)first << 21) | (uint)second;
}
