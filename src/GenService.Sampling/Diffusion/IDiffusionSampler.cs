namespace GenService.Sampling.Diffusion;

/// <summary>
/// The per-sample memory of a sampler (DPM-Solver++ keeps the previous x0 prediction; PNDM its last model outputs,
/// a kept sample and its step counter). One per sample of a
/// request; created by <see cref="IDiffusionSampler.CreateState"/>. Not thread-safe, never shared between samples.
/// </summary>
public interface ISamplerState
{
    /// <summary>Elements per sample this state was made for.</summary>
    int Elements { get; }

    /// <summary>The step index of the last <see cref="IDiffusionSampler.Step"/> (-1 before the first).</summary>
    int LastStepIndex { get; }
}

/// <summary>
/// A diffusion sampler for one request: its timesteps and the update rule. Immutable and thread-safe; everything
/// that changes along the way lives in the <see cref="ISamplerState"/> of each sample, so an iteration loop can advance
/// many requests (each with its own sampler, steps and position) one step at a time:
/// <code>
///   x = latents * InitNoiseSigma                (or AddNoise(init, noise, start) for img2img)
///   for i in start..Timesteps.Count-1:
///       ScaleModelInput(x, i, input)             (euler: x / sqrt(sigma^2 + 1), others: copy)
///       output = model(input, Timesteps[i])      (rounded for int64 timestep inputs; guidance applied here)
///       Step(state, output, i, x, noise_i, x0)   (noise_i: fresh N(0, 1) when NeedsNoise(i), else empty)
/// </code>
/// </summary>
public interface IDiffusionSampler
{
    SamplerKind Kind { get; }

    /// <summary>
    /// The timestep given to the model at each step, noisiest first (fractional for euler linspace). N entries, except
    /// pndm: N + 1 (its second timestep twice; 1 for N = 1), or N + 9 with the Runge-Kutta warm-up.
    /// </summary>
    IReadOnlyList<double> Timesteps { get; }

    /// <summary>x_T = latents * InitNoiseSigma (1 except for the Euler samplers).</summary>
    double InitNoiseSigma { get; }

    /// <summary>Network evaluations of a full run (before classifier-free guidance doubles them) = Timesteps.Count.</summary>
    int NetworkEvaluations { get; }

    /// <summary>Whether step <paramref name="stepIndex"/> consumes fresh noise: ddpm (t &gt; 0), ddim with eta &gt; 0, euler_ancestral (not the last step).</summary>
    bool NeedsNoise(int stepIndex);

    /// <summary>What the model sees for x at step <paramref name="stepIndex"/>.</summary>
    void ScaleModelInput(ReadOnlySpan<float> x, int stepIndex, Span<float> modelInput);

    /// <summary>
    /// One step for one sample: updates <paramref name="x"/> in place from the model's output at
    /// <see cref="Timesteps"/>[stepIndex]. <paramref name="noise"/> must hold x's length of N(0, 1) values when
    /// <see cref="NeedsNoise"/> is true and is ignored otherwise; <paramref name="predictedX0"/> receives the
    /// model's estimate of the clean sample, or is empty when not wanted. Steps of one state must come in order.
    /// </summary>
    void Step(ISamplerState state, ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> x, ReadOnlySpan<float> noise, Span<float> predictedX0);

    ISamplerState CreateState(int elements);

    /// <summary>
    /// img2img (SDEdit) as diffusers' pipelines: init_timestep = min(floor(N * strength), N), start = N - init_timestep,
    /// with N the requested steps; the steps from start to Timesteps.Count - 1 run. Returns Timesteps.Count when strength
    /// is so small that no step runs (the init comes back unchanged); pndm lists more than N timesteps, so there
    /// strength 0 still runs the last one, as diffusers does.
    /// </summary>
    int StartStepForStrength(double strength);

    /// <summary>
    /// Noises a clean sample to the level of step <paramref name="stepIndex"/> (the scheduler's add_noise). At
    /// stepIndex == Timesteps.Count (no step to run) it copies <paramref name="x0"/>.
    /// </summary>
    void AddNoise(ReadOnlySpan<float> x0, ReadOnlySpan<float> noise, int stepIndex, Span<float> xt);
}
