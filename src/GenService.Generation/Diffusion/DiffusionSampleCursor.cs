using GenService.Sampling.Diffusion;
using GenService.Sampling.Random;

namespace GenService.Generation.Diffusion;

/// <summary>
/// One sample of a <see cref="DiffusionJob"/> on its way from x_T to x_0: its sampler state, its own step noise
/// stream and the next step index. Both loops (request-level and iteration-level) drive samples through
/// this one type, so a sample takes exactly the same arithmetic whichever loop runs it, and its noise stream
/// is consumed in its own step order however its steps are interleaved with other requests' steps.
/// Not thread-safe: one loop owns a cursor at a time.
/// </summary>
internal sealed class DiffusionSampleCursor
{
    private readonly ISamplerState _state;
    private readonly NoiseStream _noise;
    private readonly HashSet<int> _snapshotSteps;
    private readonly List<DiffusionSnapshot>? _intermediates;

    public DiffusionSampleCursor(DiffusionJob job, int index, HashSet<int> snapshotSteps, List<DiffusionSnapshot>? intermediates)
    {
        Job = job;
        Index = index;
        Step = job.StartStep;
        _state = job.Sampler.CreateState(job.SampleElements);
        _noise = new NoiseStream(job.Seed, (ulong)index, NoiseStreamIds.DiffusionStepNoise);
        _snapshotSteps = snapshotSteps;
        _intermediates = intermediates;
    }

    public DiffusionJob Job { get; }

    /// <summary>The iteration loop's bookkeeping for the request this sample belongs to (null in the request-level loop).</summary>
    public object? Owner { get; set; }

    /// <summary>Sample index within the request (keys its noise stream).</summary>
    public int Index { get; }

    /// <summary>The next step index to run (StartStep .. Timesteps.Count; the end means done).</summary>
    public int Step { get; private set; }

    public bool Done => Step >= Job.Sampler.Timesteps.Count;

    /// <summary>Steps this sample has completed.</summary>
    public int StepsDone => Step - Job.StartStep;

    /// <summary>Denoiser rows per step: the conditional row, plus the null-class row under guidance.</summary>
    public int Rows => Job.Guided ? 2 : 1;

    /// <summary>The timestep the denoiser sees at the current step.</summary>
    public double Timestep => Job.Sampler.Timesteps[Step];

    /// <summary>The class label of the conditional row (null when the model is unconditional).</summary>
    public int? Label => Job.Labels?[Index];

    /// <summary>The label of the unconditional row under guidance.</summary>
    public int UnconditionalLabel => Job.NullClass ?? 0;

    /// <summary>Writes what the denoiser sees for x at the current step (the sampler's input scaling).</summary>
    public void WriteModelInput(Span<float> row) => Job.Sampler.ScaleModelInput(Job.X[Index], Step, row);

    /// <summary>
    /// Advances one step from the denoiser's output rows (guidance combines <paramref name="unconditional"/> when
    /// the job is guided). <paramref name="scratch"/> holds 3 x elements of workspace.
    /// </summary>
    public void Advance(ReadOnlySpan<float> conditional, ReadOnlySpan<float> unconditional, Span<float> scratch)
    {
        int n = conditional.Length;
        Span<float> noise = scratch[..n];
        Span<float> guided = scratch.Slice(n, n);
        Span<float> x0 = scratch.Slice(2 * n, n);
        ReadOnlySpan<float> output = conditional;
        if (Job.Guided)
        {
            Guidance.Apply(unconditional, conditional, Job.GuidanceScale, guided);
            output = guided;
        }

        IDiffusionSampler sampler = Job.Sampler;
        if (sampler.NeedsNoise(Step))
        {
            _noise.FillNormal(noise);
        }
        else
        {
            noise.Clear();
        }

        float[] x = Job.X[Index];
        sampler.Step(_state, output, Step, x, noise, x0);
        if (_intermediates is not null && _snapshotSteps.Contains(Step))
        {
            _intermediates.Add(new DiffusionSnapshot(Step, sampler.Timesteps[Step], (float[])x.Clone(), x0.ToArray()));
        }

        Step++;
    }
}
