namespace GenService.Inference.Callers;

/// <summary>
/// A shorter deadline the caller asked for (the HTTP header <c>X-Request-Timeout-Ms</c>), as a point in time on the
/// service's <see cref="TimeProvider"/>. Like <see cref="CallerContext"/> it flows with the request's async context, so
/// the batchers and loops read it where the request's work is queued; they take the earlier of it and their configured
/// deadline (<c>GenService:DefaultDeadlineMs</c>), so a caller can shorten its deadline but never lengthen it.
/// </summary>
public static class RequestDeadline
{
    /// <summary>The header a caller sets to shorten its deadline, in milliseconds from arrival.</summary>
    public const string Header = "X-Request-Timeout-Ms";

    private static readonly AsyncLocal<DateTimeOffset?> Deadline = new();

    /// <summary>The deadline the current request asked for; null when it asked for none.</summary>
    public static DateTimeOffset? Current => Deadline.Value;

    /// <summary>The earlier of <paramref name="configured"/> and the current request's own deadline.</summary>
    public static DateTimeOffset Earliest(DateTimeOffset configured)
        => Deadline.Value is { } asked && asked < configured ? asked : configured;

    /// <summary>Makes <paramref name="deadline"/> current until the result is disposed.</summary>
    public static Scope Enter(DateTimeOffset deadline)
    {
        DateTimeOffset? previous = Deadline.Value;
        Deadline.Value = deadline;
        return new Scope(previous);
    }

    /// <summary>Restores the deadline that was current before <see cref="Enter"/>.</summary>
    public readonly struct Scope(DateTimeOffset? previous) : IDisposable
    {
        public void Dispose() => Deadline.Value = previous;
    }
}
