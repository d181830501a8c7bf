using System.Diagnostics;
using System.Net.ServerSentEvents;
using GenService.Api.Contracts;
using GenService.Api.Families.Common;
using GenService.Generation;
using GenService.Generation.Budgets;
using GenService.Generation.Diffusion;
using GenService.Generation.Latent;
using GenService.Generation.TextToImage;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/diffusion/{model}: crossing by the buoys x_T ... x_0; fewer buoys with DDIM and DPM-Solver.</summary>
internal static class DiffusionEndpoints
{
    public static IEndpointRouteBuilder MapDiffusionEndpoints(this IEndpointRouteBuilder app)
    {
        RouteGroupBuilder group = app.MapGroup("/v1/diffusion/{model}").WithTags("diffusion");
        group.MapPost("/samples", SampleAsync).DescribeSampling(
            "DiffusionSamples",
            "Sample by iterative denoising",
            "`steps` (1..num_train_timesteps, default 50) with `sampler` ddim (default), ddpm, dpm_solver_pp (DPM-Solver++ 2M), euler, " +
            "euler_ancestral or pndm (PLMS: N + 1 evaluations, N + 9 with the model's PRK warm-up); `timestep_spacing` leading/trailing/linspace; classifier-free guidance with `guidance_scale` and a `class_label`; " +
            "text-to-image models (export folders): `prompt`, `negative_prompt`, `height`/`width`, guidance 7.5 by default, the folder's scheduler as the default sampler; " +
            "img2img with `init` + `strength`; `return_intermediates` k snapshots; `stream: true` (or Accept: text/event-stream) sends SSE " +
            "`progress` events per step, then `result`. `nfe` = denoiser evaluations per sample (doubled under guidance).",
            """{"count": 4, "seed": 42, "class_label": 7, "steps": 20, "sampler": "dpm_solver_pp", "guidance_scale": 2.0}""")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        group.MapPost("/interpolations", InterpolateAsync).DescribeSampling(
            "DiffusionInterpolations",
            "Interpolate between starting noises, sampled with deterministic DDIM",
            "`from`/`to` are {\"seed\": s} or {\"latent\": [...]} (x_T before scaling); each frame is sampled with DDIM, eta 0, `steps` (default 50).",
            """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 8, "class_label": 3, "steps": 25}""");
        return app;
    }

    internal static async Task<IResult> SampleAsync(string model, DiffusionSampleRequest request, HttpContext http, IModelRepository repository, IDiffusionLoop loop,
        TextToImagePipeline pipeline, WorkBudget budget, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Diffusion, model);
        ModelManifest manifest = loaded.Manifest;
        OutputMode mode = OutputMode.Parse(request.Output, manifest);
        DiffusionJob job;
        Func<bool, CancellationToken, IAsyncEnumerable<DiffusionEvent>> run;
        if (TextToImagePipeline.Serves(manifest))
        {
            // The init image has the request's own size (height, width), not the model's default.
            int[] shape = [manifest.Output.Shape[0], request.Height ?? manifest.Output.Shape[1], request.Width ?? manifest.Output.Shape[2]];
            float[]? init = request.Init is null ? null : ModelIO.DecodeInput(request.Init, manifest, "init", shape);
            job = await pipeline.CreateJobAsync(request.ToParameters(init), loaded, options.Value.MaxCount, http.RequestAborted);
            run = (progress, ct) => pipeline.RunAsync(job, progress, ct);
        }
        else
        {
            float[]? init = request.Init is null ? null : ModelIO.DecodeInput(request.Init, manifest, "init");
            job = DiffusionJob.Create(request.ToParameters(init), loaded, options.Value.MaxCount);
            run = (progress, ct) => loop.RunAsync(job, progress, ct);
        }

        WorkAdmission.Admit(http, budget, job.Work);
        bool stream = request.Stream == true || EventStreams.Accepts(http);
        if (stream)
        {
            if (ModelIO.WantsPngGrid(http))
            {
                throw new RequestValidationException("stream", "A streamed response is text/event-stream; drop 'Accept: image/png' or 'stream'.");
            }

            return TypedResults.ServerSentEvents(StreamAsync(run(true, http.RequestAborted), job, mode, total, http.RequestAborted));
        }

        DiffusionCompleted done = await RunToEndAsync(run(false, http.RequestAborted));
        if (done.Intermediates is null || ModelIO.WantsPngGrid(http))
        {
            var samples = new GeneratedSamples(job.Seed, done.Samples, job.ReportedLabels, done.Timings) { NetworkEvaluations = job.NetworkEvaluations, Shape = job.OutputShape };
            return ModelIO.Respond(http, manifest, samples, mode, total);
        }

        return TypedResults.Json(BuildResponse(job, done, mode, total));
    }

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IDiffusionLoop loop, WorkBudget budget, IOptions<GenServiceApiOptions> options)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Diffusion, model);
        if (TextToImagePipeline.Serves(loaded.Manifest))
        {
            throw new RequestValidationException("model", $"'{model}' is a text-to-image pipeline; interpolations serve pixel-space diffusion models. Sample it with POST /v1/diffusion/{model}/samples.");
        }

        OutputMode mode = OutputMode.Parse(request.Output, loaded.Manifest);
        (DiffusionJob job, double[] positions) = await DiffusionInterpolation.CreateAsync(request.ToParameters(loaded.Manifest), loaded, options.Value.MaxCount);
        WorkAdmission.Admit(http, budget, job.Work);
        DiffusionCompleted done = await RunToEndAsync(loop.RunAsync(job, progress: false, http.RequestAborted));
        var frames = new GeneratedSamples(null, done.Samples, job.ReportedLabels, done.Timings) { NetworkEvaluations = job.NetworkEvaluations, Positions = positions };
        return ModelIO.Respond(http, loaded.Manifest, frames, mode, total);
    }

    private static async Task<DiffusionCompleted> RunToEndAsync(IAsyncEnumerable<DiffusionEvent> events)
    {
        await foreach (DiffusionEvent e in events)
        {
            if (e is DiffusionCompleted done)
            {
                return done;
            }
        }

        throw new InvalidOperationException("The diffusion loop ended without a result.");
    }

    private static SampleResponse BuildResponse(DiffusionJob job, DiffusionCompleted done, OutputMode mode, Stopwatch total)
    {
        ModelManifest manifest = job.Manifest;
        (int c, int h, int w) = ImageOutput.Chw(job.OutputShape);
        (float black, float white) = ImageOutput.Range(manifest);
        string Png(float[] x) => Convert.ToBase64String(ImageCodec.EncodePng(x, c, h, w, black, white));
        var samples = new List<Sample>(job.Count);
        for (int i = 0; i < job.Count; i++)
        {
            List<Intermediate>? steps = done.Intermediates?[i].ConvertAll(s => new Intermediate
            {
                Step = s.Step,
                Timestep = s.Timestep,
                Sample = mode.Tensor ? s.Sample : null,
                PredictedOriginal = mode.Tensor ? s.PredictedOriginal : null,
                Png = mode.Png ? Png(s.Sample) : null,
                PredictedOriginalPng = mode.Png ? Png(s.PredictedOriginal) : null,
            });
            samples.Add(new Sample
            {
                Png = mode.Png ? Png(done.Samples[i]) : null,
                Data = mode.Tensor ? done.Samples[i] : null,
                ClassLabel = job.ReportedLabels[i],
                Intermediates = steps,
            });
        }

        return new SampleResponse
        {
            Model = manifest.Name,
            Family = manifest.Family.WireName(),
            Seed = job.Seed,
            Shape = job.OutputShape,
            Samples = samples,
            Nfe = job.NetworkEvaluations,
            Timings = done.Timings.ToTimings(total),
        };
    }

    /// <summary>SSE: a `progress` event per step, then `result` (the JSON body of the non-streamed answer), or `error`.</summary>
    private static IAsyncEnumerable<SseItem<string>> StreamAsync(IAsyncEnumerable<DiffusionEvent> events, DiffusionJob job, OutputMode mode, Stopwatch total, CancellationToken ct)
        => EventStreams.StreamAsync(events, e => e switch
        {
            DiffusionStepDone step => EventStreams.Item(new DiffusionProgress(step.Step, step.Steps, step.Timestep, step.ElapsedMs), "progress"),
            DiffusionCompleted done => EventStreams.Item(BuildResponse(job, done, mode, total), "result"),
            _ => null,
        }, ct);
}
