using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Sampling.Random;

namespace GenService.Api.Families.Common;

/// <summary>
/// The per-sample inputs of a sampling request after validation: how many, which seed, which class each
/// sample gets, and its unit-normal starting latent (drawn from NoiseStream(seed, i, Latent) or given).
/// Sample i depends only on (seed, i, parameters): never on count or on the other samples.
/// </summary>
public sealed class SamplePlan
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
    public static SamplePlan Create(SampleRequest request, ModelManifest manifest, int latentElements, int maxCount, Action<NoiseStream, Span<float>>? draw = null)
    {
        ulong seed = request.Seed ?? SeedStreams.NewSeed();
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
                var stream = new NoiseStream(seed, (ulong)i, SeedStreams.Latent);
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
                var stream = new NoiseStream(seed, (ulong)i, SeedStreams.ClassLabel);
                labels[i] = Math.Min((int)(stream.NextUniform() * cond.NumClasses), cond.NumClasses - 1);
                reported[i] = labels[i];
            }
        }

        return (labels, reported);
    }
}

/// <summary>Validation of common fields; every message names the field and the allowed range.</summary>
public static class Validate
{
    public static void Count(int count, int maxCount, string field = "count")
    {
        if (count < 1 || count > maxCount)
        {
            throw new RequestValidationException(field, $"'{field}' must be between 1 and {maxCount}; got {count}.");
        }
    }

    public static void ClassLabel(int label, ModelManifest manifest, string field = "class_label")
    {
        ConditioningSpec cond = manifest.Conditioning
            ?? throw new RequestValidationException(field, $"Model '{manifest.Name}' is not class-conditional; leave '{field}' out.");
        if (label < 0 || label >= cond.NumClasses)
        {
            throw new RequestValidationException(field, $"'{field}' must be between 0 and {cond.NumClasses - 1} for model '{manifest.Name}'; got {label}.");
        }
    }

    /// <summary>A flat vector of the expected length with finite values; returns it.</summary>
    public static float[] Vector(float[]? values, int elements, string field)
    {
        if (values is null)
        {
            throw new RequestValidationException(field, $"'{field}' is missing; expected {elements} numbers.");
        }

        if (values.Length != elements)
        {
            throw new RequestValidationException(field, $"'{field}' has {values.Length} numbers but the model needs {elements}.");
        }

        for (int j = 0; j < values.Length; j++)
        {
            if (!float.IsFinite(values[j]))
            {
                throw new RequestValidationException($"{field}[{j}]", $"'{field}[{j}]' is {values[j]}; every value must be a finite number.");
            }
        }

        return values;
    }

    public static float Range(float? value, float fallback, float min, float max, string field, bool minExclusive = false)
    {
        float v = value ?? fallback;
        bool low = minExclusive ? !(v > min) : !(v >= min);
        if (low || !(v <= max) || !float.IsFinite(v))
        {
            string lo = minExclusive ? $"({min}" : $"[{min}";
            throw new RequestValidationException(field, $"'{field}' must be in {lo}, {max}]; got {v}.");
        }

        return v;
    }

    public static int IntRange(int? value, int fallback, int min, int max, string field)
    {
        int v = value ?? fallback;
        if (v < min || v > max)
        {
            throw new RequestValidationException(field, $"'{field}' must be between {min} and {max}; got {v}.");
        }

        return v;
    }
}
