namespace GenService.Inference;

/// <summary>
/// Domain errors. The HTTP layer maps each to a status code (problem+json on /v1, {"error"} on /v2);
/// nothing below the HTTP layer knows about HTTP.
/// </summary>
public abstract class GenServiceException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>No model (or v2 graph) of that name exists. 404.</summary>
public sealed class ModelNotFoundException(string name)
    : GenServiceException($"No model named '{name}'. GET /v1/models lists the models this server has.")
{
    public string Name { get; } = name;
}

/// <summary>The model exists but was asked for under another family's route. 404 naming the real family.</summary>
public sealed class WrongFamilyException(string name, string requestedFamily, string actualFamily)
    : GenServiceException($"Model '{name}' is a {actualFamily} model, not {requestedFamily}: use /v1/{actualFamily}/{name}/...")
{
    public string Name { get; } = name;

    public string ActualFamily { get; } = actualFamily;
}

/// <summary>The model exists but is loading, failed or unloaded. 503.</summary>
public sealed class ModelNotReadyException(string name, string reason)
    : GenServiceException($"Model '{name}' is not ready: {reason}")
{
    public string Name { get; } = name;
}

/// <summary>
/// The request is refused for now, not for what it asks: a queue, the caller's backlog or its work budget is full. 429,
/// with Retry-After (at least 1 s).
/// </summary>
public abstract class TooManyRequestsException(string message, TimeSpan retryAfter) : GenServiceException(message)
{
    public TimeSpan RetryAfter { get; } = retryAfter < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : retryAfter;
}

/// <summary>A bounded queue is full: reject at once. 429 with Retry-After.</summary>
public sealed class QueueFullException(string graph, int capacity, TimeSpan retryAfter)
    : TooManyRequestsException($"The queue of '{graph}' is full ({capacity} waiting rows); retry after {Math.Ceiling(retryAfter.TotalSeconds)} s.", retryAfter);

/// <summary>
/// The caller's own earlier requests are queued for longer than this request's deadline allows (load shedding in the
/// iteration loops): refused at once instead of timing out later. 429 with Retry-After.
/// </summary>
public sealed class CallerBacklogException(string graph, TimeSpan wait, TimeSpan deadline, TimeSpan retryAfter)
    : TooManyRequestsException(
        string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Your earlier requests to '{graph}' would hold this one for about {wait.TotalSeconds:0.#} s before it starts (at the rate you are being served), too long for its deadline of {deadline.TotalSeconds:0.#} s; retry after {Math.Ceiling(Math.Max(1, retryAfter.TotalSeconds))} s, or send fewer requests at once."),
        retryAfter);

/// <summary>The request's deadline passed before it could be computed. 504.</summary>
public sealed class DeadlineExceededException(string graph, TimeSpan deadline)
    : GenServiceException($"The request to '{graph}' did not finish within its deadline of {deadline.TotalMilliseconds:0} ms.");

/// <summary>Bad input: names the field and what is allowed. 400.</summary>
public sealed class RequestValidationException(string field, string detail)
    : GenServiceException(detail)
{
    /// <summary>The request field at fault, e.g. "steps" or "inputs[2].data".</summary>
    public string Field { get; } = field;
}

/// <summary>The model has no graph for this route (e.g. a VAE exported without its encoder). 404.</summary>
public sealed class GraphNotAvailableException(string model, string role, string route)
    : GenServiceException($"Model '{model}' has no '{role}' graph, so it does not offer {route}. GET /v1/models/{model} lists its endpoints.")
{
    public string Name { get; } = model;
}

/// <summary>
/// The model could not compute this request's input, while the other requests that shared its call completed (the
/// batcher and the iteration loops re-ran the call's parts apart to find it): the input is at fault, not the model.
/// 400 with the runtime's reason (its first line; the stack stays out of the answer and the log).
/// </summary>
public sealed class InputNotComputableException(string graph, string reason)
    : GenServiceException($"Graph '{graph}' could not compute this request's input, while the other requests computed with it succeeded: {reason} Check the input's values against the model (class labels, token ids, finite numbers).")
{
    /// <summary>The runtime's reason, first line only.</summary>
    public string Reason { get; } = reason;

    /// <summary>
    /// The error of a request that failed alone while others of its call computed: <paramref name="alone"/> itself if
    /// it already is one, else the runtime's reason (the first line of its message, no stack or details).
    /// </summary>
    public static InputNotComputableException For(string graph, Exception alone)
    {
        if (alone is InputNotComputableException known)
        {
            return known;
        }

        string m = alone.Message;
        int cut = m.IndexOfAny(['\r', '\n']);
        string line = (cut >= 0 ? m[..cut] : m).Trim();
        if (line.Length > 400)
        {
            line = line[..400] + "...";
        }

        return new InputNotComputableException(graph, line.EndsWith('.') ? line : line + ".");
    }
}

/// <summary>
/// The server is shutting down and takes no new work (requests already running finish). 503 with Retry-After: the
/// client retries, and by then its load balancer sends it to another replica.
/// </summary>
public sealed class ServiceShuttingDownException(TimeSpan retryAfter)
    : GenServiceException($"The server is shutting down and takes no new requests; retry after {Math.Ceiling(retryAfter.TotalSeconds)} s (another replica will answer).")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}
