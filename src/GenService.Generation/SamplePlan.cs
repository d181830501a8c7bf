using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Sampling.Random;

namespace GenService.Generation;

/// <summary>
/// The per-sample inputs of a sampling request after validation: how many, which seed, which class each
/// sample gets, and its unit-normal starting latent (drawn from NoiseStream(seed, i, Latent) or given).
/// Sample i depends only on (seed, i, parameters): never on count or on the other samples.
/// </summary>
internal sealed class SamplePlan
{
    private SamplePlan(int count, ulong seed, int[]? modelLabels, int?[] reportedLabels, float[][] latents, bool explicitLatents)
    {
        Count = count;
        Seed = seed;
        ModelLabels = modelLabels;
        ReportedLabels = reportedLabels;
        Latents = latents;
        ExplicitLatents = explicitLatents;
    }

    public int Count { get; }

    public ulong Seed { get; }

    /// <summary>Label fed to the model per sample (null for unconditional models).</summary>
    public int[]? ModelLabels { get; }

    /// <summary>Label reported per sample (null for the null class or unconditional models).</summary>
    public int?[] ReportedLabels { get; }

    /// <summary>Unit-normal latents, one flat array per sample, before temperature/truncation/sigma scaling.</summary>
    public float[][] Latents { get; }

    public bool ExplicitLatents { get; }

    /// <summary>Validate the common fields and draw what was not given.</summary>
    /// <param name="request">The request.</param>
    /// <param name="manifest">The model.</param>
    /// <param name="latentElements">Elements of one latent.</param>
    /// <param name="maxCount">Most samples per request.</param>
    /// <param name="draw">Fills one drawn latent from its stream (default: standard normal).</param>
    public static SamplePlan Create(SampleParameters request, ModelManifest manifest, int latentElements, int maxCount, Action<NoiseStream, Span<float>>? draw = null)
    {
        ulong seed = request.Seed ?? NewSeed();
        int count;
        if (request.Latents is { } given)
        {
            if (given.Length == 0)
            {
                throw new RequestValidationException("latents", "'latents' is empty; give one latent per sample or leave it out.");
            }

            if (request.Count is { } c && c != given.Length)
            {
                throw new RequestValidationException("count", $"'count' is {c} but {given.Length} latents were given; leave count out or make them agree.");
            }

            count = given.Length;
        }
        else
        {
            count = request.Count ?? 1;
        }

        Validate.Count(count, maxCount);
        (int[]? modelLabels, int?[] reported) = Labels(request.ClassLabel, manifest, count, seed);

        var latents = new float[count][];
        if (request.Latents is { } explicitLatents)
        {
            for (int i = 0; i < count; i++)
            {
                latents[i] = Validate.Vector(explicitLatents[i], latentElements, $"latents[{i}]");
            }
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                latents[i] = new float[latentElements];
                var stream = new NoiseStream(seed, (ulong)i, NoiseStreamIds.Latent);
                if (draw is null)
                {
                    stream.FillNormal(latents[i]);
                }
                else
                {
                    draw(stream, latents[i]);
                }
            }
        }

        return new SamplePlan(count, seed, modelLabels, reported, latents, request.Latents is not null);
    }

    /// <summary>A random seed, drawn below 2^53 so that JavaScript clients can echo it back exactly.</summary>
    public static ulong NewSeed() => (ulong)System.Random.Shared.NextInt64(0, 1L << 53);

    /// <summary>Labels for interpolation frames: one class for the whole walk (drawn from the seed if needed).</summary>
    public static (int[]? ModelLabels, int?[] Reported) FrameLabels(int? classLabel, ModelManifest manifest, int frames, ulong seed)
    {
        (int[]? one, int?[] reported) = Labels(classLabel, manifest, 1, seed);
        return (one is null ? null : Enumerable.Repeat(one[0], frames).ToArray(), Enumerable.Repeat(reported[0], frames).ToArray());
    }

    /// <summary>
    /// Labels per sample. Asked-for class: validated and used for every sample. None: the null class where the
    /// model has one (unconditional sampling), else a class drawn per sample from NoiseStream(seed, i, ClassLabel).
    /// </summary>
    public static (int[]? ModelLabels, int?[] Reported) Labels(int? classLabel, ModelManifest manifest, int count, ulong seed)
    {
        var reported = new int?[count];
        if (manifest.Conditioning is not { } cond)
        {
            if (classLabel is not null)
            {
                throw new RequestValidationException("class_label", $"Model '{manifest.Name}' is not class-conditional; leave 'class_label' out.");
            }

            return (null, reported);
        }

        var labels = new int[count];
        if (classLabel is { } label)
        {
            Validate.ClassLabel(label, manifest);
            Array.Fill(labels, label);
            Array.Fill(reported, label);
        }
        else if (cond.NullClass is { } nullClass)
        {
            Array.Fill(labels, nullClass);
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                var stream = new NoiseStream(seed, (ulong)i, NoiseStreamIds.ClassLabel);
                labels[i] = Math.Min((int)(stream.NextUniform() * cond.NumClasses), cond.NumClasses - 1);
                reported[i] = labels[i];
            }
        }

        return (labels, reported);
    }
}
