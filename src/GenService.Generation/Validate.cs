using GenService.Inference;
using GenService.Inference.Manifest;

namespace GenService.Generation;

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
                // JSON numbers past ±3.4e38 (1e39, a 10,000-digit literal) arrive here as infinity.
                throw new RequestValidationException($"{field}[{j}]", $"'{field}[{j}]' is not a finite FP32 number (NaN, Infinity, or beyond ±3.4e38, the largest FP32 value); every value must be finite.");
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
