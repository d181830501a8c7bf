using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using GenService.Api.Contracts;
using GenService.Api.Errors;
using GenService.Api.Operations;
using GenService.Api.Security;
using GenService.Generation;
using GenService.Inference.Callers;
using GenService.Inference.Hosting;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.OpenApi;
using Prometheus;
using Serilog;
using Serilog.Formatting.Compact;

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
            o.DocumentFilter<MetricsDocumentFilter>();
            SwaggerSecurity.AddDefinitions(o);
        });

        services.AddCallerSecurity();
        services.AddCallerRateLimiting();

        PrometheusMeterBridge.SuppressAdapter();
        services.AddHostedService<PrometheusMeterBridge>();

        builder.AddGenServiceLogging();
        services.AddGenServiceInference();
        services.AddGeneration();
        return builder;
    }

    /// <summary>
    /// Serilog: console text by default, one compact JSON object per line when <c>GenService:Logging:Json</c>
    /// is true (log shippers). Levels come from the usual <c>Serilog</c> configuration section.
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
                if (json)
                {
                    lc.WriteTo.Console(new CompactJsonFormatter());
                }
                else
                {
                    lc.WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture);
                }
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

    /// <summary>The middleware pipeline, outermost first.</summary>
    public static WebApplication UseGenService(this WebApplication app)
    {
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
        app.UseSwagger();
        app.UseSwaggerUI(o =>
        {
            o.SwaggerEndpoint("/swagger/v1/swagger.json", "GenService v1");
            o.DocumentTitle = "GenService";
        });
        app.UseRouting();
        app.UseHttpMetrics(o => o.ReduceStatusCodeCardinality());
        app.UseModelRequestMetrics();

        // Who is asking (the API key, if any), then that caller flows to the batchers and loops (fairness, work
        // budgets) and partitions the rate limiter; authorization (roles, RequireKey) decides last, per route group.
        app.UseAuthentication();
        app.Use(async (context, next) =>
        {
            using CallerContext.Scope caller = CallerContext.Enter(CallerOf(context));
            await next(context);
        });
        app.UseRateLimiter();
        app.UseAuthorization();
        return app;
    }
}
