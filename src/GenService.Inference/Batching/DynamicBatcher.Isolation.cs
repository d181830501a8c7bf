using GenService.Inference.Hosting;
using GenService.Inference.Tensors;

namespace GenService.Inference.Batching;

/// <summary>
/// The failure path of a batch: one caller's row that the model cannot compute (a value outside an embedding that
/// validation could not know about, a graph that rejects some input) makes ONNX Runtime fail the whole merged call.
/// Rather than fail every request in it, the batcher re-runs the call's requests apart and fails only those that fail
/// alone.
/// <para>
/// How: bisection by request. The requests of the failed call (each request's chunk stays whole) are split in two
/// halves and each half runs; a half that succeeds delivers its rows, a half that fails is split again, down to single
/// requests. With one offender among k requests that is 2·⌈log2 k⌉ re-runs (k = 64 single-row requests: 12 small calls
/// instead of 64 one per request), and at most 2·m·⌈log2 k⌉ with m offenders; the worst case, every request failing
/// (a model fault), is 2·(k − 1). Per-request re-runs would cost k calls every time, and a poison caller can make that
/// happen on every batch.
/// </para>
/// <para>
/// Who is at fault: a request that fails alone while at least one other part of the same call succeeded gets
/// <see cref="InputNotComputableException"/> (400, the runtime's reason, first line), counted as
/// <c>genservice_rejected_total{reason="bad_input"}</c> and logged as one warning line without a stack. When no part
/// succeeds, or the call held a single request, there is nothing to compare with: the fault may as well be the
/// model's (a bug failing every row), so every request keeps the original error (a 500) and the failure is logged once,
/// with its stack.
/// </para>
/// </summary>
internal sealed partial class DynamicBatcher
{
    /// <summary>Graph calls made to isolate failures since the batcher started (tests bound it).</summary>
    internal int IsolationReruns => Volatile.Read(ref _isolationReruns);

    private int _isolationReruns;

    /// <summary>The merged call over <paramref name="batch"/> failed with <paramref name="error"/>: re-run its requests apart.</summary>
    private async Task IsolateAsync(List<RequestChunk> batch, int rows, Exception error)
    {
        // The requests of the call, in call order, each with its chunks (a request has one chunk per batch).
        List<List<RequestChunk>> parts = [.. Owners.Group(batch, c => c.Owner).Select(p => p.Items)];

        var state = new IsolationState();
        if (parts.Count > 1)
        {
            await BisectAsync(parts, state).ConfigureAwait(false);
        }

        if (state.Succeeded == 0)
        {
            // Nothing to compare with: every request keeps the original error, and the log has it once with its stack.
            Log.BatchFailed(_logger, V2Name, rows, error);
            foreach (RequestChunk c in batch)
            {
                c.Owner.Fail(error, removeQueued: true);
            }

            return;
        }

        foreach ((List<RequestChunk> part, Exception alone) in state.FailedAlone)
        {
            PendingRequest owner = part[0].Owner;
            InputNotComputableException offence = InputNotComputableException.For(V2Name, alone);
            _metrics?.RecordRejected(ModelName, Role, "bad_input");
            Log.BatchRowsIsolated(_logger, V2Name, offence.Reason, state.Succeeded, rows, state.Reruns);
            owner.Fail(offence, removeQueued: true);
        }
    }

    /// <summary>
    /// <paramref name="parts"/> (two or more requests) failed together: run each half; a half that fails is split
    /// again, a single request that fails is recorded as failing alone.
    /// </summary>
    private async Task BisectAsync(List<List<RequestChunk>> parts, IsolationState state)
    {
        int half = parts.Count / 2;
        foreach (List<List<RequestChunk>> side in (List<List<RequestChunk>>[])[parts[..half], parts[half..]])
        {
            Exception? failed = await TryRunPartsAsync(side, state).ConfigureAwait(false);
            if (failed is null)
            {
                state.Succeeded += side.Count;
            }
            else if (side.Count == 1)
            {
                state.FailedAlone.Add((side[0], failed));
            }
            else
            {
                await BisectAsync(side, state).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One re-run over the requests of <paramref name="parts"/>: their rows delivered on success, else the error.</summary>
    private async Task<Exception?> TryRunPartsAsync(List<List<RequestChunk>> parts, IsolationState state)
    {
        List<RequestChunk> chunks = [.. parts.SelectMany(p => p)];
        int rows = chunks.Sum(c => c.Rows);
        state.Reruns++;
        Interlocked.Increment(ref _isolationReruns);
        long start = _time.GetTimestamp();
        IReadOnlyDictionary<string, Tensor> result;
        bool whole = chunks.Count == 1 && chunks[0].Rows == chunks[0].Owner.Rows;
        try
        {
            IReadOnlyDictionary<string, Tensor> inputs = BatchTensors.Assemble(chunks, rows, Signature.Inputs);
            IReadOnlyList<string> outputs = BatchTensors.UnionOutputs(chunks, _validator.AllOutputs);
            IReadOnlyDictionary<string, Tensor>? buffers = whole ? chunks[0].Owner.Request.OutputBuffers : null;
            result = await _executor.ExecuteAsync(inputs, outputs, buffers, CancellationToken.None).ConfigureAwait(false);
            foreach (string name in outputs)
            {
                if (!result.TryGetValue(name, out Tensor? t) || t.Shape.Length == 0 || t.Shape[0] != rows)
                {
                    throw new InvalidOperationException($"Graph '{V2Name}' returned output '{name}' without {rows} rows along dimension 0.");
                }
            }
        }
        catch (Exception e)
        {
            return e;
        }

        TimeSpan compute = _time.GetElapsedTime(start);
        _metrics?.RecordCompute(ModelName, Role, compute);
        _metrics?.RecordBatchSize(ModelName, Role, rows);
        int offset = 0;
        foreach (RequestChunk c in chunks)
        {
            c.Owner.Deliver(c, result, offset, rows, compute, whole);
            offset += c.Rows;
        }

        return null;
    }

    /// <summary>What one isolation found: requests that completed, those that failed alone, and the re-runs it took.</summary>
    private sealed class IsolationState
    {
        public int Succeeded { get; set; }

        public int Reruns { get; set; }

        public List<(List<RequestChunk> Part, Exception Error)> FailedAlone { get; } = [];
    }
}
