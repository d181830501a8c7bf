namespace GenService.Generation.Diffusion;

/// <summary>A diffusion sampling request as sent (the API's diffusion fields); <see cref="DiffusionJob.Create"/> validates it.</summary>
public sealed record DiffusionParameters : SampleParameters
{
    /// <summary>Inference steps, 1..num_train_timesteps (default 50).</summary>
    public int? Steps { get; init; }

    /// <summary>A name of <see cref="WireChoices.Sampler"/> (default ddim).</summary>
    public string? Sampler { get; init; }

    /// <summary>DDIM stochasticity in [0, 1] (default 0).</summary>
    public double? Eta { get; init; }

    /// <summary>A name of <see cref="WireChoices.Spacing"/> (default: the model's scheduler).</summary>
    public string? TimestepSpacing { get; init; }

    /// <summary>Classifier-free guidance scale (default 1 = off).</summary>
    public double? GuidanceScale { get; init; }

    /// <summary>img2img: the starting image, flat, in the model's range (the web layer decodes PNGs).</summary>
    public float[]? Init { get; init; }

    /// <summary>img2img: how far to noise <see cref="Init"/>, (0, 1] (default 0.8).</summary>
    public double? Strength { get; init; }

    /// <summary>Text-to-image: the text to draw (default "").</summary>
    public string? Prompt { get; init; }

    /// <summary>Text-to-image: the text to steer away from; its embedding replaces the empty prompt's under guidance (default "").</summary>
    public string? NegativePrompt { get; init; }

    /// <summary>Text-to-image: image height in pixels, a multiple of the pipeline's size step (default: the UNet's sample_size x the VAE factor).</summary>
    public int? Height { get; init; }

    /// <summary>Text-to-image: image width in pixels (as <see cref="Height"/>).</summary>
    public int? Width { get; init; }

    /// <summary>k snapshots of x_t and the predicted x0 along the way (default 0).</summary>
    public int? ReturnIntermediates { get; init; }
}
