namespace GenService.Api.Contracts;

/// <summary>Response of encode and log-likelihood: one result per input (or sequence), in order.</summary>
internal sealed class ResultsResponse<T>
{
    public required string Model { get; init; }

    public required string Family { get; init; }

    public required List<T> Results { get; init; }

    public Timings? Timings { get; set; }
}

/// <summary>vae encode: the posterior of one input.</summary>
internal sealed record VaeEncoding(float[] Mean, float[] LogVar);

/// <summary>flow encode: z = f(x) and log |det df/dx| of one input.</summary>
internal sealed record FlowEncoding(float[] Latent, double LogDet);

/// <summary>flow log-likelihood of one input (nats; bits/dim discrete when the model declares a bin width).</summary>
internal sealed record FlowLikelihood(double LogProb, double BitsPerDim);
