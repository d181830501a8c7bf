using GenService.Generation.Loops;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Generation.Ar;

/// <summary>
/// The decoder graph of an AR model, in canonical terms. Two ways to run it:
/// <code>
///   recompute:  input_ids [n, L]            -> logits [n, L, V]        (every step feeds the whole sequence)
///   KV cache:   prefill  input_ids [n, L], past [n,H,0,Dh]  -> logits, present [n,H,L,Dh]
///               step     input_ids [n, 1], past = present    -> logits, present [n,H,L+1,Dh]
/// </code>
/// attention_mask (ones over past + new) and position_ids (past .. past+S-1) are fed when the graph maps them;
/// no row is ever padded, because all rows of one request have the same length. A decoder with a cache can
/// still be run by recomputation: it gets empty pasts and its presents are not fetched.
/// </summary>
internal sealed class ArDecoder
{
    private readonly CacheSlot[] _cache;

    public ArDecoder(IGraphRunner runner, int vocabSize)
    {
        Runner = runner;
        VocabSize = vocabSize;
        InputIds = GraphIO.Input(runner, "input_ids");
        Logits = GraphIO.Output(runner, "logits");
        AttentionMask = runner.Signature.InputName("attention_mask");
        PositionIds = runner.Signature.InputName("position_ids");
        var slots = new List<CacheSlot>();
        foreach (TensorSpec past in runner.Signature.Inputs.Where(s => s.Canonical?.StartsWith("past_key_values.", StringComparison.Ordinal) == true))
        {
            // past_key_values.{i}.key -> present.{i}.key
            string presentCanonical = "present." + past.Canonical!["past_key_values.".Length..];
            string? present = runner.Signature.OutputName(presentCanonical);
            TensorSpec? presentSpec = runner.Signature.Outputs.FirstOrDefault(o => o.Name == present);
            long heads = past.Dims[1] >= 0 ? past.Dims[1] : presentSpec?.Dims[1] ?? -1;
            long headDim = past.Dims[3] >= 0 ? past.Dims[3] : presentSpec?.Dims[3] ?? -1;
            if (heads < 0 || headDim < 0)
            {
                throw new InvalidOperationException($"Graph {runner.V2Name}: '{past.Name}' must declare its heads and head_dim (dims 1 and 3) so an empty cache can be built.");
            }

            slots.Add(new CacheSlot(past.Name, present, heads, headDim));
        }

        _cache = [.. slots];
        HasCache = _cache.Length > 0 && _cache.All(s => s.Present is not null);
    }

    public IGraphRunner Runner { get; }

    public int VocabSize { get; }

    public string InputIds { get; }

    public string Logits { get; }

    public string? AttentionMask { get; }

    public string? PositionIds { get; }

    /// <summary>True when every past input has its present output: the KV-cache path is possible.</summary>
    public bool HasCache { get; }

    /// <summary>
    /// True when rows whose pasts have different lengths can share one call: each past is left-padded to the longest
    /// with zeros that attention_mask hides, and position_ids carry each row's true positions. Without both inputs
    /// the graph would see the padding (or count positions from the padded length), so such rows get separate calls.
    /// </summary>
    public bool CanMergePastLengths => HasCache && AttentionMask is not null && PositionIds is not null;

    /// <summary>Cache slots (past_key_values.{i}.key/value pairs count as two).</summary>
    public int CacheSlots => _cache.Length;

    /// <summary>Heads and head_dim of cache slot <paramref name="slot"/>.</summary>
    public (int Heads, int HeadDim) SlotShape(int slot) => ((int)_cache[slot].Heads, (int)_cache[slot].HeadDim);

    /// <summary>
    /// One decoder call: <paramref name="ids"/> is [rows, newTokens] row-major; <paramref name="past"/> the cache of
    /// the same rows (null: past length 0). Returns logits [rows, newTokens, V] and, when asked, the new cache.
    /// </summary>
    public async Task<(float[] Logits, KvCache? Present, InferenceResult Result)> RunAsync(
        long[] ids, int rows, int newTokens, KvCache? past, bool wantPresent, CancellationToken ct)
    {
        int pastLength = past?.Length ?? 0;
        (Tensor logits, Tensor[]? presents, InferenceResult result) = await RunPackedAsync(
            new PackedCall(ids, rows, newTokens, pastLength) { Pasts = past?.Tensors }, wantPresent, dispatchImmediately: false, ct);
        return (logits.AsFloats(), presents is null ? null : new KvCache(presents, pastLength + newTokens), result);
    }

    /// <summary>
    /// Pre-allocated outputs of one call from <paramref name="buffers"/>: logits [rows, newTokens, V] and, when
    /// <paramref name="withPresents"/>, each present [rows, H, pastLength + newTokens, Dh] (see <see cref="PackedCall.OutputBuffers"/>).
    /// </summary>
    public Dictionary<string, Tensor> OutputBuffers(CallBuffers buffers, int rows, int newTokens, int pastLength, bool withPresents)
    {
        var outputs = new Dictionary<string, Tensor>(1 + _cache.Length, StringComparer.Ordinal) { [Logits] = buffers.Floats(rows, newTokens, VocabSize) };
        if (withPresents && HasCache)
        {
            foreach (CacheSlot slot in _cache)
            {
                outputs[slot.Present!] = buffers.Floats(rows, slot.Heads, pastLength + newTokens, slot.HeadDim);
            }
        }

        return outputs;
    }

    /// <summary>
    /// One decoder call in full generality (the iteration-level loop packs rows of different requests): the mask and
    /// positions default to all ones and past .. past+S-1; absent pasts are empty. Presents come back as the graph
    /// returns them ([rows, H, past + newTokens, Dh]) when <paramref name="wantPresent"/> and the graph has a cache.
    /// </summary>
    public async Task<(Tensor Logits, Tensor[]? Presents, InferenceResult Result)> RunPackedAsync(
        PackedCall call, bool wantPresent, bool dispatchImmediately, CancellationToken ct)
    {
        (long[] ids, int rows, int newTokens, int pastLength) = (call.Ids, call.Rows, call.NewTokens, call.PastLength);
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            [InputIds] = Tensor.FromLongs(ids, rows, newTokens),
        };
        if (AttentionMask is not null)
        {
            long[]? mask = call.AttentionMask;
            if (mask is null)
            {
                mask = new long[rows * (pastLength + newTokens)];
                Array.Fill(mask, 1L);
            }

            inputs[AttentionMask] = Tensor.FromLongs(mask, rows, pastLength + newTokens);
        }

        if (PositionIds is not null)
        {
            long[]? positions = call.PositionIds;
            if (positions is null)
            {
                positions = new long[rows * newTokens];
                for (int r = 0; r < rows; r++)
                {
                    for (int j = 0; j < newTokens; j++)
                    {
                        positions[(r * newTokens) + j] = pastLength + j;
                    }
                }
            }

            inputs[PositionIds] = Tensor.FromLongs(positions, rows, newTokens);
        }

        for (int s = 0; s < _cache.Length; s++)
        {
            inputs[_cache[s].Past] = call.Pasts?[s] ?? Tensor.FromFloats([], rows, _cache[s].Heads, 0, _cache[s].HeadDim);
        }

        bool fetchPresent = wantPresent && HasCache;
        var outputs = new List<string>(1 + _cache.Length) { Logits };
        if (fetchPresent)
        {
            outputs.AddRange(_cache.Select(c => c.Present!));
        }

        var request = new InferenceRequest { Inputs = inputs, Outputs = outputs, DispatchImmediately = dispatchImmediately, OutputBuffers = call.OutputBuffers };
        InferenceResult result = await Runner.InferAsync(request, ct);
        Tensor logits = result.Outputs[Logits];
        if (logits.Shape.Length != 3 || logits.Shape[0] != rows || logits.Shape[1] != newTokens || logits.Shape[2] != VocabSize)
        {
            throw new InvalidOperationException($"Graph {Runner.V2Name} returned logits of shape [{string.Join(",", logits.Shape)}]; expected [{rows},{newTokens},{VocabSize}].");
        }

        Tensor[]? presents = fetchPresent ? [.. _cache.Select(c => result.Outputs[c.Present!])] : null;
        return (logits, presents, result);
    }

    private sealed record CacheSlot(string Past, string? Present, long Heads, long HeadDim);
}

/// <summary>
/// The inputs of one decoder call: ids [rows, newTokens], the pasts' (padded) length, and optionally the attention
/// mask [rows, past + newTokens], position ids [rows, newTokens] and pasts (one [rows, H, past, Dh] per slot).
/// </summary>
internal sealed record PackedCall(long[] Ids, int Rows, int NewTokens, int PastLength)
{
    public long[]? AttentionMask { get; init; }

    public long[]? PositionIds { get; init; }

    public Tensor[]? Pasts { get; init; }

    /// <summary>Where the graph may write its outputs (<see cref="InferenceRequest.OutputBuffers"/>); read the results, not these.</summary>
    public IReadOnlyDictionary<string, Tensor>? OutputBuffers { get; init; }
}

/// <summary>The presents of one call, ready to be the next call's pasts: one [rows, H, Length, Dh] tensor per name.</summary>
internal sealed class KvCache(Tensor[] tensors, int length)
{
    public Tensor[] Tensors { get; } = tensors;

    public int Length { get; } = length;

    /// <summary>The cache of the rows kept (in that order): finished rows leave the batch.</summary>
    public KvCache SelectRows(IReadOnlyList<int> keep)
    {
        var sliced = new Tensor[Tensors.Length];
        for (int s = 0; s < Tensors.Length; s++)
        {
            Tensor t = Tensors[s];
            float[] data = t.AsFloats();
            int per = t.Rows == 0 ? 0 : data.Length / t.Rows;
            var dst = new float[keep.Count * per];
            for (int k = 0; k < keep.Count; k++)
            {
                Array.Copy(data, keep[k] * per, dst, k * per, per);
            }

            long[] shape = (long[])t.Shape.Clone();
            shape[0] = keep.Count;
            sliced[s] = Tensor.FromFloats(dst, shape);
        }

        return new KvCache(sliced, Length);
    }
}
