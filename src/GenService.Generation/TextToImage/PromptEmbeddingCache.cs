using System.Diagnostics.Metrics;
using GenService.Inference.Metrics;

namespace GenService.Generation.TextToImage;

/// <summary>
/// The text encoder's hidden states of recently used prompts, keyed by the model version and the prompt's token ids
/// (so two spellings that tokenize alike share an entry, and a reloaded model never sees the old version's states).
/// Least recently used entries leave first. An entry is the encoding's task, so concurrent requests with one prompt
/// share one encoder call; a failed encoding is replaced by the next lookup, never served. Hits and misses are counted
/// (<c>genservice_prompt_cache_hits_total</c>, <c>genservice_prompt_cache_misses_total</c>, by model).
/// </summary>
internal sealed class PromptEmbeddingCache
{
    private readonly int _capacity;
    private readonly Dictionary<string, LinkedListNode<(string Key, Task<float[]> Value)>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, Task<float[]> Value)> _recency = new();
    private readonly Lock _lock = new();
    private readonly Counter<long>? _hits;
    private readonly Counter<long>? _misses;

    public PromptEmbeddingCache(int capacity, IMeterFactory? meterFactory)
    {
        _capacity = capacity;
        if (meterFactory is not null)
        {
            Meter meter = meterFactory.Create(GenServiceMetrics.MeterName);
            _hits = meter.CreateCounter<long>("genservice.prompt_cache.hits", "{lookup}", "Prompt embeddings found in the cache (text-to-image).");
            _misses = meter.CreateCounter<long>("genservice.prompt_cache.misses", "{lookup}", "Prompt embeddings computed by the text encoder (text-to-image).");
        }
    }

    /// <summary>Entries held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// The hidden states of <paramref name="ids"/> for one model version: the cached task, or <paramref name="encode"/>'s,
    /// cached from now on. <paramref name="hit"/> says which.
    /// </summary>
    public Task<float[]> GetOrAdd(string model, string version, int[] ids, Func<Task<float[]>> encode, out bool hit)
    {
        if (_capacity == 0)
        {
            hit = false;
            _misses?.Add(1, new KeyValuePair<string, object?>("model", model));
            return encode();
        }

        string key = $"{model}\u0001{version}\u0001{string.Join(',', ids)}";
        Task<float[]> task;
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out LinkedListNode<(string Key, Task<float[]> Value)>? failed) && failed.Value.Value is { IsFaulted: true } or { IsCanceled: true })
            {
                // A failed encoding is never served: the next request for it encodes again.
                _recency.Remove(failed);
                _entries.Remove(key);
            }

            if (_entries.TryGetValue(key, out LinkedListNode<(string Key, Task<float[]> Value)>? node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                hit = true;
                task = node.Value.Value;
            }
            else
            {
                hit = false;
                task = encode();
                _entries[key] = _recency.AddFirst((key, task));
                while (_entries.Count > _capacity)
                {
                    LinkedListNode<(string Key, Task<float[]> Value)> last = _recency.Last!;
                    _recency.RemoveLast();
                    _entries.Remove(last.Value.Key);
                }
            }
        }

        (hit ? _hits : _misses)?.Add(1, new KeyValuePair<string, object?>("model", model));
        return task;
    }
}
