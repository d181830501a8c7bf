using System.ComponentModel.DataAnnotations;

namespace GenService.Api.Security;

/// <summary>
/// Per-caller request rates, bound from <c>GenService:Limits</c>: a token bucket per caller (the key's name, else the
/// client address) that holds <see cref="Burst"/> requests and refills at <see cref="RequestsPerSecond"/>. Off (0) by
/// default, since a local run or a benchmark must not trip it; docs/http-api.md recommends production values.
/// The work budgets in the same section are <c>GenService.Generation.Budgets.WorkBudgetOptions</c>.
/// </summary>
internal sealed class RateLimitOptions
{
    public const string SectionName = "GenService:Limits";

    /// <summary>Sustained requests per second per caller; 0 turns rate limiting off.</summary>
    [Range(0, 1_000_000)]
    public double RequestsPerSecond { get; set; }

    /// <summary>Requests a caller may send at once after being idle; 0 = one second's worth (at least 1).</summary>
    [Range(0, 1_000_000)]
    public int Burst { get; set; }

    /// <summary>Overrides by key name (<c>GenService:Limits:Keys:&lt;name&gt;:RequestsPerSecond</c>), e.g. a batch client.</summary>
    public Dictionary<string, RateLimitOverride> Keys { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>One key's own rate; a field left unset keeps the section's value.</summary>
internal sealed class RateLimitOverride
{
    [Range(0, 1_000_000)]
    public double? RequestsPerSecond { get; set; }

    [Range(0, 1_000_000)]
    public int? Burst { get; set; }
}
