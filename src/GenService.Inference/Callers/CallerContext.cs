namespace GenService.Inference.Callers;

/// <summary>
/// Who is asking, for fairness and per-caller limits: the name of the caller's API key, or its client address when it
/// sent none. The HTTP layer enters it once per request; it flows with the request's async context (as
/// <see cref="System.Diagnostics.Activity.Current"/> does), so the batchers and iteration loops read it where a request
/// is submitted without every layer passing it down.
/// </summary>
public static class CallerContext
{
    /// <summary>The caller of work not started by an HTTP request (warm-up, tests, benchmarks).</summary>
    public const string Anonymous = "anonymous";

    private static readonly AsyncLocal<string?> Caller = new();

    /// <summary>The current caller, <see cref="Anonymous"/> outside a request.</summary>
    public static string Current => Caller.Value ?? Anonymous;

    /// <summary>Makes <paramref name="caller"/> current until the result is disposed.</summary>
    public static Scope Enter(string caller)
    {
        ArgumentException.ThrowIfNullOrEmpty(caller);
        string? previous = Caller.Value;
        Caller.Value = caller;
        return new Scope(previous);
    }

    /// <summary>Restores the caller that was current before <see cref="Enter"/>.</summary>
    public readonly struct Scope(string? previous) : IDisposable
    {
        public void Dispose() => Caller.Value = previous;
    }
}
