using GenService.Inference.Runtime;

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
