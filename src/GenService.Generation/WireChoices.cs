using GenService.Inference;
using GenService.Sampling.Diffusion;
using GenService.Sampling.Interpolation;

namespace GenService.Generation;

/// <summary>
/// The closed sets of names a request field takes (<c>sampler</c>, <c>timestep_spacing</c>, <c>method</c>,
/// <c>output</c>), each parsed here and nowhere else, so every field answers a bad value the same way: a 400 that
/// names the field, what was sent and every allowed value. Matching ignores case; aliases are accepted but not listed.
/// </summary>
public static class WireChoices
{
    /// <summary>Diffusion samplers (the names of <see cref="SamplerSettings.WireName(SamplerKind)"/>; diffusers' spellings of DPM-Solver++ as aliases).</summary>
    public static readonly Choice<SamplerKind> Sampler = new(
        "sampler",
        [.. Enum.GetValues<SamplerKind>().Select(k => (SamplerSettings.WireName(k), k))],
        [("dpmsolver++", SamplerKind.DpmSolverPP), ("dpm_solver++", SamplerKind.DpmSolverPP)]);

    /// <summary>How inference timesteps are spread: leading, trailing, linspace.</summary>
    public static readonly Choice<TimestepSpacing> Spacing = new(
        "timestep_spacing",
        [.. Enum.GetValues<TimestepSpacing>().Select(s => (SamplerSettings.WireName(s), s))]);

    /// <summary>Interpolation paths: slerp, lerp.</summary>
    public static readonly Choice<InterpolationMethod> Method = new(
        "method",
        [("slerp", InterpolationMethod.Slerp), ("lerp", InterpolationMethod.Lerp)]);

    /// <summary>What a response carries per sample: png, tensor or both.</summary>
    public static readonly Choice<OutputForm> Output = new(
        "output",
        [("png", OutputForm.Png), ("tensor", OutputForm.Tensor), ("both", OutputForm.Both)]);
}

/// <summary>The <c>output</c> field's values.</summary>
public enum OutputForm
{
    Png,
    Tensor,
    Both,
}

/// <summary>One request field's allowed names and the values they stand for.</summary>
/// <typeparam name="T">The value type (an enumeration).</typeparam>
public sealed class Choice<T>
    where T : struct
{
    private readonly Dictionary<string, T> _byName = new(StringComparer.OrdinalIgnoreCase);

    /// <param name="field">The request field (snake_case), named in every error.</param>
    /// <param name="names">Canonical names, in the order errors and docs list them.</param>
    /// <param name="aliases">Other accepted spellings, never listed.</param>
    public Choice(string field, (string Name, T Value)[] names, (string Name, T Value)[]? aliases = null)
    {
        Field = field;
        Names = [.. names.Select(n => n.Name)];
        foreach ((string name, T value) in names.Concat(aliases ?? []))
        {
            _byName.Add(name, value);
        }
    }

    public string Field { get; }

    /// <summary>The canonical names, in order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The value named by <paramref name="value"/>; null or empty gives null (the caller's default).</summary>
    /// <param name="value">What the request sent.</param>
    /// <param name="field">The field's name where it differs from <see cref="Field"/> (e.g. a nested path).</param>
    public T? Parse(string? value, string? field = null)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        if (_byName.TryGetValue(value, out T parsed))
        {
            return parsed;
        }

        string name = field ?? Field;
        throw new RequestValidationException(name, $"'{name}' must be one of {string.Join(", ", Names)}; got '{value}'.");
    }
}
