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
    private readonly HashSet<string> _halfInputs;
    private readonly HashSet<string> _halfOutputs;
    private int _roundRobin;
    private int _disposed;

    public OrtSessionPool(InferenceSession[] sessions, SessionOptions[] options, string provider)
    {
        _sessions = sessions;
        _options = options;
        Provider = provider;
        _halfInputs = [.. sessions[0].InputMetadata.Where(kv => kv.Value.IsTensor && kv.Value.ElementDataType == OrtElementType.Float16).Select(kv => kv.Key)];
        _halfOutputs = [.. sessions[0].OutputMetadata.Where(kv => kv.Value.IsTensor && kv.Value.ElementDataType == OrtElementType.Float16).Select(kv => kv.Key)];
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
        IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, IReadOnlyDictionary<string, Tensor>? outputBuffers, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return new ValueTask<IReadOnlyDictionary<string, Tensor>>(Run(inputs, outputNames, outputBuffers));
    }

    /// <summary>
    /// Runs synchronously on the calling thread. Outputs come back as copies in new arrays, or, when
    /// <paramref name="outputBuffers"/> holds every wanted output, written in place into those buffers (pinned for the
    /// call: ONNX Runtime fills them directly, nothing is allocated on the managed heap).
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<string> outputNames, IReadOnlyDictionary<string, Tensor>? outputBuffers = null)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        // Least busy = an idle one; the batcher caps concurrency at the pool size so one is normally
        // free. Round-robin sharing is the fallback (sessions are thread-safe).
        bool fromIdle = _idle.TryDequeue(out InferenceSession? session);
        session ??= _sessions[(int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)_sessions.Length)];
        // float16 outputs come back through a cast, so never in place.
        bool inPlace = outputBuffers is not null && outputNames.All(outputBuffers.ContainsKey) && !outputNames.Any(_halfOutputs.Contains);
        var names = new string[inputs.Count];
        var values = new OrtValue[inputs.Count];
        var outputValues = inPlace ? new OrtValue[outputNames.Count] : null;
        int n = 0;
        int o = 0;
        try
        {
            foreach ((string name, Tensor t) in inputs)
            {
                names[n] = name;
                values[n] = _halfInputs.Contains(name) ? ToHalfOrtValue(t) : ToOrtValue(t);
                n++;
            }

            IReadOnlyCollection<string> wanted = outputNames as IReadOnlyCollection<string> ?? [.. outputNames];
            if (outputValues is not null)
            {
                for (; o < outputValues.Length; o++)
                {
                    outputValues[o] = ToOrtValue(outputBuffers![outputNames[o]]);
                }

                session.Run(_runOptions, names, values, wanted, outputValues);
                return outputNames.ToDictionary(name => name, name => outputBuffers![name], StringComparer.Ordinal);
            }

            using IDisposableReadOnlyCollection<OrtValue> results = session.Run(_runOptions, names, values, wanted);
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

            for (int i = 0; i < o; i++)
            {
                outputValues![i].Dispose();
            }

            if (fromIdle)
            {
                _idle.Enqueue(session);
            }
        }
    }

    private static OrtValue ToOrtValue(Tensor t)
    {
        if (t.ElementCount() == 0)
        {
            // Zero-size dims (an empty KV cache [B,H,0,D]): nothing to pin, let ORT allocate.
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToOrt(t.ElementType), t.Shape);
        }

        // Over the tensor's own elements only: its buffer may be longer (a pooled one).
        int count = checked((int)t.ElementCount());
        return t.Data switch
        {
            float[] f => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, f.AsMemory(0, count), t.Shape),
            long[] l => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, l.AsMemory(0, count), t.Shape),
            int[] i => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, i.AsMemory(0, count), t.Shape),
            double[] d => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, d.AsMemory(0, count), t.Shape),
            bool[] b => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, b.AsMemory(0, count), t.Shape),
            _ => throw new NotSupportedException($"Tensor data {t.Data.GetType().Name} is not supported."),
        };
    }

    /// <summary>A float32 tensor cast to a float16 graph input (the service moves float32; the cast is at the boundary).</summary>
    private static OrtValue ToHalfOrtValue(Tensor t)
    {
        ReadOnlySpan<float> source = t.FloatSpan;
        var half = new Float16[source.Length];
        for (int i = 0; i < half.Length; i++)
        {
            half[i] = (Float16)source[i];
        }

        return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, half.AsMemory(), t.Shape);
    }

    private static Tensor FromOrtValue(OrtValue value)
    {
        OrtTensorTypeAndShapeInfo info = value.GetTensorTypeAndShape();
        long[] shape = info.Shape;
        if (info.ElementDataType == OrtElementType.Float16)
        {
            ReadOnlySpan<Float16> half = value.GetTensorDataAsSpan<Float16>();
            var data = new float[half.Length];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (float)half[i];
            }

            return new Tensor(TensorElementType.Float32, shape, data);
        }

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

    /// <summary>The type the service moves for a graph's element type: float16 moves as float32 (cast at the boundary).</summary>
    internal static TensorElementType? FromOrt(OrtElementType t) => t switch
    {
        OrtElementType.Float or OrtElementType.Float16 => TensorElementType.Float32,
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
