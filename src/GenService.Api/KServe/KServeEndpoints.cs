using System.Buffers;
using System.Reflection;
using System.Text;
using GenService.Api.Errors;
using GenService.Api.Hosting;
using GenService.Api.Models;
using GenService.Api.Security;
using GenService.Inference;
using GenService.Inference.Hosting;
using GenService.Inference.Manifest;
using GenService.Inference.Options;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace GenService.Api.KServe;

/// <summary>
/// KServe v2 / Open Inference Protocol (REST, JSON tensors) over every graph, named "&lt;model&gt;.&lt;role&gt;".
/// Infer goes through the graph's <see cref="IGraphRunner"/>, i.e. the same dynamic batcher as /v1.
/// Errors are <c>{"error": "..."}</c> (GenServiceExceptionHandler).
/// </summary>
internal static class KServeEndpoints
{
    private const string Platform = "onnxruntime_onnx";

    private static readonly string ServerVersion =
        typeof(KServeEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "1.0.0";

    public static IEndpointRouteBuilder MapKServeEndpoints(this IEndpointRouteBuilder app)
    {
        // Every v2 route reads the caller's key (RequireKey, unknown keys); the probes never do.
        RouteGroupBuilder v2 = app.MapGroup("/v2").WithTags("KServe v2").RequireAuthorization(CallerPolicies.User);

        v2.MapGet("/", ServerMetadata)
            .WithName("V2ServerMetadata")
            .WithSummary("Server metadata")
            .WithDescription("Name, version and protocol extensions of this server (KServe v2).");

        v2.MapGet("/health/live", Live)
            .WithName("V2Live")
            .WithSummary("Liveness")
            .WithDescription("200 {\"live\": true} while the process serves HTTP. For the Kubernetes liveness probe.")
            .AllowAnonymous();

        v2.MapGet("/health/ready", Ready)
            .WithName("V2Ready")
            .WithSummary("Readiness")
            .WithDescription("200 {\"ready\": true} once the startup load pass has ended (every model found at startup "
                + "is ready or failed) and the server is not shutting down. A broken model, or a model folder added later, "
                + "never changes it: each model has its own /v2/models/{name}/ready. 503 {\"ready\": false, \"loading\": [...]} "
                + "during the startup pass; 503 {\"ready\": false, \"reason\": \"the server is shutting down\"} from the "
                + "moment the server is asked to stop. For the Kubernetes readiness probe.")
            .AllowAnonymous();

        v2.MapGet("/models/{name}", ModelMetadata)
            .WithName("V2ModelMetadata")
            .WithSummary("Graph metadata")
            .WithDescription("Inputs and outputs of one graph, e.g. digits-gan.generator: names (the ONNX names), "
                + "datatypes (FP32, FP64, INT32, INT64, BOOL) and shapes with -1 for dynamic dims (dim 0 is the batch).")
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable);

        v2.MapGet("/models/{name}/ready", ModelReady)
            .WithName("V2ModelReady")
            .WithSummary("Graph readiness")
            .WithDescription("200 {\"name\", \"ready\": true} when the graph's model is loaded; 503 with ready=false when "
                + "it is loading, failed or unloaded; 404 when there is no such graph.")
            .Produces<V2Error>(StatusCodes.Status404NotFound);

        v2.MapPost("/models/{name}/infer", Infer)
            .WithName("V2Infer")
            .WithSummary("Run a graph")
            .WithDescription("""
                JSON tensors in, JSON tensors out, through the graph's dynamic batcher. `data` is flat (C order) or
                nested to the shape; `outputs` (optional) picks outputs by name. Every input
                of the graph is required, with its datatype, its rank and its fixed dims; dim 0 (the batch) must be
                equal across inputs. The response's `parameters` carry the server-side queue_ms, compute_ms and
                batch_size. Example (digits-gan.generator):

                    {"inputs": [{"name": "latent", "shape": [1, 32], "datatype": "FP32", "data": [0.1, -0.3, ...]},
                                {"name": "class_label", "shape": [1], "datatype": "INT64", "data": [3]}]}

                Binary tensor data extension (as Triton): send the JSON header, then raw little-endian tensor bytes,
                with `Inference-Header-Content-Length: <JSON header bytes>`; an input with
                `"parameters": {"binary_data_size": N}` takes the next N bytes (input order; BOOL is 1 byte). Outputs
                with `"parameters": {"binary_data": true}` (or request `"parameters": {"binary_data_output": true}`)
                come back the same way: application/octet-stream, the JSON header (each binary output has
                `parameters.binary_data_size`), then the bytes; the response carries Inference-Header-Content-Length.
                Other `parameters` are ignored.
                """)
            // The body is documented by SwaggerExamplesFilter, not .Accepts(): the route reads two content types
            // (JSON, binary tensor data) by hand and answers any other with a 415 that names both (CheckContentType).
            .WithMetadata(LargeBodyMetadata.Instance)
            .Produces<V2InferResponse>(StatusCodes.Status200OK)
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status404NotFound)
            .Produces<V2Error>(StatusCodes.Status413PayloadTooLarge)
            .Produces<V2Error>(StatusCodes.Status415UnsupportedMediaType)
            .Produces<V2Error>(StatusCodes.Status429TooManyRequests)
            .Produces<V2Error>(StatusCodes.Status503ServiceUnavailable)
            .Produces<V2Error>(StatusCodes.Status504GatewayTimeout);

        RouteGroupBuilder repository = v2.MapGroup("/repository")
            .WithTags("KServe v2 repository (admin)")
            .RequireAuthorization(CallerPolicies.Admin);

        repository.MapPost("/index", Index)
            .WithName("V2RepositoryIndex")
            .WithSummary("Rescan the model folder")
            .WithDescription("Loads new model folders, keeps loaded ones, marks vanished ones unloaded, and lists "
                + "every model with its state (READY, LOADING, UNAVAILABLE) and reason. Body (optional): {\"ready\": true} "
                + "(or ?ready=true) lists only ready models.")
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status403Forbidden)
            .Produces<V2Error>(StatusCodes.Status415UnsupportedMediaType);

        repository.MapPost("/models/{model}/load", Load)
            .WithName("V2RepositoryLoad")
            .WithSummary("(Re)load a model")
            .WithDescription("Loads the model folder again (the old version serves until the new one is ready). "
                + "200 when it is ready; 400 {\"error\"} with the reason when it fails to load.")
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status403Forbidden)
            .Produces<V2Error>(StatusCodes.Status400BadRequest)
            .Produces<V2Error>(StatusCodes.Status404NotFound);

        repository.MapPost("/models/{model}/unload", Unload)
            .WithName("V2RepositoryUnload")
            .WithSummary("Unload a model")
            .WithDescription("In-flight requests finish first; afterwards the model answers 503 until loaded again.")
            .Produces<V2Error>(StatusCodes.Status401Unauthorized)
            .Produces<V2Error>(StatusCodes.Status403Forbidden)
            .Produces<V2Error>(StatusCodes.Status404NotFound);
        return app;
    }

    internal static Ok<V2ServerMetadata> ServerMetadata() =>
        TypedResults.Ok(new V2ServerMetadata("genservice", ServerVersion, ["model_repository", "binary_tensor_data"]));

    internal static Ok<V2Live> Live() => TypedResults.Ok(new V2Live(true));

    /// <summary>
    /// The service's readiness (<see cref="ServiceLifecycle"/>): ready once the startup load pass has ended and until
    /// the host starts stopping. Models do not count after startup: a failed model, or a folder dropped in later and
    /// loading now, is that model's own readiness (/v2/models/{name}/ready), never the whole replica's.
    /// </summary>
    internal static Results<Ok<V2Ready>, JsonHttpResult<V2Ready>> Ready(IModelRepository repository, ServiceLifecycle lifecycle, IOptions<InferenceOptions> inference)
    {
        if (lifecycle.ShuttingDown)
        {
            return TypedResults.Json(new V2Ready(false, Reason: "the server is shutting down"), statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        if (lifecycle.StartupCompleted)
        {
            return TypedResults.Ok(new V2Ready(true));
        }

        // Still in the startup pass: what it is loading, and folders on disk it has not listed yet.
        IReadOnlyList<ModelEntry> entries = repository.List();
        var loading = entries.Where(e => e.State == ModelState.Loading && e.Model is null).Select(e => e.Name).ToList();
        string root = inference.Value.ModelRepository;
        if (Directory.Exists(root))
        {
            var listed = entries.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
            loading.AddRange(Directory.EnumerateDirectories(root)
                .Where(ManifestLoader.IsModelFolder)
                .Select(Path.GetFileName)
                .OfType<string>()
                .Where(name => !listed.Contains(name))
                .Order(StringComparer.Ordinal));
        }

        return TypedResults.Json(new V2Ready(false, loading), statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    internal static Ok<V2ModelMetadata> ModelMetadata(string name, IModelRepository repository)
    {
        IGraphRunner graph = repository.GetGraph(name);
        string version = repository.Find(graph.ModelName)?.Manifest?.Version ?? "1";
        return TypedResults.Ok(new V2ModelMetadata(
            graph.V2Name,
            [version],
            Platform,
            graph.Signature.Inputs.Select(Metadata).ToList(),
            graph.Signature.Outputs.Select(Metadata).ToList()));
    }

    private static V2TensorMetadata Metadata(TensorSpec spec) =>
        new(spec.Name, Tensor.V2Name(spec.ElementType), spec.Dims.Select((d, i) => i == 0 || d < 0 ? -1 : d).ToList());

    internal static Results<Ok<V2ModelReady>, JsonHttpResult<V2ModelReady>> ModelReady(string name, IModelRepository repository)
    {
        int dot = name.LastIndexOf('.');
        ModelEntry? entry = dot > 0 ? repository.Find(name[..dot]) : null;
        if (entry is null || (entry.Manifest is { } m && !m.Graphs.ContainsKey(name[(dot + 1)..])))
        {
            throw new ModelNotFoundException(name);
        }

        return ModelEndpoints.IsReady(entry)
            ? TypedResults.Ok(new V2ModelReady(name, true))
            : TypedResults.Json(new V2ModelReady(name, false), statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    /// <summary>The hot path: body bytes -> typed tensors -> batcher -> JSON written into the response pipe.</summary>
    internal static async Task Infer(string name, HttpContext context, IModelRepository repository, IOptions<GenServiceApiOptions> options)
    {
        IGraphRunner graph = repository.GetGraph(name);
        CheckInferContentType(context.Request);
        CancellationToken aborted = context.RequestAborted;
        (byte[] buffer, int length) = await ReadBodyAsync(context.Request, options.Value.MaxInferBodyBytes, aborted);
        V2ParsedRequest request;
        try
        {
            // Binary tensor extension: the first N bytes are the JSON header, the rest raw tensor data.
            int headerLength = JsonHeaderLength(context.Request, length);
            request = V2InferRequestReader.Read(buffer.AsSpan(0, headerLength), buffer.AsSpan(headerLength, length - headerLength), graph.Signature);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        InferenceResult result = await graph.InferAsync(
            new InferenceRequest { Inputs = request.Inputs, Outputs = request.Outputs },
            aborted);
        IReadOnlyList<string> outputs = request.Outputs ?? graph.Signature.Outputs.Select(o => o.Name).ToList();
        string version = repository.Find(graph.ModelName)?.Manifest?.Version ?? "1";

        await V2InferResponseWriter.WriteAsync(context.Response, graph.V2Name, version, request, result, outputs, aborted);
    }

    /// <summary>
    /// JSON tensors (<c>application/json</c>, <c>; charset=utf-8</c> and <c>+json</c> types included) or the binary tensor
    /// data extension (<c>application/octet-stream</c>, or no Content-Type beside an Inference-Header-Content-Length
    /// header, as Triton's HTTP client sends it); anything else, or no Content-Type at all, is a 415 naming both.
    /// </summary>
    private static void CheckInferContentType(HttpRequest request)
    {
        bool binary = Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(request.ContentType, out Microsoft.Net.Http.Headers.MediaTypeHeaderValue? type)
            ? type.MediaType.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase)
            : string.IsNullOrEmpty(request.ContentType) && request.Headers.ContainsKey(V2InferResponseWriter.HeaderContentLength);
        if (!binary && !request.HasJsonContentType())
        {
            throw new BadHttpRequestException("Unsupported content type.", StatusCodes.Status415UnsupportedMediaType);
        }
    }

    /// <summary>The JSON part of the body: the Inference-Header-Content-Length header, or the whole body without it.</summary>
    private static int JsonHeaderLength(HttpRequest request, int bodyLength)
    {
        if (!request.Headers.TryGetValue(V2InferResponseWriter.HeaderContentLength, out Microsoft.Extensions.Primitives.StringValues values))
        {
            return bodyLength;
        }

        string? text = values.Count == 1 ? values[0] : null;
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int length))
        {
            throw new RequestValidationException(V2InferResponseWriter.HeaderContentLength, $"The {V2InferResponseWriter.HeaderContentLength} header must be one non-negative integer (the JSON header's length in bytes), not '{values}'.");
        }

        if (length > bodyLength)
        {
            throw new RequestValidationException(V2InferResponseWriter.HeaderContentLength, $"{V2InferResponseWriter.HeaderContentLength} is {length} bytes but the body has only {bodyLength}.");
        }

        return length;
    }

    /// <summary>The whole body into one pooled buffer (the reader needs it contiguous); the caller returns it.</summary>
    private static async Task<(byte[] Buffer, int Length)> ReadBodyAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        long? declared = request.ContentLength;
        if (declared > maxBytes)
        {
            throw new BadHttpRequestException($"The body is {declared} bytes; the limit is {maxBytes} (GenService:Api:MaxInferBodyBytes).", StatusCodes.Status413PayloadTooLarge);
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 ? (int)declared.Value : 16 * 1024);
        int length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length >= maxBytes)
                    {
                        throw new BadHttpRequestException($"The body is over the limit of {maxBytes} bytes (GenService:Api:MaxInferBodyBytes).", StatusCodes.Status413PayloadTooLarge);
                    }

                    byte[] larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, maxBytes));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                int read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    return (buffer, length);
                }

                length += read;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    internal static async Task<Ok<List<V2RepositoryModel>>> Index(HttpRequest http, IModelRepository repository, bool? ready, CancellationToken cancellationToken)
    {
        // The body is optional (and often absent, without a content type), so it is read by hand, not bound;
        // a body that is there must be JSON.
        if (http.ContentLength is > 0 || (http.ContentLength is null && http.HasJsonContentType()))
        {
            if (!http.HasJsonContentType())
            {
                throw new BadHttpRequestException("Unsupported content type.", StatusCodes.Status415UnsupportedMediaType);
            }

            V2RepositoryIndexRequest? body = await http.ReadFromJsonAsync<V2RepositoryIndexRequest>(cancellationToken);
            ready ??= body?.Ready;
        }

        IReadOnlyList<ModelEntry> entries = await repository.IndexAsync(cancellationToken);
        return TypedResults.Ok(entries
            .Where(e => ready != true || ModelEndpoints.IsReady(e))
            .Select(e => new V2RepositoryModel(e.Name, e.Manifest?.Version, StateName(e), e.Error))
            .ToList());
    }

    internal static async Task<Ok<V2RepositoryModel>> Load(string model, IModelRepository repository, CancellationToken cancellationToken)
    {
        CheckModelName(model);
        ModelEntry entry = await repository.LoadAsync(model, cancellationToken);
        if (entry.State == ModelState.Failed)
        {
            // Triton answers a failed load with a 400 and the reason; clients of the protocol expect that.
            throw new RequestValidationException("model", $"Model '{model}' failed to load: {entry.Error}");
        }

        return TypedResults.Ok(new V2RepositoryModel(entry.Name, entry.Manifest?.Version, StateName(entry), entry.Error));
    }

    internal static async Task<Ok<V2RepositoryModel>> Unload(string model, IModelRepository repository, CancellationToken cancellationToken)
    {
        CheckModelName(model);
        if (!await repository.UnloadAsync(model, cancellationToken))
        {
            throw new ModelNotFoundException(model);
        }

        ModelEntry? entry = repository.Find(model);
        return TypedResults.Ok(new V2RepositoryModel(model, entry?.Manifest?.Version, entry is null ? "UNAVAILABLE" : StateName(entry), entry?.Error));
    }

    private static string StateName(ModelEntry entry) => entry.State switch
    {
        _ when ModelEndpoints.IsReady(entry) => "READY",
        ModelState.Loading => "LOADING",
        _ => "UNAVAILABLE",
    };

    /// <summary>Model names as docs/model-contract.md allows them; anything else (a path, "..") never reaches the file system.</summary>
    private static void CheckModelName(string model)
    {
        bool ok = model.Length is >= 1 and <= 64
            && IsLowerAlnum(model[0])
            && model.All(c => IsLowerAlnum(c) || c is '.' or '_' or '-')
            && !model.Contains("..", StringComparison.Ordinal);
        if (!ok)
        {
            throw new RequestValidationException("model", $"'{model}' is not a model name: 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit.");
        }

        static bool IsLowerAlnum(char c) => c is >= 'a' and <= 'z' or >= '0' and <= '9';
    }
}
