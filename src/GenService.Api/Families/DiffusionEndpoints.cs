using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using GenService.Api.Families.Common;
using GenService.Api.Families.Diffusion;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using Microsoft.Extensions.Options;

namespace GenService.Api.Families;

/// <summary>/v1/diffusion/{model}: crossing by the buoys x_T ... x_0; fewer buoys with DDIM and DPM-Solver.</summary>
public static class DiffusionEndpoints
{
    public static IEndpointRouteBuilder MapDiffusionEndpoints(this IEndpointRouteBuilder app)
    {
        // The scheduler registry is a host singleton: from DI when AddDiffusionScheduling() registered it, else
        // built here from configuration (GenService:Diffusion) and captured by the handlers.
        DiffusionSchedulerRegistry registry = app.ServiceProvider.GetService<DiffusionSchedulerRegistry>() ?? DiffusionSchedulerRegistry.FromHost(app.ServiceProvider);
        RouteGroupBuilder group = app.MapGroup("/v1/diffusion/{model}").WithTags("diffusion");
        group.MapPost("/samples", (string model, DiffusionSampleRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
            => SampleAsync(model, request, http, repository, options, registry)).DescribeSampling(
            "DiffusionSamples",
            "Sample by iterative denoising",
            "`steps` (1..num_train_timesteps, default 50) with `sampler` ddim (default), ddpm, dpm_solver_pp (DPM-Solver++ 2M), euler or " +
            "euler_ancestral; `timestep_spacing` leading/trailing/linspace; classifier-free guidance with `guidance_scale` and a `class_label`; " +
            "img2img with `init` + `strength`; `return_intermediates` k snapshots; `stream: true` (or Accept: text/event-stream) sends SSE " +
            "`progress` events per step, then `result`. `nfe` = denoiser evaluations per sample (doubled under guidance).",
            """{"count": 4, "seed": 42, "class_label": 7, "steps": 20, "sampler": "dpm_solver_pp", "guidance_scale": 2.0}""")
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        group.MapPost("/interpolations", (string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options)
            => InterpolateAsync(model, request, http, repository, options, registry)).DescribeSampling(
            "DiffusionInterpolations",
            "Interpolate between starting noises, sampled with deterministic DDIM",
            "`from`/`to` are {\"seed\": s} or {\"latent\": [...]} (x_T before scaling); each frame is sampled with DDIM, eta 0, `steps` (default 50).",
            """{"from": {"seed": 1}, "to": {"seed": 2}, "frames": 8, "class_label": 3, "steps": 25}""");
        return app;
    }

    internal static async Task<IResult> SampleAsync(string model, DiffusionSampleRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options, DiffusionSchedulerRegistry registry)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Diffusion, model);
        DiffusionJob job = DiffusionJob.Create(request, loaded, options.Value.MaxCount);
        bool stream = request.Stream == true || EventStreams.Accepts(http);
        if (stream)
        {
            if (ModelIO.WantsPngGrid(http))
            {
                throw new RequestValidationException("stream", "A streamed response is text/event-stream; drop 'Accept: image/png' or 'stream'.");
            }

            return TypedResults.ServerSentEvents(StreamAsync(registry, job, total, http.RequestAborted));
        }

        DiffusionCompleted done = await RunToEndAsync(registry, job, http.RequestAborted);
        return Respond(http, job, done, total);
    }

    internal static async Task<IResult> InterpolateAsync(string model, InterpolationRequest request, HttpContext http, IModelRepository repository, IOptions<GenServiceApiOptions> options, DiffusionSchedulerRegistry registry)
    {
        var total = Stopwatch.StartNew();
        ILoadedModel loaded = FamilyModels.Resolve(repository, ModelFamily.Diffusion, model);
        ModelManifest manifest = loaded.Manifest;
        int frames = Validate.IntRange(request.Frames, 8, 2, options.Value.MaxCount, "frames");
        if (request.Temperature is not null)
        {
            throw new RequestValidationException("temperature", "'temperature' does not apply to diffusion interpolation.");
        }

        float[] from = await LatentGraphs.EndAsync(request.From, "from", manifest.SampleElements, manifest, encode: null);
        float[] to = await LatentGraphs.EndAsync(request.To, "to", manifest.SampleElements, manifest, encode: null);
        double[] t = LatentGraphs.Positions(frames);
        float[][] latents = LatentGraphs.Frames(from, to, frames, request.Method);
        var sampleRequest = new DiffusionSampleRequest
        {
            Latents = latents,
            ClassLabel = request.ClassLabel,
            Output = request.Output,
            Steps = request.Steps,
            Sampler = "ddim",
            Eta = 0,
            GuidanceScale = request.GuidanceScale,
            Seed = request.From?.Seed ?? 0,
        };
        DiffusionJob job = DiffusionJob.Create(sampleRequest, loaded, options.Value.MaxCount);
        if (job.Labels is not null && request.ClassLabel is null && manifest.Conditioning?.NullClass is null)
        {
            throw new RequestValidationException("class_label", $"Model '{manifest.Name}' is class-conditional without a null class: give 'class_label'.");
        }

        DiffusionCompleted done = await RunToEndAsync(registry, job, http.RequestAborted);
        return ModelIO.Respond(http, manifest, seed: null, done.Samples, job.ReportedLabels, job.Output, total, done.Timings, job.NetworkEvaluations, positions: t);
    }

    private static async Task<DiffusionCompleted> RunToEndAsync(DiffusionSchedulerRegistry registry, DiffusionJob job, CancellationToken ct)
    {
        await foreach (DiffusionEvent e in registry.RunAsync(job, ct, progress: false))
        {
            if (e is DiffusionCompleted done)
            {
                return done;
            }
        }

        throw new InvalidOperationException("The diffusion loop ended without a result.");
    }

    private static IResult Respond(HttpContext http, DiffusionJob job, DiffusionCompleted done, Stopwatch total)
    {
        if (done.Intermediates is null || ModelIO.WantsPngGrid(http))
        {
            return ModelIO.Respond(http, job.Manifest, job.Seed, done.Samples, job.ReportedLabels, job.Output, total, done.Timings, job.NetworkEvaluations);
        }

        SampleResponse response = BuildResponse(job, done, total);
        return TypedResults.Json(response);
    }

    private static SampleResponse BuildResponse(DiffusionJob job, DiffusionCompleted done, Stopwatch total)
    {
        ModelManifest manifest = job.Manifest;
        (int c, int h, int w) = ModelIO.Chw(manifest);
        (float black, float white) = ModelIO.Range(manifest);
        var samples = new List<Sample>(job.Count);
        for (int i = 0; i < job.Count; i++)
        {
            List<Intermediate>? steps = done.Intermediates?[i];
            if (steps is not null && job.Output.Png)
            {
                foreach (Intermediate s in steps)
                {
                    s.Png = Convert.ToBase64String(ImageCodec.EncodePng(s.Sample, c, h, w, black, white));
                    s.PredictedOriginalPng = Convert.ToBase64String(ImageCodec.EncodePng(s.PredictedOriginal, c, h, w, black, white));
                    if (!job.Output.Tensor)
                    {
                        s.Sample = null;
                        s.PredictedOriginal = null;
                    }
                }
            }

            samples.Add(new Sample
            {
                Png = job.Output.Png ? Convert.ToBase64String(ImageCodec.EncodePng(done.Samples[i], c, h, w, black, white)) : null,
                Data = job.Output.Tensor ? done.Samples[i] : null,
                ClassLabel = job.ReportedLabels[i],
                Intermediates = steps,
            });
        }

        return new SampleResponse
        {
            Model = manifest.Name,
            Family = "diffusion",
            Seed = job.Seed,
            Shape = manifest.Output.Shape,
            Samples = samples,
            Nfe = job.NetworkEvaluations,
            Timings = done.Timings.ToTimings(total),
        };
    }

    /// <summary>SSE: a `progress` event per step, then `result` (the JSON body of the non-streamed answer), or `error`.</summary>
    private static IAsyncEnumerable<SseItem<string>> StreamAsync(DiffusionSchedulerRegistry registry, DiffusionJob job, Stopwatch total, CancellationToken ct)
        => EventStreams.StreamAsync(registry.RunAsync(job, ct), e => e switch
        {
            DiffusionStepDone step => EventStreams.Item(step.Progress, "progress"),
            DiffusionCompleted done => EventStreams.Item(BuildResponse(job, done, total), "result"),
            _ => null,
        }, ct);
}
