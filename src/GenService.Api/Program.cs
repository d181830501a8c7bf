using GenService.Api.Families;
using GenService.Api.Hosting;
using GenService.Api.KServe;
using GenService.Api.Models;
using GenService.Api.Operations;
using Serilog;

// Until the host's own logger exists, startup failures still reach the console.
Log.Logger = new LoggerConfiguration().WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture).CreateBootstrapLogger();

try
{
    WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
    builder.AddGenService();                 // JSON, problem+json, Swagger, Serilog, Prometheus, inference stack

    WebApplication app = builder.Build();
    app.UseGenService();                     // request log, error mapping, Swagger UI, routing, HTTP metrics

    app.MapModelEndpoints();                 // GET /v1/models, /v1/models/{name}
    app.MapKServeEndpoints();                // /v2 (KServe v2 / Open Inference Protocol)
    app.MapFamilyEndpoints();                // /v1/{gan,vae,flow,diffusion,ar}/{model}/...
    app.MapOperationsEndpoints();            // /metrics, /v1 and /v2 404s

    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (ex is not HostAbortedException)
{
    Log.Fatal(ex, "GenService terminated unexpectedly");
    return 1;
}
finally
{
    await Log.CloseAndFlushAsync();
}

/// <summary>The entry point, public so that WebApplicationFactory&lt;Program&gt; can host it in tests.</summary>
public partial class Program;
