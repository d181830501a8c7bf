using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using GenService.Generation.Budgets;
using GenService.Generation.Diffusion;
using GenService.Inference;
using GenService.Inference.Manifest;
using GenService.Inference.Repository;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;
using GenService.Sampling.Diffusion;
using GenService.Sampling.Random;
using Microsoft.Extensions.Options;

namespace GenService.Generation.TextToImage;

/// <summary>
/// A latent text-to-image pipeline (a Stable-Diffusion-class export folder), with the semantics of diffusers'
/// StableDiffusionPipeline:
/// <code>
///   ids   = clip_tokenize(prompt), clip_tokenize(negative_prompt or "")     padded to the tokenizer's max length
///   cond  = text_encoder(ids).last_hidden_state                             (cached by token ids, batched across requests)
///   x_T   = latents * init_noise_sigma                                      latents [C, H/f, W/f]
///           img2img: z = (mean + std * eps | latent_sample) of vae_encoder(init) * scaling_factor; x = add_noise(z, latents, t_start)
///   loop  : eps = unet(scale_model_input(x), t, [uncond, cond]); eps = u + g (c - u) when g &gt; 1; x = sampler.step(eps)
///   image = clamp(vae_decoder(x / scaling_factor), -1, 1)                   (decodes batched across requests)
/// </code>
/// The denoising runs in the same <see cref="IDiffusionLoop"/> as every diffusion model: with the iteration-level loop,
/// UNet rows of requests with different prompts, guidance, steps, samplers and sizes share calls (rows of one size
/// share a call; a UNet that takes one scalar timestep shares a call only among rows at the same timestep).
/// </summary>
public sealed class TextToImagePipeline : IModelLoadCheck
{
    /// <summary>diffusers guides only when guidance_scale &gt; 1 (do_classifier_free_guidance); this is its default.</summary>
    public const double DefaultGuidanceScale = 7.5;

    private readonly IDiffusionLoop _loop;
    private readonly TextToImageOptions _options;
    private readonly PromptEmbeddingCache _cache;
    private readonly ConditionalWeakTable<ModelManifest, ClipTokenizer> _tokenizers = [];
    private readonly WorkBudget? _budget;

    /// <summary>An id per loaded model version: the prompt cache's key, so a reloaded model never sees the old states.</summary>
    private readonly ConditionalWeakTable<ILoadedModel, string> _versions = [];

    public TextToImagePipeline(IDiffusionLoop loop, IOptions<TextToImageOptions> options, IMeterFactory? meterFactory = null, WorkBudget? budget = null)
    {
        _loop = loop;
        _budget = budget;
        _options = options.Value;
        _cache = new PromptEmbeddingCache(_options.PromptCacheSize, meterFactory);
    }

    /// <summary>Prompt embeddings held by the cache now.</summary>
    public int CachedPrompts => _cache.Count;

    /// <summary>Whether a model is a text-to-image pipeline (its requests go through this type).</summary>
    public static bool Serves(ModelManifest manifest) => manifest.TextToImage is not null;

    /// <summary>
    /// Loads a text-to-image version's tokenizer before the version turns ready, so a folder whose tokenizer cannot
    /// be read is not ready, with the file and field as the reason.
    /// </summary>
    public void Check(ILoadedModel model)
    {
        if (Serves(model.Manifest))
        {
            _ = Tokenizer(model.Manifest);
        }
    }

    /// <summary>The model's tokenizer, loaded once per model version.</summary>
    internal ClipTokenizer Tokenizer(ModelManifest manifest)
        => _tokenizers.GetValue(manifest, m => ClipTokenizer.Load(m.TextToImage!.TokenizerDirectory));

    /// <summary>
    /// Validates a request against the pipeline and prepares its job: the prompt's (and negative prompt's) hidden
    /// states, each sample's starting latent. Every failure names the field.
    /// </summary>
    public async Task<DiffusionJob> CreateJobAsync(DiffusionParameters request, ILoadedModel model, int maxCount, CancellationToken cancellationToken)
    {
        ModelManifest manifest = model.Manifest;
        TextToImageSpec spec = manifest.TextToImage ?? throw new InvalidOperationException($"Model '{manifest.Name}' is not a text-to-image pipeline.");
        if (request.ClassLabel is not null)
        {
            throw new RequestValidationException("class_label", $"'{manifest.Name}' is conditioned on text: describe the image in 'prompt' instead of a 'class_label'.");
        }

        if (request.ReturnIntermediates is > 0)
        {
            throw new RequestValidationException("return_intermediates", $"'return_intermediates' is not available for the latent pipeline '{manifest.Name}' (its x_t are latents); use 'stream' for progress.");
        }

        IGraphRunner denoiser = FamilyModels.RequireGraph(model, "denoiser", "samples");
        IGraphRunner textEncoder = FamilyModels.RequireGraph(model, "text_encoder", "samples");
        IGraphRunner decoder = FamilyModels.RequireGraph(model, "vae_decoder", "samples");
        (int height, int width) = Size(request, manifest, denoiser);

        double guidance = request.GuidanceScale ?? DefaultGuidanceScale;
        DiffusionJob.CheckGuidance(guidance);
        bool guided = guidance > 1;
        SamplerKind defaultKind = WireChoices.Sampler.Parse(spec.DefaultSampler) ?? SamplerKind.Ddim;
        IDiffusionSampler sampler = DiffusionJob.CreateSampler(request, manifest.Scheduler ?? new SchedulerConfig(), defaultKind);

        int f = spec.VaeScaleFactor;
        int[] latentShape = [spec.LatentChannels, height / f, width / f];
        int[] imageShape = [manifest.Output.Shape[0], height, width];
        int latentElements = latentShape[0] * latentShape[1] * latentShape[2];
        var plan = SamplePlan.Create(request, manifest, latentElements, maxCount);

        // The budget's 400 comes before the text encoder runs (the caller's share is taken when the job is admitted).
        _budget?.Check(WorkRequest.Diffusion(manifest.Name, plan.Count, sampler.Timesteps.Count, imageShape, sized: true));

        ClipTokenizer tokenizer = Tokenizer(manifest);
        int[] promptIds = tokenizer.Encode(request.Prompt ?? "");
        Task<float[]> cond = Embed(model, textEncoder, promptIds);
        Task<float[]>? uncond = guided ? Embed(model, textEncoder, tokenizer.Encode(request.NegativePrompt ?? "")) : null;
        float[][]? initLatents = request.Init is null ? null : await EncodeInitAsync(request.Init, model, spec, imageShape, latentShape, plan, cancellationToken);
        (float[][] x, int start) = DiffusionJob.StartingPoints(request, sampler, plan, initLatents is null ? null : i => initLatents[i]);

        float[] condStates = await cond.WaitAsync(cancellationToken);
        float[] uncondStates = uncond is null ? condStates : await uncond.WaitAsync(cancellationToken);
        int tokens = promptIds.Length;
        return new DiffusionJob
        {
            Manifest = manifest,
            Denoiser = denoiser,
            VaeDecoder = decoder,
            Sampler = sampler,
            Count = plan.Count,
            Seed = plan.Seed,
            ReportedLabels = new int?[plan.Count],
            GuidanceScale = guided ? (float)guidance : 1f,
            X = x,
            SampleShape = latentShape,
            OutputShape = imageShape,
            Text = new PromptConditioning(condStates, uncondStates, tokens, condStates.Length / tokens),
            StartStep = start,
        };
    }

    /// <summary>
    /// Runs a job made by <see cref="CreateJobAsync"/>: the loop's step events (when <paramref name="progress"/> is
    /// true), then <see cref="DiffusionCompleted"/> with the decoded images [C, H, W] in [-1, 1].
    /// </summary>
    public async IAsyncEnumerable<DiffusionEvent> RunAsync(DiffusionJob job, bool progress, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (DiffusionEvent e in _loop.RunAsync(job, progress, cancellationToken))
        {
            if (e is DiffusionCompleted done)
            {
                yield return await DecodeAsync(job, done, cancellationToken);
                yield break;
            }

            yield return e;
        }
    }

    /// <summary>The VAE decoder over the request's latents (one call; the decoder's batcher merges concurrent requests).</summary>
    private static async Task<DiffusionCompleted> DecodeAsync(DiffusionJob job, DiffusionCompleted done, CancellationToken cancellationToken)
    {
        IGraphRunner decoder = job.VaeDecoder!;
        float scale = (float)(1 / job.Manifest.TextToImage!.ScalingFactor);
        var latents = new float[job.Count][];
        for (int i = 0; i < job.Count; i++)
        {
            latents[i] = new float[done.Samples[i].Length];
            for (int j = 0; j < latents[i].Length; j++)
            {
                latents[i][j] = done.Samples[i][j] * scale;
            }
        }

        var request = new InferenceRequest
        {
            Inputs = new Dictionary<string, Tensor> { [GraphIO.Input(decoder, "latent")] = GraphIO.Stack(latents, job.SampleShape) },
            Outputs = [GraphIO.Output(decoder, "sample")],
        };
        InferenceResult result = await decoder.InferAsync(request, cancellationToken);
        done.Timings.Add(result);
        float[][] images = GraphIO.Unstack(result.Outputs[request.Outputs[0]]);
        int expected = job.OutputShape.Aggregate(1, (a, b) => a * b);
        foreach (float[] image in images)
        {
            if (image.Length != expected)
            {
                throw new InvalidOperationException($"Graph {decoder.V2Name} returned {image.Length} values per image; the request's image [{string.Join(",", job.OutputShape)}] has {expected}.");
            }

            for (int j = 0; j < image.Length; j++)
            {
                image[j] = Math.Clamp(image[j], -1f, 1f);
            }
        }

        return done with { Samples = images };
    }

    /// <summary>height and width: multiples of the pipeline's size step, within the pixel budget and the UNet's fixed dims.</summary>
    private (int Height, int Width) Size(DiffusionParameters request, ModelManifest manifest, IGraphRunner denoiser)
    {
        TextToImageSpec spec = manifest.TextToImage!;
        int step = spec.VaeScaleFactor * spec.UNetScaleFactor;
        int height = request.Height ?? manifest.Output.Shape[1];
        int width = request.Width ?? manifest.Output.Shape[2];
        foreach ((string field, int value) in new[] { ("height", height), ("width", width) })
        {
            if (value < step || value % step != 0)
            {
                throw new RequestValidationException(field, $"'{field}' must be a positive multiple of {step} for '{manifest.Name}' (the VAE factor {spec.VaeScaleFactor} times the UNet's downsampling {spec.UNetScaleFactor}); got {value}.");
            }
        }

        if ((long)height * width > _options.MaxPixels)
        {
            throw new RequestValidationException("height", $"{height}x{width} is {(long)height * width} pixels, past this server's budget of {_options.MaxPixels} (GenService:TextToImage:MaxPixels).");
        }

        long[] dims = denoiser.Signature.Inputs.First(s => s.Canonical == "sample").Dims;
        if ((dims[2] >= 0 && dims[2] * spec.VaeScaleFactor != height) || (dims[3] >= 0 && dims[3] * spec.VaeScaleFactor != width))
        {
            throw new RequestValidationException("height", $"The UNet of '{manifest.Name}' was exported for {dims[2] * spec.VaeScaleFactor}x{dims[3] * spec.VaeScaleFactor} pixels only; got {height}x{width}.");
        }

        return (height, width);
    }

    /// <summary>The hidden states of one prompt: from the cache, or one text-encoder call (batched with other requests').</summary>
    private Task<float[]> Embed(ILoadedModel model, IGraphRunner textEncoder, int[] ids)
        => _cache.GetOrAdd(model.Manifest.Name, _versions.GetValue(model, _ => Guid.NewGuid().ToString("N")), ids, async () =>
        {
            TensorSpec idsSpec = textEncoder.Signature.Inputs.First(s => s.Canonical == "input_ids");
            Tensor input = idsSpec.ElementType == TensorElementType.Int32
                ? new Tensor(TensorElementType.Int32, [1, ids.Length], (int[])ids.Clone())
                : Tensor.FromLongs([.. ids.Select(i => (long)i)], 1, ids.Length);
            string output = GraphIO.Output(textEncoder, "hidden_states");

            // Not the caller's token: another request may be waiting on this encoding (it is one short call).
            InferenceResult result = await textEncoder.InferAsync(new InferenceRequest { Inputs = new Dictionary<string, Tensor> { [idsSpec.Name] = input }, Outputs = [output] }, CancellationToken.None);
            Tensor states = result.Outputs[output];
            if (states.Shape.Length != 3 || states.Shape[1] != ids.Length)
            {
                throw new InvalidOperationException($"Graph {textEncoder.V2Name} returned hidden states of shape [{string.Join(",", states.Shape)}]; expected [1, {ids.Length}, width].");
            }

            return states.AsFloats();
        }, out _);

    /// <summary>
    /// img2img: the init image through the VAE encoder, one latent per sample (latent_parameters: mean + std * eps,
    /// eps from the sample's own stream, as diffusers samples the latent distribution), times scaling_factor.
    /// </summary>
    private static async Task<float[][]> EncodeInitAsync(float[] init, ILoadedModel model, TextToImageSpec spec, int[] imageShape, int[] latentShape, SamplePlan plan, CancellationToken cancellationToken)
    {
        if (model.Graph("vae_encoder") is not { } encoder)
        {
            throw new RequestValidationException("init", $"'{model.Manifest.Name}' has no vae_encoder, so it cannot start from an image; leave out 'init'.");
        }

        float[] image = Validate.Vector(init, imageShape.Aggregate(1, (a, b) => a * b), "init");
        string? parameters = encoder.Signature.OutputName("latent_parameters");
        string output = parameters ?? GraphIO.Output(encoder, "latent_sample");
        var request = new InferenceRequest
        {
            Inputs = new Dictionary<string, Tensor> { [GraphIO.Input(encoder, "sample")] = GraphIO.Stack([image], imageShape) },
            Outputs = [output],
        };
        InferenceResult result = await encoder.InferAsync(request, cancellationToken);
        float[] encoded = result.Outputs[output].AsFloats();
        int n = latentShape[0] * latentShape[1] * latentShape[2];
        if (encoded.Length != (parameters is null ? n : 2 * n))
        {
            throw new InvalidOperationException($"Graph {encoder.V2Name} returned {encoded.Length} values for one image; the latent [{string.Join(",", latentShape)}] needs {(parameters is null ? n : 2 * n)}.");
        }

        float scale = (float)spec.ScalingFactor;
        var latents = new float[plan.Count][];
        for (int i = 0; i < plan.Count; i++)
        {
            var z = new float[n];
            if (parameters is null)
            {
                for (int j = 0; j < n; j++)
                {
                    z[j] = encoded[j] * scale;
                }
            }
            else
            {
                // [mean; log-variance] on the channel axis; diffusers clamps the log-variance to [-30, 20].
                var eps = new float[n];
                new NoiseStream(plan.Seed, (ulong)i, NoiseStreamIds.InitLatent).FillNormal(eps);
                for (int j = 0; j < n; j++)
                {
                    double logVar = Math.Clamp(encoded[n + j], -30.0, 20.0);
                    z[j] = (float)((encoded[j] + (Math.Exp(0.5 * logVar) * eps[j])) * scale);
                }
            }

            latents[i] = z;
        }

        return latents;
    }
}
