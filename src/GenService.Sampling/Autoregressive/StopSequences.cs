namespace GenService.Sampling.Autoregressive;

/// <summary>Stop strings (request field <c>stop</c>): where generated text must be cut.</summary>
public static class StopSequences
{
    /// <summary>The most stop strings a request may give.</summary>
    public const int MaxStops = 4;

    /// <summary>Checks the request field <c>stop</c>: at most 4 non-empty strings of at most 64 characters.</summary>
    public static void Validate(IReadOnlyList<string>? stops)
    {
        if (stops is null)
        {
            return;
        }

        if (stops.Count > MaxStops)
        {
            throw new ArgumentOutOfRangeException("stop", stops.Count, $"stop takes at most {MaxStops} strings.");
        }

        for (var i = 0; i < stops.Count; i++)
        {
            if (string.IsNullOrEmpty(stops[i]) || stops[i].Length > 64)
            {
                throw new ArgumentException($"stop[{i}] must be a non-empty string of at most 64 characters.", "stop");
            }
        }
    }

    /// <summary>
    /// The earliest position in <paramref name="text"/> where any stop string starts (the longest stop wins a tie),
    /// or -1; <paramref name="matchedLength"/> is that stop's length. The output is text[..index].
    /// </summary>
    public static int FindEarliest(string text, IReadOnlyList<string> stops, out int matchedLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(stops);
        var best = -1;
        matchedLength = 0;
        foreach (var stop in stops)
        {
            if (string.IsNullOrEmpty(stop))
            {
                continue;
            }

            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best || (at == best && stop.Length > matchedLength)))
            {
                best = at;
                matchedLength = stop.Length;
            }
        }

        return best;
    }

    /// <summary>
    /// How many trailing characters of <paramref name="text"/> could still be the start of a stop string, so a
    /// streaming response holds them back until the next token decides (the longest such suffix).
    /// </summary>
    public static int PendingSuffixLength(string text, IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(stops);
        var longest = 0;
        foreach (var stop in stops)
        {
            if (string.IsNullOrEmpty(stop))
            {
                continue;
            }

            for (var len = Math.Min(stop.Length - 1, text.Length); len > longest; len--)
            {
                if (text.AsSpan(text.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    longest = len;
                    break;
                }
            }
        }

        return longest;
    }
}
