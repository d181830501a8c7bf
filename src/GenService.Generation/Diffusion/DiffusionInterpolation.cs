using GenService.Generation.Latent;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;

namespace GenService.Generation.Diffusion;

/// <summary>
/// POST /v1/diffusion/{model}/interpolations: frames between two starting noises x_T (before the sampler's sigma
/// scaling), each frame sampled with deterministic DDIM (eta 0), so nearby noises give nearby samples.
/// </summary>
public static class DiffusionInterpolation
{
    /// <summary>The job that samples every frame, and each frame's position t in [0, 1]; run it on an <see cref="IDiffusionLoop"/>.</summary>
    public static async Task<(DiffusionJob Job, double[] Positions)> CreateAsync(InterpolationParameters request, ILoadedModel model, int maxCount)
    {
        ModelManifest manifest = model.Manifest;
        int frames = Interpolation.Frames(request, maxCount);
        if (request.Temperature is not null)
        {
            throw new RequestValidationException("temperature", "'temperature' does not apply to diffusion interpolation.");
        }

        float[] from = await Interpolation.EndAsync(request.From, "from", manifest.SampleElements, manifest, encode: null);
        float[] to = await Interpolation.EndAsync(request.To, "to", manifest.SampleElements, manifest, encode: null);
        float[][] latents = Interpolation.Path(from, to, frames, request.Method);
        DiffusionJob job = DiffusionJob.Create(new DiffusionParameters
        {
            Latents = latents,
            ClassLabel = request.ClassLabel,
            Steps = request.Steps,
            Sampler = "ddim",
            Eta = 0,
            GuidanceScale = request.GuidanceScale,
            Seed = request.From?.Seed ?? 0,
        }, model, maxCount);
        if (job.Labels is not null && request.ClassLabel is null && manifest.Conditioning?.NullClass is null)
        {
            throw new RequestValidationException("class_label", $"Model '{manifest.Name}' is class-conditional without a null class: give 'class_label'.");
        }

        return (job, Interpolation.Positions(frames));
    }
}
