namespace GenService.Generation.Diffusion;

/// <summary>What a diffusion loop reports: a step done (when progress is asked for), then the finished samples.</summary>
public abstract record DiffusionEvent;

/// <summary>Every sample of the request has completed <paramref name="Step"/> of <paramref name="Steps"/> steps.</summary>
/// <param name="Step">Steps done, 1..Steps.</param>
/// <param name="Steps">Steps the request runs.</param>
/// <param name="Timestep">The training timestep of the step just done.</param>
/// <param name="ElapsedMs">Since the request entered the loop.</param>
public sealed record DiffusionStepDone(int Step, int Steps, double Timestep, double ElapsedMs) : DiffusionEvent;

/// <summary>The request's samples (x_0, flat, in the model's space), its snapshots when asked for, and its graph time.</summary>
public sealed record DiffusionCompleted(float[][] Samples, List<DiffusionSnapshot>[]? Intermediates, InferenceTimings Timings) : DiffusionEvent;

/// <summary>One sample after <paramref name="Step"/>: x_t and the sampler's predicted x_0 (return_intermediates).</summary>
public sealed record DiffusionSnapshot(int Step, double Timestep, float[] Sample, float[] PredictedOriginal);
