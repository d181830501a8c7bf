using System.Diagnostics;
using System.Runtime.CompilerServices;
using GenService.Generation.Loops;
using GenService.Inference.Manifest;
using GenService.Inference.Runtime;

namespace GenService.Generation.Diffusion;

/// <summary>
/// Request-level diffusion (<see cref="LoopMode.Request"/>, the fallback and the comparison point): each request runs
/// its own step loop, one denoiser call per step with all of its rows; the graph's dynamic batcher merges the calls of
/// concurrent requests that happen to coincide.
/// </summary>
internal sealed class DiffusionRequestLoop(GenerationTelemetry telemetry) : IDiffusionLoop
{
    public LoopMode Mode => LoopMode.Request;

    public async IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, bool progress, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var timings = new InferenceTimings();
        (DiffusionSampleCursor[] samples, List<DiffusionSnapshot>[]? intermediates) = Cursors(job);
        var batch = new DenoiserBatch(job.Denoiser);
        int rows = DenoiserBatch.RowsOf(samples);
        var scratch = new float[3 * job.SampleElements];
        int total = job.Sampler.Timesteps.Count;
        int stepsDone = 0;
        Exception? stopped = new OperationCanceledException("The caller stopped reading the events.");
        try
        {
            for (int step = job.StartStep; step < total; step++)
            {
                InferenceResult result;
                try
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    result = await job.Denoiser.InferAsync(batch.Build(samples, rows, dispatchImmediately: false), cancellationToken);
                }
                catch (Exception e)
                {
                    stopped = e;
                    throw;
                }

                timings.Add(result);
                DenoiserBatch.Advance(samples, result.Outputs[batch.PredictionName].AsFloats(), scratch);
                stepsDone++;
                if (progress)
                {
                    yield return Progress(job, stepsDone, clock);
                }
            }

            stopped = null;
        }
        finally
        {
            telemetry.Ended(ModelFamily.Diffusion, job.Manifest.Name, job.Count, (long)stepsDone * rows, stepsDone, Mode, stopped);
        }

        yield return new DiffusionCompleted(job.X, intermediates, timings);
    }

    /// <summary>A cursor per sample of the job, and the per-sample snapshot lists when intermediates are asked for.</summary>
    internal static (DiffusionSampleCursor[] Samples, List<DiffusionSnapshot>[]? Intermediates) Cursors(DiffusionJob job)
    {
        HashSet<int> snapshotSteps = SnapshotSteps(job.StartStep, job.Sampler.Timesteps.Count, job.Intermediates);
        List<DiffusionSnapshot>[]? intermediates = job.Intermediates > 0 ? [.. Enumerable.Range(0, job.Count).Select(_ => new List<DiffusionSnapshot>())] : null;
        var samples = new DiffusionSampleCursor[job.Count];
        for (int i = 0; i < job.Count; i++)
        {
            samples[i] = new DiffusionSampleCursor(job, i, snapshotSteps, intermediates?[i]);
        }

        return (samples, intermediates);
    }

    /// <summary>The progress event after <paramref name="stepsDone"/> steps of every sample of the job.</summary>
    internal static DiffusionStepDone Progress(DiffusionJob job, int stepsDone, Stopwatch clock)
        => new(stepsDone, job.StepsToRun, job.Sampler.Timesteps[job.StartStep + stepsDone - 1], Math.Round(clock.Elapsed.TotalMilliseconds, 3));

    /// <summary>k step indices evenly spread over [start, total), the last one always the final step.</summary>
    internal static HashSet<int> SnapshotSteps(int start, int total, int k)
    {
        var steps = new HashSet<int>();
        int run = total - start;
        for (int j = 1; j <= k; j++)
        {
            steps.Add(start + (int)Math.Round((double)j * run / k) - 1);
        }

        return steps;
    }
}
