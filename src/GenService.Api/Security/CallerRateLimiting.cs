using GenService.Api.Errors;
using System.Threading.RateLimiting;
using GenService.Api.Hosting;
using GenService.Inference.Metrics;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace GenService.Api.Security;

/// <summary>
/// ASP.NET Core's rate limiter, partitioned by caller (<see cref="GenServiceHostingExtensions.CallerOf"/>: the key's
/// name, else the client address) with a token bucket per caller (<see cref="RateLimitOptions"/>). Health probes,
/// /metrics and /swagger are never limited: a scraper or a probe must not be refused because a client is busy.
/// A rejection is a 429 with Retry-After in the route's error shape, counted as
/// <c>genservice_rejected_total{reason="rate_limited"}</c>.
/// </summary>
internal static class CallerRateLimiting
{
    public static IServiceCollection AddCallerRateLimiting(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>()
            .BindConfiguration(RateLimitOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddRateLimiter(_ => { });
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<RateLimitOptions>>((o, limits) =>
        {
            RateLimitOptions settings = limits.Value;
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context => Partition(context, settings));
            o.OnRejected = OnRejectedAsync;
        });
        return services;
    }

    /// <summary>Paths that are never limited: probes, metrics, the API documentation.</summary>
    internal static bool IsExempt(PathString path) =>
        path.StartsWithSegments("/v2/health", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/metrics", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/swagger", StringComparison.OrdinalIgnoreCase)
        || path == "/";

    private static RateLimitPartition<string> Partition(HttpContext context, RateLimitOptions settings)
    {
        if (IsExempt(context.Request.Path))
        {
            return RateLimitPartition.GetNoLimiter("");
        }

        string caller = GenServiceHostingExtensions.CallerOf(context);
        double rate = settings.RequestsPerSecond;
        int burst = settings.Burst;
        if (context.User.Identity is { IsAuthenticated: true, Name: { } key } && settings.Keys.TryGetValue(key, out RateLimitOverride? own))
        {
            rate = own.RequestsPerSecond ?? rate;
            burst = own.Burst ?? burst;
        }

        if (rate <= 0)
        {
            return RateLimitPartition.GetNoLimiter(caller);
        }

        // One token every 1/rate seconds. Without auto-replenishment the partitioned limiter tops the buckets up
        // on its own 100 ms tick by the time that passed, so fractional and high rates come out exact.
        return RateLimitPartition.GetTokenBucketLimiter(caller, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst > 0 ? burst : Math.Max(1, (int)Math.Ceiling(rate)),
            TokensPerPeriod = 1,
            ReplenishmentPeriod = TimeSpan.FromSeconds(1 / rate),
            AutoReplenishment = false,
            QueueLimit = 0,
        });
    }

    private static async ValueTask OnRejectedAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        HttpContext context = rejected.HttpContext;
        TimeSpan retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out TimeSpan retry) ? retry : TimeSpan.FromSeconds(1);
        string model = context.GetRouteValue("model") as string ?? ModelOfGraph(context.GetRouteValue("name") as string) ?? "";
        context.RequestServices.GetService<GenServiceMetrics>()?.RecordRejected(model, "", "rate_limited");
        string caller = GenServiceHostingExtensions.CallerOf(context);
        await ErrorResponses.WriteAsync(context, new HttpError(StatusCodes.Status429TooManyRequests, "Too many requests",
            $"Rate limit of caller '{caller}' reached; retry after {Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds))} s.", RetryAfter: retryAfter));
    }

    // v2 routes name a graph "<model>.<role>"; the metric's model is the part before the last dot.
    private static string? ModelOfGraph(string? graph) =>
        graph is null ? null : graph.LastIndexOf('.') is > 0 and int dot ? graph[..dot] : graph;
}
