using System.Collections.Concurrent;
using GenService.Inference.Batching;
using GenService.Inference.Tensors;
using Microsoft.ML.OnnxRuntime;
using OrtElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace GenService.Inference.Runtime;

/// <summary>
/// <c>instances</c> ONNX Runtime sessions of one graph. A batch takes an idle session (the batcher
/// never runs more batches than sessions), runs it through the OrtValue API over the managed arrays
/// (pinned, no copy in), and copies each output out before the native values are disposed.
/// </summary>
internal sealed class OrtSessionPool : IBatchExecutor
{
    private readonly InferenceSession[] _sessions;
    private readonly SessionOptions[] _options;
    private readonly ConcurrentQueue<InferenceSession> _idle = new();
    private readonly RunOptions _runOptions = new();
    private int _roundRobin;
    private int _disposed;

    public OrtSessionPool(InferenceSession[] sessions, SessionOptions[] options, string provider)
    {
        _sessions = sessions;
        _options = options;
        Provider = provider;
        foreach (InferenceSession s in sessions)
        {
            _idle.Enqueue(s);
        }
    }

    /// <summary>The execution provider in use: cpu or cuda.</summary>
    public string Provider { get; }

    public int Instances => _sessions.Length;

    /// <summary>Input metadata of the graph (all sessions share it).</summary>
    public IReadOnlyDictionary<string, NodeMetadata> InputMetadata => _sessions[0].InputMetadata;

    public IReadOnlyDictionary<string, NodeMetadata> OutputMetadata => _sessions[0].OutputMetadata;

    public ValueTask<IReadOnlyDictionary<string, Tensor>> ExecuteAsync(
        IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return new ValueTask<IReadOnlyDictionary<string, Tensor>>(Run(inputs, outputNames));
    }

    /// <summary>Runs synchronously on the calling thread.</summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        // Least busy = an idle one; the batcher caps concurrency at the pool size so one is normally
        // free. Round-robin sharing is the fallback (sessions are thread-safe).
        bool fromIdle = _idle.TryDequeue(out InferenceSession? session);
        session ??= _sessions[(int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)_sessions.Length)];
        var names = new string[inputs.Count];
        var values = new OrtValue[inputs.Count];
        int n = 0;
        try
        {
            foreach ((string name, Tensor t) in inputs)
            {
                names[n] = name;
                values[n] = ToOrtValue(t);
                n++;
            }

            using IDisposableReadOnlyCollection<OrtValue> results = session.Run(_runOptions, names, values, outputNames as IReadOnlyCollection<string> ?? [.. outputNames]);
            var outputs = new Dictionary<string, Tensor>(outputNames.Count, StringComparer.Ordinal);
            int i = 0;
            foreach (OrtValue value in results)
            {
                outputs[outputNames[i++]] = FromOrtValue(value);
            }

            return outputs;
        }
        finally
        {
            for (int i = 0; i < n; i++)
            {
                values[i].Dispose();
            }

            if (fromIdle)
            {
                _idle.Enqueue(session);
            }
        }
    }

    private static OrtValue ToOrtValue(Tensor t)
    {
        if (t.Data.Length == 0)
        {
            // Zero-size dims (an empty KV cache [B,H,0,D]): nothing to pin, let ORT allocate.
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToOrt(t.ElementType), t.Shape);
        }

        return t.Data switch
        {
            float[] f => OrtValue.CreateTensorValueFromMemory(f, t.Shape),
            long[] l => OrtValue.CreateTensorValueFromMemory(l, t.Shape),
            int[] i => OrtValue.CreateTensorValueFromMemory(i, t.Shape),
            double[] d => OrtValue.CreateTensorValueFromMemory(d, t.Shape),
            bool[] b => OrtValue.CreateTensorValueFromMemory(b, t.Shape),
            _ => throw new NotSupportedException($"Tensor data {t.Data.GetType().Name} is not supported."),
        };
    }

    private static Tensor FromOrtValue(OrtValue value)
    {
        OrtTensorTypeAndShapeInfo info = value.GetTensorTypeAndShape();
        long[] shape = info.Shape;
        return info.ElementDataType switch
        {
            OrtElementType.Float => new Tensor(TensorElementType.Float32, shape, value.GetTensorDataAsSpan<float>().ToArray()),
            OrtElementType.Int64 => new Tensor(TensorElementType.Int64, shape, value.GetTensorDataAsSpan<long>().ToArray()),
            OrtElementType.Int32 => new Tensor(TensorElementType.Int32, shape, value.GetTensorDataAsSpan<int>().ToArray()),
            OrtElementType.Double => new Tensor(TensorElementType.Float64, shape, value.GetTensorDataAsSpan<double>().ToArray()),
            OrtElementType.Bool => new Tensor(TensorElementType.Bool, shape, value.GetTensorDataAsSpan<bool>().ToArray()),
            _ => throw new NotSupportedException($"ONNX output of type {info.ElementDataType} is not supported."),
        };
    }

    internal static OrtElementType ToOrt(TensorElementType t) => t switch
    {
        TensorElementType.Float32 => OrtElementType.Float,
        TensorElementType.Float64 => OrtElementType.Double,
        TensorElementType.Int32 => OrtElementType.Int32,
        TensorElementType.Int64 => OrtElementType.Int64,
        TensorElementType.Bool => OrtElementType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    internal static TensorElementType? FromOrt(OrtElementType t) => t switch
    {
        OrtElementType.Float => TensorElementType.Float32,
        OrtElementType.Double => TensorElementType.Float64,
        OrtElementType.Int32 => TensorElementType.Int32,
        OrtElementType.Int64 => TensorElementType.Int64,
        OrtElementType.Bool => TensorElementType.Bool,
        _ => null,
    };

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (InferenceSession s in _sessions)
        {
            s.Dispose();
        }

        foreach (SessionOptions o in _options)
        {
            o.Dispose();
        }

        _runOptions.Dispose();
    }
}
