using GenService.Api.Errors;
using GenService.Inference.Repository;
using Serilog;
using Serilog.Events;

namespace GenService.Api.Hosting;

/// <summary>
/// What the one-line-per-request log (UseSerilogRequestLogging) and the per-model request counter know
/// about a request: the model and family it concerned, read from the route values.
/// </summary>
internal static class RequestLogEnricher
{
    private const string ItemKey = "GenService.ModelAndFamily";

    /// <summary>The model and family a request concerned, or nulls for routes about no model.</summary>
    public static (string? Model, string? Family) ModelOf(HttpContext context)
    {
        // Cached in Items: the exception handler clears the route values before the request log is written.
        if (context.Items.TryGetValue(ItemKey, out object? cached) && cached is ValueTuple<string?, string?> known)
        {
            return known;
        }

        (string? Model, string? Family) found = Read(context);
        if (found.Model is not null)
        {
            context.Items[ItemKey] = found;
        }

        return found;
    }

    private static (string? Model, string? Family) Read(HttpContext context)
    {
        RouteValueDictionary values = context.Request.RouteValues;
        string? family = values.TryGetValue("family", out object? f) ? f as string : null;
        string? model = values.TryGetValue("model", out object? m) ? m as string : null;
        if (model is null && values.TryGetValue("name", out object? n) && n is string name)
        {
            // /v2/models/{name}: "<model>.<role>"; /v1/models/{name}: the model itself.
            bool v2 = context.Request.Path.StartsWithSegments("/v2", StringComparison.OrdinalIgnoreCase);
            int dot = name.LastIndexOf('.');
            model = v2 && dot > 0 ? name[..dot] : name;
        }

        if (model is not null && family is null)
        {
            IModelRepository? repository = context.RequestServices.GetService<IModelRepository>();
            family = repository?.Find(model)?.Manifest?.Family.ToString().ToLowerInvariant();
        }

        return (model, family);
    }

    public static void Enrich(IDiagnosticContext diagnostics, HttpContext context)
    {
        (string? model, string? family) = ModelOf(context);
        if (model is not null)
        {
            diagnostics.Set("Model", model);
        }

        if (family is not null)
        {
            diagnostics.Set("Family", family);
        }
    }

    /// <summary>5xx are errors; a client that hung up (499) or a 4xx is the client's business, not an alarm.</summary>
    public static LogEventLevel Level(HttpContext context, double elapsedMs, Exception? exception)
    {
        int status = context.Response.StatusCode;
        if (exception is not null || (status >= 500 && status != StatusCodes.Status503ServiceUnavailable))
        {
            return LogEventLevel.Error;
        }

        return status == HttpError.ClientClosedRequest || status < 500 ? LogEventLevel.Information : LogEventLevel.Warning;
    }
}
