using System.ComponentModel.DataAnnotations;

namespace GenService.Generation.Budgets;

/// <summary>
/// Budgets of work, bound from <c>GenService:Limits</c> (beside the request rates of the HTTP layer). One unit is one
/// pixel of one sample through one network pass: a diffusion request costs count x steps x output pixels
/// (text-to-image: height x width), a gan/vae/flow request count x output pixels, an ar request count x (prompt
/// tokens + max_new_tokens), an ar log-likelihood its tokens (a token counts as a pixel: image ar models make one
/// token per pixel). 0 turns a budget off.
/// The defaults leave room for 64 Stable-Diffusion-sized images (512 x 512, 50 steps) per request and four such
/// requests per caller; docs/http-api.md recommends tighter values for a shared server.
/// </summary>
public sealed class WorkBudgetOptions : IValidatableObject
{
    public const string SectionName = "GenService:Limits";

    /// <summary>Most work one request may ask for; more is a 400 naming what to lower.</summary>
    [Range(0, long.MaxValue)]
    public long MaxRequestWork { get; set; } = 1_000_000_000;

    /// <summary>Most work one caller may have in flight (queued or running); more is a 429 with Retry-After.</summary>
    [Range(0, long.MaxValue)]
    public long MaxCallerWork { get; set; } = 4_000_000_000;

    /// <summary>Retry-After of a caller over <see cref="MaxCallerWork"/>: about how long one of its requests takes.</summary>
    [Range(1, 3600)]
    public int RetryAfterSeconds { get; set; } = 1;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxCallerWork > 0 && MaxRequestWork > 0 && MaxCallerWork < MaxRequestWork)
        {
            yield return new ValidationResult(
                $"{SectionName}:MaxCallerWork ({MaxCallerWork}) must be at least MaxRequestWork ({MaxRequestWork}): a request the server accepts must fit a caller's budget.",
                [nameof(MaxCallerWork)]);
        }
    }
}
