using GenService.Inference.Runtime;
using GenService.Testing;

namespace GenService.Api.Tests.Infrastructure;

/// <summary>A graph runner that passes its identity through to the real one; subclasses decide what a call does.</summary>
public abstract class WrappedRunner(IGraphRunner inner) : IGraphRunner
{
    protected IGraphRunner Inner => inner;

    public string ModelName => inner.ModelName;

    public string Role => inner.Role;

    public string V2Name => inner.V2Name;

    public GraphSignature Signature => inner.Signature;

    public int MaxBatchSize => inner.MaxBatchSize;

    public abstract ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// The real runner behind a gate: each call counts as entered, then waits until the test lets it through
/// (<see cref="Release"/>, <see cref="Open"/>) and runs on the real graph. A test awaits <see cref="WhenEntered"/>
/// for the exact moment a call is inside (to fix who arrives before an iteration, to act while one is held)
/// instead of slowing every call down with a delay and hoping the timing works out.
/// </summary>
internal sealed class GatedRunner(IGraphRunner inner) : WrappedRunner(inner)
{
    private readonly SemaphoreSlim _gate = new(0);
    private readonly AwaitableCount _entered = new();

    /// <summary>Calls that reached the runner, held ones included.</summary>
    public int Calls => _entered.Value;

    /// <summary>Completes once <paramref name="calls"/> calls have reached the runner (held ones included).</summary>
    public Task WhenEntered(int calls) => _entered.WhenReached(calls);

    /// <summary>Lets <paramref name="calls"/> more calls through.</summary>
    public void Release(int calls) => _gate.Release(calls);

    /// <summary>Lets every call through from now on, the held ones included.</summary>
    public void Open() => _gate.Release(1 << 20);

    public override async ValueTask<InferenceResult> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        _entered.Increment();
        await _gate.WaitAsync(cancellationToken);
        return await Inner.InferAsync(request, cancellationToken);
    }
}
