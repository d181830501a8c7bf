using GenService.Generation.Diffusion;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Diffusion;
using GenService.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace GenService.Generation.Tests.Diffusion;

/// <summary>
/// A denoiser in plain C#, row-independent by construction: prediction = 0.8 tanh(x + t/1000 + 0.3 y) per element.
/// It records every call (rows, timestep and label per row) and can hold each call until the test releases it,
/// so a test can step the loop one iteration at a time; a test awaits the exact moment calls enter or leave
/// (<see cref="WhenEntered"/>, <see cref="WhenLeft"/>) instead of polling or sleeping.
/// </summary>
internal sealed class ScriptedDenoiser : IGraphRunner, ILoadedModel
{
    private readonly SemaphoreSlim? _gate;
    private readonly TimeSpan _computeTime;
    private readonly AwaitableCount _entered = new();
    private readonly AwaitableCount _left = new();

    /// <param name="maxBatchSize">The graph's max_batch_size.</param>
    /// <param name="gated">Hold every call until <see cref="Release"/> or <see cref="Open"/>.</param>
    /// <param name="computeMs">The compute time each call reports (what the batcher would report).</param>
    public ScriptedDenoiser(int maxBatchSize = 8, bool gated = false, double computeMs = 1)
    {
        _computeTime = TimeSpan.FromMilliseconds(computeMs);
        MaxBatchSize = maxBatchSize;
        _gate = gated ? new SemaphoreSlim(0) : null;
        Manifest = new ModelManifest
        {
            Name = "scripted-ddpm",
            Family = ModelFamily.Diffusion,
            Output = new OutputSpec { Kind = "image", Shape = [1, 2, 2], Range = [-1, 1] },
            Conditioning = new ConditioningSpec { NumClasses = 4, NullClass = 4 },
            Graphs = new Dictionary<string, GraphSpec> { ["denoiser"] = new() { File = "denoiser.onnx" } },
            Scheduler = new SchedulerConfig(),
        };
        Graphs = new Dictionary<string, IGraphRunner> { ["denoiser"] = this };
    }

    /// <summary>One recorded call: per row, the timestep and the class label.</summary>
    public sealed record Call(long[] Timesteps, long[] Labels, bool DispatchImmediately)
    {
        public int Rows => Timesteps.Length;
    }

    public List<Call> Calls { get; } = [];

    public long RowsComputed { get; private set; }

    /// <summary>When set, calls fail as a closed (unloaded) model version's runner does.</summary>
    public bool Closed { get; set; }

    /// <summary>Calls that reached the denoiser, including those held at the gate.</summary>
    public int Entered => _entered.Value;

    // ILoadedModel
    public ModelManifest Manifest { get; }

    public IReadOnlyDictionary<string, IGraphRunner> Graphs { get; }

    public IGraphRunner? Graph(string role) => Graphs.GetValueOrDefault(role);

    // IGraphRunner
    public string ModelName => Manifest.Name;

    public string Role => "denoiser";

    public string V2Name => "scripted-ddpm.denoiser";

    public GraphSignature Signature { get; } = new(
        [new TensorSpec("x", "sample", TensorElementType.Float32, [-1, 1, 2, 2]), new TensorSpec("t", "timestep", TensorElementType.Int64, [-1]),
         new TensorSpec("y", "class_label", TensorElementType.Int64, [-1])],
        [new TensorSpec("eps", "prediction", TensorElementType.Float32, [-1, 1, 2, 2])]);

    public int MaxBatchSize { get; }

    public const string FailureMessage = "injected denoiser failure";

    /// <summary>The first line of a poisoned call's error (<see cref="PoisonLabel"/>).</summary>
    public const string PoisonMessage = "[ErrorCode:RuntimeException] Gather: indices element out of data bounds";

    private int _inFlight;
    private int _maxInFlight;

    /// <summary>The sessions the loop may use at once (a DynamicBatcher's instances).</summary>
    public int Concurrency { get; init; } = 1;

    /// <summary>Most calls that were inside <see cref="InferAsync"/> at the same time.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    /// <summary>Calls inside <see cref="InferAsync"/> now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The call (1-based, in the order they enter) that throws <see cref="FailureMessage"/>; 0: none.</summary>
    public int FailCall { get; set; }

    /// <summary>
    /// A class label the denoiser cannot compute: any call holding a row with it fails, the whole call, as ONNX Runtime
    /// fails on one bad row (a multi-line message: the reason, then a stack that must not reach a client). Null: none.
    /// </summary>
    public long? PoisonLabel { get; set; }

    /// <summary>Calls that failed on <see cref="PoisonLabel"/>.</summary>
    public int PoisonedCalls => Volatile.Read(ref _poisoned);

    private int _poisoned;

    /// <summary>Lets <paramref name="calls"/> more calls through (gated denoisers only).</summary>
    public void Release(int calls) => _gate!.Release(calls);

    /// <summary>Lets every call through from now on, the held ones included (gated denoisers only).</summary>
    public void Open() => _gate!.Release(1 << 20);

    /// <summary>Completes once <paramref name="calls"/> calls have entered the denoiser (held ones included).</summary>
    public Task WhenEntered(int calls) => _entered.WhenReached(calls);

    /// <summary>Completes once <paramref name="calls"/> calls have left it, answered or failed (no longer <see cref="InFlight"/>).</summary>
    public Task WhenLeft(int calls) => _left.WhenReached(calls);

    public async ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        int inFlight = Interlocked.Increment(ref _inFlight);
        try
        {
            int seen;
            while (inFlight > (seen = Volatile.Read(ref _maxInFlight)) && Interlocked.CompareExchange(ref _maxInFlight, inFlight, seen) != seen)
            {
            }

            return await ComputeAsync(request, cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            _left.Increment();
        }
    }

    private async ValueTask<InferenceResult> ComputeAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        if (_entered.Increment() == FailCall)
        {
            await Task.Yield();
            throw new InvalidOperationException(FailureMessage);
        }

        if (Closed)
        {
            // What a DynamicBatcher of an unloaded or replaced model version answers.
            throw new GenService.Inference.ModelNotReadyException(ModelName, "this version of the model was closed because it was unloaded; fetch the model again.");
        }

        if (_gate is not null)
        {
            await _gate.WaitAsync(cancellationToken);
        }

        // The loop packs its calls into rented arrays, which may be longer than the tensor.
        float[] x = request.Inputs["x"].FloatSpan.ToArray();
        long[] t = request.Inputs["t"].AsLongs();
        long[] y = request.Inputs["y"].AsLongs();
        if (PoisonLabel is { } poison && y.Contains(poison))
        {
            Interlocked.Increment(ref _poisoned);
            throw new InvalidOperationException($"{PoisonMessage} idx={poison}\n   at Microsoft.ML.OnnxRuntime.InferenceSession.Run()");
        }
        int rows = t.Length;
        Assert.Equal(rows, y.Length);
        Assert.Equal(rows * 4, x.Length);
        lock (Calls)
        {
            Calls.Add(new Call((long[])t.Clone(), (long[])y.Clone(), request.DispatchImmediately));
            RowsComputed += rows;
        }

        var eps = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            int row = i / 4;
            eps[i] = 0.8f * MathF.Tanh(x[i] + (t[row] / 1000f) + (0.3f * y[row]));
        }

        return new InferenceResult
        {
            Outputs = new Dictionary<string, Tensor> { ["eps"] = Tensor.FromFloats(eps, rows, 1, 2, 2) },
            ComputeTime = _computeTime,
            BatchSize = rows,
        };
    }

    public Call[] CallsSnapshot()
    {
        lock (Calls)
        {
            return [.. Calls];
        }
    }

    public DiffusionIterationLoop Loop(int maxRows = 0, int maxQueuedSamples = 4096)
        => new(this, Manifest, maxRows, maxQueuedSamples, metrics: null, GenerationTelemetry.None, TimeProvider.System, NullLogger.Instance);

    public DiffusionJob Job(DiffusionParameters request) => DiffusionJob.Create(request, this, maxCount: 64);
}
