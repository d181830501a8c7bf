using System.Globalization;

namespace GenService.Generation.Budgets;

/// <summary>
/// The work one request asks for (<see cref="WorkBudgetOptions"/> units), with how it was counted and which fields
/// lower it, so that a refusal can say both. Made by the jobs and families once they have resolved the request.
/// </summary>
/// <param name="Model">The model asked for (metrics).</param>
/// <param name="Units">count x steps x pixels, count x pixels or count x tokens.</param>
/// <param name="Product">The product spelled out, e.g. "count 4 x steps 50 x 64 pixels".</param>
/// <param name="Lower">The fields that lower it, e.g. "'count', 'steps' or 'height'/'width'".</param>
/// <param name="Field">The field a 400 names.</param>
public readonly record struct WorkRequest(string Model, long Units, string Product, string Lower, string Field)
{
    /// <summary>Diffusion: count x steps x output pixels.</summary>
    public static WorkRequest Diffusion(string model, int count, int steps, int[] outputShape, bool sized) =>
        new(model, (long)count * steps * Pixels(outputShape),
            F($"count {count} x steps {steps} x {Pixels(outputShape)} pixels"),
            sized ? "'count', 'steps' or 'height'/'width'" : "'count' or 'steps'", "count");

    /// <summary>Autoregressive: count x (prompt tokens + max_new_tokens).</summary>
    public static WorkRequest Ar(string model, int count, int promptTokens, int maxNewTokens) =>
        new(model, (long)count * (promptTokens + maxNewTokens),
            F($"count {count} x ({promptTokens} prompt tokens + max_new_tokens {maxNewTokens})"),
            "'count', 'max_new_tokens' or the prompt", "count");

    /// <summary>Autoregressive log-likelihood: the tokens of all scored sequences.</summary>
    public static WorkRequest Scored(string model, int sequences, long tokens) =>
        new(model, tokens, F($"{sequences} sequences of {tokens} tokens in all"), "'sequences' (fewer or shorter)", "sequences");

    /// <summary>gan, vae, flow: rows (samples, inputs or frames) x output pixels.</summary>
    public static WorkRequest OneShot(string model, int rows, int[] outputShape, string rowsField) =>
        new(model, (long)rows * Pixels(outputShape), F($"{rowsField} {rows} x {Pixels(outputShape)} pixels"), $"'{rowsField}'", rowsField);

    /// <summary>Pixels of a sample: height x width of an image [C, H, W] (or [H, W]); the element count otherwise.</summary>
    public static long Pixels(int[] shape) => shape.Length switch
    {
        0 => 1,
        3 => (long)shape[1] * shape[2],
        _ => shape.Aggregate(1L, (a, d) => a * Math.Max(1, d)),
    };

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
