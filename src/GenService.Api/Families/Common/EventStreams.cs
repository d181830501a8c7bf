using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using GenService.Inference;

namespace GenService.Api.Families.Common;

/// <summary>Server-sent events shared by the streaming family routes (diffusion progress, AR tokens).</summary>
internal static class EventStreams
{
    // The bodies' own JSON conventions (snake_case, nulls left out), so an event's data reads like the JSON answer.
    private static readonly JsonSerializerOptions Json = CreateJson();

    /// <summary>True when the client asked for text/event-stream.</summary>
    public static bool Accepts(HttpContext http)
        => http.Request.Headers.Accept.Any(a => a is not null && a.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase));

    /// <summary>One SSE item whose data is <paramref name="payload"/> as snake_case JSON.</summary>
    public static SseItem<string> Item<T>(T payload, string eventType)
        => new(JsonSerializer.Serialize(payload, Json), eventType);

    /// <summary>
    /// Maps a family's events to SSE items (<paramref name="map"/> returns null for events that send nothing).
    /// Once the headers are gone a domain failure cannot be a problem+json any more: it travels as an `error`
    /// event `{title, detail}` a client can act on, and the stream ends.
    /// </summary>
    public static async IAsyncEnumerable<SseItem<string>> StreamAsync<T>(IAsyncEnumerable<T> events, Func<T, SseItem<string>?> map, [EnumeratorCancellation] CancellationToken ct)
    {
        await using IAsyncEnumerator<T> enumerator = events.GetAsyncEnumerator(ct);
        while (true)
        {
            string? error = null;
            bool more = false;
            try
            {
                more = await enumerator.MoveNextAsync();
            }
            catch (GenServiceException e)
            {
                error = JsonSerializer.Serialize(new { title = e.GetType().Name.Replace("Exception", "", StringComparison.Ordinal), detail = e.Message }, Json);
            }

            if (error is not null)
            {
                yield return new SseItem<string>(error, "error");
                yield break;
            }

            if (!more)
            {
                yield break;
            }

            if (map(enumerator.Current) is { } item)
            {
                yield return item;
            }
        }
    }

    private static JsonSerializerOptions CreateJson()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        Hosting.GenServiceHostingExtensions.ConfigureJson(options);
        return options;
    }
}
