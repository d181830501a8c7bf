using System.ComponentModel.DataAnnotations;
using System.Diagnostics.Metrics;
using GenService.Api.Families.Common;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families.Ar;

/// <summary>
/// AR serving settings, bound from the configuration section <c>GenService:Ar</c>
/// (environment variables <c>GenService__Ar__Scheduling=request</c> etc.).
/// </summary>
public sealed class ArSchedulingOptions
{
    public const string SectionName = "GenService:Ar";

    /// <summary><c>iteration</c> (default: one token per in-flight sequence per iteration) or <c>request</c> (each request its own loop).</summary>
    public SchedulingMode Scheduling { get; set; } = SchedulingMode.Iteration;

    /// <summary>Most sequences per iteration; 0 = the decoder's max_batch_size. Sequences beyond wait, FIFO, and join as others finish.</summary>
    [Range(0, 65536)]
    public int MaxRowsPerIteration { get; set; }

    /// <summary>Most sequences waiting for admission per model; beyond it a request is refused at once (429, Retry-After).</summary>
    [Range(1, 1_000_000)]
    public int MaxQueuedSequences { get; set; } = 4096;
}

/// <summary>
/// Runs AR jobs in the configured mode: <see cref="SchedulingMode.Iteration"/> through one <see cref="ArScheduler"/>
/// per loaded decoder (created on first use), or <see cref="SchedulingMode.Request"/> through the request-level
/// <see cref="ArGenerator"/>. Jobs that ask for recomputation on a KV-cache decoder (<see cref="ArJob.UseCache"/> off,
/// a test switch) run request-level too: a scheduler serves one path per graph.
/// </summary>
internal sealed class ArSchedulerRegistry : IDisposable
{
    private readonly ArSchedulingOptions _options;
    private readonly IterationSchedulerMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggerFactory;
    private readonly SchedulerTable<ArScheduler> _schedulers = new();

    public ArSchedulerRegistry(IOptions<ArSchedulingOptions> options, IMeterFactory? meterFactory, TimeProvider time, ILoggerFactory loggerFactory)
    {
        _options = options.Value;
        _metrics = meterFactory is null ? null : new IterationSchedulerMetrics(meterFactory, "ar", "Decoder rows", _schedulers.ObserveActive);
        _time = time;
        _loggerFactory = loggerFactory;
    }

    public SchedulingMode Mode => _options.Scheduling;

    /// <summary>Runs the job in the configured mode; with <paramref name="stream"/> false the scheduler sends only the result.</summary>
    public IAsyncEnumerable<ArEvent> RunAsync(ArJob job, CancellationToken cancellationToken, bool stream = true)
        => _options.Scheduling == SchedulingMode.Request || (!job.UseCache && job.Decoder.HasCache)
            ? ArGenerator.RunAsync(job, cancellationToken)
            : For(job).RunAsync(job, cancellationToken, stream);

    /// <summary>The scheduler of the job's decoder, created on first use.</summary>
    public ArScheduler For(ArJob job)
        => _schedulers.GetOrCreate(job.Decoder.Runner, forget => new ArScheduler(job.Decoder, job.Manifest.Name, job.Manifest.Tokens!.MaxLength,
            _options.MaxRowsPerIteration, _options.MaxQueuedSequences, _metrics, _time, _loggerFactory.CreateLogger<ArScheduler>(), forget));

    /// <summary>Schedulers alive now (tests, metrics).</summary>
    public IReadOnlyList<ArScheduler> Schedulers => _schedulers.All;

    public void Dispose() => _schedulers.Dispose();
}

/// <summary>Registration of the AR scheduling services.</summary>
public static class ArSchedulingExtensions
{
    /// <summary>Binds <see cref="ArSchedulingOptions"/> from <c>GenService:Ar</c> (validated at start) and registers the scheduler registry.</summary>
    public static IServiceCollection AddArScheduling(this IServiceCollection services)
    {
        services.AddOptions<ArSchedulingOptions>()
            .BindConfiguration(ArSchedulingOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton<ArSchedulerRegistry>();
        return services;
    }
}
