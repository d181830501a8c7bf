namespace GenService.Generation.Diffusion;

/// <summary>
/// What a text-to-image job's UNet rows are conditioned on: the prompt's hidden states and, for the unconditional
/// row under guidance, the negative prompt's (the empty prompt's when none is given), each [Tokens, Width], flat.
/// </summary>
internal sealed record PromptConditioning(float[] Conditional, float[] Unconditional, int Tokens, int Width)
{
    /// <summary>Elements of one row's hidden states.</summary>
    public int Elements => Tokens * Width;
}
