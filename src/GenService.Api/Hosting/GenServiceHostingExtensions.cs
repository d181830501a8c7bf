using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using GenService.Api.Contracts;
using GenService.Api.Errors;
using GenService.Api.Operations;
using GenService.Api.Security;
using GenService.Generation;
using GenService.Inference;
using GenService.Inference.Callers;
using GenService.Inference.Hosting;
using GenService.Inference.Options;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Prometheus;
using Serilog;

namespace GenService.Api.Hosting;

/// <summary>
/// Everything Program.cs registers, in one place: HTTP conventions (JSON, errors), docs (Swagger),
/// logs (Serilog), metrics (Prometheus) and the inference stack underneath.
/// </summary>
internal static class GenServiceHostingExtensions
{
    /// <summary>
    /// The JSON conventions of every /v1 and /v2 body: snake_case names, lower-case enums; the /v1 request contract
    /// (every type in <see cref="GenService.Api.Contracts"/>) refuses unknown fields, so a typo ("temprature") is a
    /// 400 naming the field instead of a silently ignored setting.
    /// </summary>
    public static void ConfigureJson(JsonSerializerOptions options)
    {
        options.TypeInfoResolver = (options.TypeInfoResolver ?? new DefaultJsonTypeInfoResolver()).WithAddedModifier(RejectUnknownContractFields);
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));

        // NaN or infinite samples are rare but legal model outputs; a 500 over them would hide the model's bug.
        options.NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals;

        // {"count": 1, "count": 64} is ambiguous (which one did the client mean?): a 400 naming the key, not "last wins".
        options.AllowDuplicateProperties = false;

        // Bodies are application/json, never inlined into HTML: keep "'" and "<" readable instead of \u0027.
        options.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
    }

    private static void RejectUnknownContractFields(JsonTypeInfo info)
    {
        if (info.Kind == JsonTypeInfoKind.Object && info.Type.Namespace == typeof(SampleRequest).Namespace)
        {
            info.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        }
    }

    /// <summary>
    /// Every problem carries "traceId" (RFC 9457 extension, as ASP.NET Core spells it): the framework names it by
    /// the JSON naming policy, which for our snake_case bodies would make it "trace_id".
    /// </summary>
    private static void ProblemTraceId(ProblemDetailsContext context)
    {
        IDictionary<string, object?> extensions = context.ProblemDetails.Extensions;
        if (extensions.Remove("trace_id", out object? id) || !extensions.ContainsKey("traceId"))
        {
            extensions["traceId"] = id ?? System.Diagnostics.Activity.Current?.Id ?? context.HttpContext.TraceIdentifier;
        }
    }

    public static WebApplicationBuilder AddGenService(this WebApplicationBuilder builder)
    {
        IServiceCollection services = builder.Services;

        services.AddOptions<GenServiceApiOptions>()
            .BindConfiguration(GenServiceApiOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();

        services.ConfigureHttpJsonOptions(o => ConfigureJson(o.SerializerOptions));

        // Unreadable bodies must reach GenServiceExceptionHandler (400 naming the field), not end as a bare 400.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        // Registered before AddProblemDetails, so it is the writer the service picks: problem+json whatever the Accept.
        services.AddSingleton<IProblemDetailsWriter, ProblemJsonWriter>();
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ProblemTraceId);
        services.AddExceptionHandler<GenServiceExceptionHandler>();

        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "GenService",
                Version = "v1",
                Description = "Serves generative models (GAN, VAE, flow, diffusion, autoregressive) exported to ONNX. "
                    + "/v1: sampling and model routes (snake_case JSON, problem+json errors). "
                    + "/v2: KServe v2 / Open Inference Protocol over every graph, named <model>.<role>.",
            });
            o.OperationFilter<SwaggerExamplesFilter>();
            o.OperationFilter<RequestTimeoutHeaderFilter>();
            o.DocumentFilter<MetricsDocumentFilter>();
            SwaggerSecurity.AddDefinitions(o);
        });

        services.AddCallerSecurity();
        services.AddCallerRateLimiting();

        PrometheusMeterBridge.SuppressAdapter();
        services.AddHostedService<PrometheusMeterBridge>();

        builder.AddGenServiceLogging();
        services.AddGenServiceInference();

        // The host waits this long on shutdown: the readiness delay plus the drain (GracefulShutdownService).
        services.AddOptions<HostOptions>().Configure<IOptions<ShutdownOptions>>((host, shutdown) => host.ShutdownTimeout = shutdown.Value.ShutdownTimeout);
        services.AddGeneration();
        return builder;
    }

    /// <summary>
    /// Serilog: console text by default (client-controlled values escaped, <see cref="LogFormatting"/>), one compact
    /// JSON object per line when <c>GenService:Logging:Json</c> is true (log shippers). Levels come from the usual <c>Serilog</c> configuration section.
    /// </summary>
    private static void AddGenServiceLogging(this WebApplicationBuilder builder)
    {
        bool json = builder.Configuration.GetValue("GenService:Logging:Json", false);

        // preserveStaticLogger: the static bootstrap logger stays what Program.cs made it, so several hosts in
        // one process (WebApplicationFactory tests, the benchmark) never fight over freezing it.
        builder.Services.AddSerilog(
            (services, lc) =>
            {
                lc.ReadFrom.Configuration(builder.Configuration)
                    .ReadFrom.Services(services)
                    .Enrich.FromLogContext();
                lc.WriteTo.Console(json ? LogFormatting.Json() : LogFormatting.Text());
            },
            preserveStaticLogger: true);
    }

    /// <summary>
    /// The caller's identity for fairness and limits: "key:&lt;name&gt;" for a caller with a known API key, else its
    /// client address ("ip:..."), or "local" when the server has none (an in-process test server).
    /// </summary>
    internal static string CallerOf(HttpContext context) =>
        context.User.Identity is { IsAuthenticated: true, Name: { } key } ? "key:" + key
        : context.Connection.RemoteIpAddress is { } address ? "ip:" + address
        : "local";

    /// <summary>What a request refused during shutdown is told: retry soon, another replica will take it.</summary>
    private static readonly TimeSpan ShuttingDownRetryAfter = TimeSpan.FromSeconds(1);

    /// <summary>Health probes and the metrics scrape: answered (truthfully) until the host stops, never counted as work.</summary>
    internal static bool IsProbe(PathString path) =>
        path.StartsWithSegments("/v2/health", StringComparison.OrdinalIgnoreCase) || path.StartsWithSegments("/metrics", StringComparison.OrdinalIgnoreCase);

    /// <summary>The middleware pipeline, outermost first.</summary>
    public static WebApplication UseGenService(this WebApplication app)
    {
        ServiceLifecycle lifecycle = app.Services.GetRequiredService<ServiceLifecycle>();
        // Request logging outside the exception handler, so the logged status is the one sent (not a 500 for
        // every exception); the model and family survive through HttpContext.Items.
        app.UseSerilogRequestLogging(o =>
        {
            // The host's logger (console text or JSON), not the static bootstrap logger it would default to.
            o.Logger = app.Services.GetService<Serilog.ILogger>();
            o.EnrichDiagnosticContext = RequestLogEnricher.Enrich;
            o.GetLevel = RequestLogEnricher.Level;
        });
        app.UseExceptionHandler();

        // Errors decided before an endpoint writes anything (404 no route, 405, 415, 413) get the protocol's body.
        app.UseStatusCodePages(RouteErrors.WriteAsync);
        app.UseSwagger();
        app.UseSwaggerUI(o =>
        {
            o.SwaggerEndpoint("/swagger/v1/swagger.json", "GenService v1");
            o.DocumentTitle = "GenService";
        });
        app.UseRouting();
        app.UseRequestBodyLimits();
        app.UseHttpMetrics(o => o.ReduceStatusCodeCardinality());
        app.UseModelRequestMetrics();

        // Every request but the probes and the scrape is work the shutdown sequence waits for, and refuses once draining.
        app.Use(async (context, next) =>
        {
            if (IsProbe(context.Request.Path))
            {
                await next(context);
                return;
            }

            // Once shutdown has begun, every answer closes its connection: a keep-alive client reconnects (to another
            // replica, or gets a clean refusal) instead of sending its next request down a connection the server is
            // about to close, where it would be lost unanswered.
            context.Response.OnStarting(static state =>
            {
                var (ctx, life) = ((HttpContext, ServiceLifecycle))state;
                if (life.ShuttingDown)
                {
                    ctx.Response.Headers.Connection = "close";
                }

                return Task.CompletedTask;
            }, (context, lifecycle));

            using IDisposable work = lifecycle.TryEnter() ?? throw new ServiceShuttingDownException(ShuttingDownRetryAfter);
            await next(context);
        });

        // Who is asking (the API key, if any), then that caller flows to the batchers and loops (fairness, work
        // budgets) and partitions the rate limiter; authorization (roles, RequireKey) decides last, per route group.
        app.UseAuthentication();
        app.Use(async (context, next) =>
        {
            using CallerContext.Scope caller = CallerContext.Enter(CallerOf(context));
            await next(context);
        });

        // A caller's shorter deadline (X-Request-Timeout-Ms) flows the same way; the batchers and loops cap it by theirs.
        TimeProvider time = app.Services.GetRequiredService<TimeProvider>();
        app.Use(async (context, next) =>
        {
            if (RequestTimeoutOf(context) is not { } timeout)
            {
                await next(context);
                return;
            }

            using RequestDeadline.Scope deadline = RequestDeadline.Enter(time.GetUtcNow() + timeout);
            await next(context);
        });

        app.UseRateLimiter();
        app.UseAuthorization();
        return app;
    }

    /// <summary>
    /// The deadline the caller asked for in <see cref="RequestDeadline.Header"/> (whole milliseconds, at least 1), or
    /// null without the header; anything else is a 400 naming the header.
    /// </summary>
    internal static TimeSpan? RequestTimeoutOf(HttpContext context)
    {
        if (!context.Request.Headers.TryGetValue(RequestDeadline.Header, out Microsoft.Extensions.Primitives.StringValues values))
        {
            return null;
        }

        if (values.Count != 1 || !int.TryParse(values[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int ms) || ms < 1)
        {
            throw new RequestValidationException(RequestDeadline.Header,
                $"Header '{RequestDeadline.Header}' must be one whole number of milliseconds, at least 1 (it can only shorten the server's deadline); got '{values}'.");
        }

        return TimeSpan.FromMilliseconds(ms);
    }
}
