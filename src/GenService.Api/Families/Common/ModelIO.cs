using System.Diagnostics;
using GenService.Api.Contracts;
using GenService.Generation;
using GenService.Generation.Latent;
using GenService.Inference;
using GenService.Inference.Manifest;
using Microsoft.Net.Http.Headers;

namespace GenService.Api.Families.Common;

/// <summary>Moving samples between request bodies (PNG or data) and responses (JSON or one PNG grid).</summary>
internal static class ModelIO
{
    /// <summary>Decode "inputs" (PNG or raw data) into flat samples of output.shape.</summary>
    public static float[][] DecodeInputs(List<ModelInput>? inputs, ModelManifest manifest, int maxCount)
    {
        if (inputs is null || inputs.Count == 0)
        {
            throw new RequestValidationException("inputs", "'inputs' is missing or empty: give a list of {\"png\": \"<base64>\"} or {\"data\": [...]}.");
        }

        Validate.Count(inputs.Count, maxCount, "inputs");
        var result = new float[inputs.Count][];
        for (int i = 0; i < inputs.Count; i++)
        {
            result[i] = DecodeInput(inputs[i], manifest, $"inputs[{i}]");
        }

        return result;
    }

    /// <summary>encode and log-likelihood take only 'inputs' and 'class_label' (the body type is reconstruct's too).</summary>
    public static void RejectSamplingFields(InputsRequest request, string route)
    {
        if (request.Output is not null || request.Seed is not null)
        {
            throw new RequestValidationException(request.Output is not null ? "output" : "seed", $"{route} takes only 'inputs' and 'class_label'.");
        }
    }

    /// <summary>Decode one input of <paramref name="shape"/> (default output.shape; a text-to-image request's image size).</summary>
    public static float[] DecodeInput(ModelInput? input, ModelManifest manifest, string field, int[]? shape = null)
    {
        shape ??= manifest.Output.Shape;
        if (input is null || (input.Png is null) == (input.Data is null))
        {
            throw new RequestValidationException(field, $"'{field}' must have exactly one of 'png' (base64) or 'data' (flat numbers).");
        }

        if (input.Data is { } data)
        {
            return Validate.Vector(data, shape.Aggregate(1, (a, b) => a * b), $"{field}.data");
        }

        if (manifest.Output.Kind != "image")
        {
            throw new RequestValidationException($"{field}.png", $"Model '{manifest.Name}' takes {manifest.Output.Kind} inputs, not PNGs; use 'data'.");
        }

        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(input.Png!);
        }
        catch (FormatException)
        {
            throw new RequestValidationException($"{field}.png", $"'{field}.png' is not valid base64.");
        }

        (int c, int h, int w) = ImageOutput.Chw(shape);
        (float black, float white) = ImageOutput.Range(manifest);
        try
        {
            return ImageCodec.DecodeToChw(bytes, c, h, w, black, white);
        }
        catch (FormatException e)
        {
            throw new RequestValidationException($"{field}.png", $"'{field}.png' {e.Message}.");
        }
    }

    /// <summary>True when the client asked for one PNG (the grid) instead of JSON.</summary>
    public static bool WantsPngGrid(HttpContext http)
    {
        foreach (string? accept in http.Request.Headers.Accept)
        {
            if (accept is not null && MediaTypeHeaderValue.TryParseList([accept], out IList<MediaTypeHeaderValue>? list)
                && list.Any(m => m.MediaType.Equals("image/png", StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The response: JSON samples (png and/or data per <paramref name="mode"/>), or, with Accept: image/png, one PNG
    /// grid of all samples.
    /// </summary>
    public static IResult Respond(HttpContext http, ModelManifest manifest, GeneratedSamples generated, OutputMode mode, Stopwatch total)
    {
        int[] shape = generated.Shape ?? manifest.Output.Shape;
        (int c, int h, int w) = ImageOutput.Chw(shape);
        (float black, float white) = ImageOutput.Range(manifest);
        IReadOnlyList<float[]> samples = generated.Samples;
        if (WantsPngGrid(http))
        {
            if (manifest.Output.Kind != "image")
            {
                throw new RequestValidationException("Accept", $"Model '{manifest.Name}' produces {manifest.Output.Kind} samples, which have no PNG form; accept application/json.");
            }

            byte[] grid = ImageCodec.EncodeGrid(samples, c, h, w, black, white);
            http.Response.Headers["X-Seed"] = generated.Seed?.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.File(grid, "image/png");
        }

        var list = new List<Sample>(samples.Count);
        for (int i = 0; i < samples.Count; i++)
        {
            list.Add(new Sample
            {
                Png = mode.Png ? Convert.ToBase64String(ImageCodec.EncodePng(samples[i], c, h, w, black, white)) : null,
                Data = mode.Tensor ? samples[i] : null,
                ClassLabel = generated.ReportedLabels[i],
                T = generated.Positions?[i],
            });
        }

        return TypedResults.Json(new SampleResponse
        {
            Model = manifest.Name,
            Family = manifest.Family.WireName(),
            Seed = generated.Seed,
            Shape = shape,
            Samples = list,
            Nfe = generated.NetworkEvaluations,
            Timings = generated.Timings.ToTimings(total),
        });
    }
}

/// <summary>The response form of a request's accumulated graph time.</summary>
internal static class TimingsExtensions
{
    public static Timings ToTimings(this InferenceTimings timings, Stopwatch total)
        => new(Math.Round(timings.Queue.TotalMilliseconds, 3), Math.Round(timings.Compute.TotalMilliseconds, 3), Math.Round(total.Elapsed.TotalMilliseconds, 3));
}
