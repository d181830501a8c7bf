using GenService.Generation.TextToImage;

namespace GenService.Generation.Tests.TextToImage;

public sealed class PromptEmbeddingCacheTests
{
    private int _encodings;

    private Func<Task<float[]>> Encoder(float value) => () =>
    {
        _encodings++;
        return Task.FromResult(new[] { value });
    };

    [Fact]
    public async Task The_same_ids_of_the_same_model_version_hit_other_ids_versions_and_models_miss()
    {
        var cache = new PromptEmbeddingCache(8, meterFactory: null);
        float[] first = await cache.GetOrAdd("m", "v1", [1, 2, 3], Encoder(1), out bool hit1);
        float[] second = await cache.GetOrAdd("m", "v1", [1, 2, 3], Encoder(99), out bool hit2);
        Assert.Equal([1f], first);
        Assert.Equal([1f], second);
        await cache.GetOrAdd("m", "v1", [1, 2, 4], Encoder(2), out bool otherIds);
        await cache.GetOrAdd("m", "v2", [1, 2, 3], Encoder(3), out bool otherVersion);
        await cache.GetOrAdd("n", "v1", [1, 2, 3], Encoder(4), out bool otherModel);
        Assert.Equal([false, true, false, false, false], new[] { hit1, hit2, otherIds, otherVersion, otherModel });
        Assert.Equal(4, _encodings);
        Assert.Equal(4, cache.Count);
    }

    [Fact]
    public async Task The_least_recently_used_entry_leaves_first()
    {
        var cache = new PromptEmbeddingCache(2, meterFactory: null);
        await cache.GetOrAdd("m", "v", [1], Encoder(1), out _);
        await cache.GetOrAdd("m", "v", [2], Encoder(2), out _);
        await cache.GetOrAdd("m", "v", [1], Encoder(1), out bool touched); // [1] is now the most recent
        await cache.GetOrAdd("m", "v", [3], Encoder(3), out _);            // evicts [2]
        await cache.GetOrAdd("m", "v", [1], Encoder(1), out bool stillThere);
        await cache.GetOrAdd("m", "v", [2], Encoder(2), out bool evicted);
        Assert.True(touched);
        Assert.True(stillThere);
        Assert.False(evicted);
        Assert.Equal(2, cache.Count);
    }

    [Fact]
    public async Task Concurrent_requests_for_one_prompt_share_one_encoding_and_a_failure_is_not_kept()
    {
        var cache = new PromptEmbeddingCache(4, meterFactory: null);
        var gate = new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<float[]> first = cache.GetOrAdd("m", "v", [7], () => gate.Task, out _);
        Task<float[]> second = cache.GetOrAdd("m", "v", [7], Encoder(99), out bool shared);
        Assert.True(shared);
        Assert.Same(first, second);
        gate.SetException(new InvalidOperationException("encoder failed"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => second);

        // The next request encodes again instead of inheriting the failure.
        float[] again = await cache.GetOrAdd("m", "v", [7], Encoder(5), out bool hit);
        Assert.Equal([5f], again);
        Assert.False(hit);
    }

    [Fact]
    public async Task Size_zero_turns_the_cache_off()
    {
        var cache = new PromptEmbeddingCache(0, meterFactory: null);
        await cache.GetOrAdd("m", "v", [1], Encoder(1), out bool a);
        await cache.GetOrAdd("m", "v", [1], Encoder(1), out bool b);
        Assert.False(a || b);
        Assert.Equal(2, _encodings);
        Assert.Equal(0, cache.Count);
    }
}
