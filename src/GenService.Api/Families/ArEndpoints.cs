using System.Diagnostics;
using System.Net.ServerSentEvents;
using GenService.Api.Contracts;
using GenService.Api.Families.Common;
using GenService.Generation;
using GenService.Generation.Ar;
using GenService.Generation.Budgets;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/ar/{model}: token by token, a start token and then whatever the decoder predicts next.</summary>
internal static class ArEndpoints
{
    public static IEndpointRouteBuilder MapArEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/ar/{model}").WithTags("ar");
        group.MapPost("/samples", SampleAsync).DescribeSampling(
            "ArSamples",
            "Sample token by token",
            "Starts from the class start token (`class_label`) or bos, then `prompt` (text, through the model's vocabulary or " +
            "tokenizer file) or `prompt_tokens`. `temperature` 0 is greedy; `top_k`, `top_p`, `repetition_penalty` as in Hugging Face " +
            "transformers; `stop` (up to 4 strings, text models) and the eos token end a sample early. Decoders with a KV cache (Optimum " +
            "names) run one token per call; others recompute the prefix. Each sample has `tokens`, `finish_reason` (length, eos_token, " +
            "stop_sequence) and `text` (text models) or `png` (image models: tokens are pixel levels). `nfe` = decoder calls. " +
            "`stream: true` (or Accept: text/event-stream): SSE `token` events {sample, index, token: {id, text, logprob}}, then `done` " +
            "{sample, finish_reason, generated_tokens, seed, text} per sample.",
            """{"count": 4, "seed": 42, "prompt": "ca", "temperature": 0.8, "top_k": 10, "max_new_tokens": 12}""")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        group.MapPost("/log-likelihood", LogLikelihoodAsync).DescribeResults<ArLikelihood>(
            "ArLogLikelihood",
            "Log-likelihood of given sequences",
            "`sequences`: token id lists, or strings for text models. Per sequence `token_log_probs` (nats): log p of each token given " +
            "the start token (class start with `class_label`, else bos) and the tokens before it; `log_prob` is their sum. No end token is added.",
            """{"sequences": ["cat", "dog", [5, 3, 22]]}""");
        return app;
    }

    internal static async Task<IResult> SampleAsync(string model, ArSampleRequest request, HttpContext http, IModelRepository repository, IArLoop loop, WorkBudget budget, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Ar, model);
        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        ArJob job = ArJob.Create(request.ToParameters(), loaded, options.Value.MaxCount);
        WorkAdmission.Admit(http, budget, job.Work);
        bool stream = request.Stream == true || EventStreams.Accepts(http);
        if (stream)
        {
            if (ModelIO.WantsPngGrid(http))
            {
                throw new RequestValidationException("stream", "A streamed response is text/event-stream; drop 'Accept: image/png' or 'stream'.");
            }

            return TypedResults.ServerSentEvents(StreamAsync(loop, job, http.RequestAborted));
        }

        if (ModelIO.WantsPngGrid(http) && !job.IsImage)
        {
            throw new RequestValidationException("Accept", $"Model '{job.Manifest.Name}' produces {job.Manifest.Output.Kind} samples, which have no PNG form; accept application/json.");
        }

        ArCompleted done = await RunToEndAsync(loop, job, http.RequestAborted);
        if (ModelIO.WantsPngGrid(http))
        {
            float[][] images = [.. done.Samples.Select(s => job.Pixels(s.Tokens))];
            (int c, int h, int w) = ImageOutput.Chw(job.Manifest);
            (float black, float white) = ImageOutput.Range(job.Manifest);
            http.Response.Headers["X-Seed"] = job.Seed.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return TypedResults.File(ImageCodec.EncodeGrid(images, c, h, w, black, white), "image/png");
        }

        return TypedResults.Json(BuildResponse(job, done, mode, total));
    }

    internal static async Task<IResult> LogLikelihoodAsync(string model, ArLogLikelihoodRequest request, HttpContext http, IModelRepository repository, ArLikelihoodScorer scorer, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Ar, model);
        (List<ArSequenceScore> scores, InferenceTimings timings) = await scorer.ScoreAsync(request.ToSequences(), request.ClassLabel, loaded, options.Value.MaxCount, http.RequestAborted);
        return TypedResults.Json(new ResultsResponse<ArLikelihood>
        {
            Model = loaded.Manifest.Name,
            Family = "ar",
            Results = scores.ConvertAll(s => new ArLikelihood(s.LogProb, s.TokenLogProbs, s.Tokens)),
            Timings = timings.ToTimings(total),
        });
    }

    private static async Task<ArCompleted> RunToEndAsync(IArLoop loop, ArJob job, CancellationToken ct)
    {
        await foreach (ArEvent e in loop.RunAsync(job, stream: false, ct))
        {
            if (e is ArCompleted done)
            {
                return done;
            }
        }

        throw new InvalidOperationException("The ar loop ended without a result.");
    }

    private static SampleResponse BuildResponse(ArJob job, ArCompleted done, OutputMode mode, Stopwatch total)
    {
        ModelManifest manifest = job.Manifest;
        (int c, int h, int w) = ImageOutput.Chw(manifest);
        (float black, float white) = ImageOutput.Range(manifest);
        var samples = new List<Sample>(job.Count);
        for (int i = 0; i < job.Count; i++)
        {
            ArSampleResult r = done.Samples[i];
            float[]? pixels = job.IsImage ? job.Pixels(r.Tokens) : null;
            samples.Add(new Sample
            {
                Tokens = r.Tokens,
                Text = r.Text,
                FinishReason = r.FinishReason,
                ClassLabel = job.ReportedLabels[i],
                Png = pixels is not null && mode.Png ? Convert.ToBase64String(ImageCodec.EncodePng(pixels, c, h, w, black, white)) : null,
                Data = pixels is not null && mode.Tensor ? pixels : null,
            });
        }

        return new SampleResponse
        {
            Model = manifest.Name,
            Family = "ar",
            Seed = job.Seed,
            Shape = manifest.Output.Shape,
            Samples = samples,
            Nfe = done.DecoderCalls,
            Timings = done.Timings.ToTimings(total),
        };
    }

    /// <summary>SSE: `token` per generated token, `done` per finished sample; a failure after the headers is an `error` event.</summary>
    private static IAsyncEnumerable<SseItem<string>> StreamAsync(IArLoop loop, ArJob job, CancellationToken ct)
        => EventStreams.StreamAsync(loop.RunAsync(job, stream: true, ct), e => e switch
        {
            ArTokenGenerated t => EventStreams.Item(new ArTokenEvent(t.Sample, t.Index, new ArTokenInfo(t.TokenId, job.Tokenizer?.TokenText(t.TokenId), Math.Round(t.LogProb, 6))), "token"),
            ArSampleFinished f => EventStreams.Item(new ArDoneEvent(f.Sample, f.Result.FinishReason, f.Result.Tokens.Length, job.Seed, f.Result.Text), "done"),
            _ => null, // ArCompleted: every sample already had its `done`.
        }, ct);
}
