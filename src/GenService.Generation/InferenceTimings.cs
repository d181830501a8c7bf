using GenService.Inference.Runtime;

namespace GenService.Generation;

/// <summary>Accumulates queue and compute time over the graph calls of one request.</summary>
public sealed class InferenceTimings
{
    public TimeSpan Queue { get; private set; }

    public TimeSpan Compute { get; private set; }

    public void Add(InferenceResult result)
    {
        Queue += result.QueueTime;
        Compute += result.ComputeTime;
    }
}
