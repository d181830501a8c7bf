using System.ComponentModel.DataAnnotations;

namespace GenService.Inference.Options;

/// <summary>
/// The graceful shutdown sequence, bound from <c>GenService:Shutdown</c>. On SIGTERM the service turns not ready at
/// once, keeps taking requests for <see cref="ReadinessDelaySeconds"/> (so load balancers see the readiness change
/// before anything is refused), then refuses new requests with 503 and waits up to <see cref="DrainTimeoutSeconds"/>
/// for the running ones. The host's <c>HostOptions.ShutdownTimeout</c> is set to the sum of the two; Kubernetes'
/// <c>terminationGracePeriodSeconds</c> must be larger (docs/architecture.md, "Shutdown").
/// </summary>
public sealed class ShutdownOptions
{
    public const string SectionName = "GenService:Shutdown";

    /// <summary>Seconds between "not ready" and refusing new requests (0: refuse at once).</summary>
    [Range(0, 300)]
    public int ReadinessDelaySeconds { get; set; }

    /// <summary>Longest wait, in seconds, for running and queued requests to finish before the host exits anyway.</summary>
    [Range(0, 3600)]
    public int DrainTimeoutSeconds { get; set; } = 25;

    /// <summary>The host's shutdown timeout: the delay plus the drain.</summary>
    public TimeSpan ShutdownTimeout => TimeSpan.FromSeconds(ReadinessDelaySeconds + DrainTimeoutSeconds);
}
