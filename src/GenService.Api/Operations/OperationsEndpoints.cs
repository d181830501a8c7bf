using GenService.Api.Errors;
using GenService.Api.Hosting;
using GenService.Inference.Metrics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Prometheus;

namespace GenService.Api.Operations;

/// <summary>Prometheus /metrics and the per-model request counter.</summary>
internal static class OperationsEndpoints
{
    public static IEndpointRouteBuilder MapOperationsEndpoints(this IEndpointRouteBuilder app)
    {
        // prometheus-net's text exposition: its own http_* request metrics plus every System.Diagnostics.Metrics
        // instrument (the "GenService" Meter) through its meter adapter, which is on by default.
        app.MapMetrics("/metrics")
            .WithName("Metrics")
            .WithSummary("Prometheus metrics")
            .WithDescription("Prometheus text format: genservice_requests_total (by model, family, route, status), "
                + "queue wait, compute time, batch size histogram, queue depth, rejected and cancelled requests, "
                + "network evaluations, and prometheus-net's http_request_duration_seconds.")
            .WithTags("Operations");

        app.MapGet("/", () => TypedResults.Redirect("/swagger"))
            .ExcludeFromDescription();

        // No /v1 or /v2 fallback routes: a fallback matches every method and content type and would turn routing's
        // 405 and 415 into 404s. Unknown paths are 404s in the protocol's error shape through RouteErrors.
        return app;
    }

    /// <summary>
    /// Counts every request that concerned a model (genservice_requests_total{model,family,route,status})
    /// once its status is known, errors included.
    /// </summary>
    public static IApplicationBuilder UseModelRequestMetrics(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            int status;
            try
            {
                await next(context);
                status = context.Response.StatusCode;
            }
            catch (Exception ex)
            {
                // The exception handler further out clears the route values before it writes the error,
                // so the model is read here, and the status it will send comes from the same table it uses.
                status = ErrorMapping.Map(ex, context).Status;
                Record(context, status);
                throw;
            }

            Record(context, status);
        });

    private static void Record(HttpContext context, int status)
    {
        (string? model, string? family) = RequestLogEnricher.ModelOf(context);
        if (model is null)
        {
            return;
        }

        string route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "";
        context.RequestServices.GetService<GenServiceMetrics>()?.RecordRequest(model, family ?? "unknown", route, status.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
