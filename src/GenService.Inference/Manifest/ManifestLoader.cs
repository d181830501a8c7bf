using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using GenService.Sampling.Diffusion;

namespace GenService.Inference.Manifest;

/// <summary>
/// Reads and validates <c>model.json</c> against docs/model-contract.md. Everything the contract fixes is
/// checked here, before any ONNX file is opened; what only the graph knows (names, dtypes, ranks) is
/// checked by <c>GraphValidator</c>. Every error names the file and the field.
/// </summary>
public static partial class ManifestLoader
{
    public const string FileName = "model.json";

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
    };

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    private static partial Regex NameRegex();

    [GeneratedRegex(@"^past_key_values\.\d+\.(key|value)$")]
    internal static partial Regex PastRegex();

    [GeneratedRegex(@"^present\.\d+\.(key|value)$")]
    internal static partial Regex PresentRegex();

    /// <summary>Whether a folder holds a model: a model.json, or an export folder's model_index.json.</summary>
    public static bool IsModelFolder(string directory)
        => File.Exists(Path.Combine(directory, FileName)) || DiffusersFolder.IsExportFolder(directory);

    /// <summary>
    /// The manifest of a model folder: derived from an export folder (<see cref="DiffusersFolder"/>, model_index.json
    /// wins over a model.json beside it, which may only override a few fields), else read from model.json.
    /// </summary>
    public static ModelManifest LoadFolder(string directory)
        => DiffusersFolder.IsExportFolder(directory) ? DiffusersFolder.Load(directory) : Load(directory);

    /// <summary>Loads <c>model.json</c> from a model folder and validates it.</summary>
    /// <exception cref="ManifestException">The file is missing, is not valid JSON, or breaks the contract.</exception>
    public static ModelManifest Load(string directory)
    {
        string full = Path.GetFullPath(directory);
        string display = DisplayPath(full, FileName);
        string path = Path.Combine(full, FileName);
        if (!File.Exists(path))
        {
            throw new ManifestException($"{display}: file not found.");
        }

        string json = File.ReadAllText(path);
        return Parse(json, full, display);
    }

    /// <summary>"models/x/file": the folder, its parent and the file, for messages a person can find.</summary>
    public static string DisplayPath(string modelDirectory, string file)
    {
        string full = Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar);
        string? parent = Path.GetFileName(Path.GetDirectoryName(full));
        string name = Path.GetFileName(full);
        return string.IsNullOrEmpty(parent) ? $"{name}/{file}" : $"{parent}/{name}/{file}";
    }

    /// <summary>Parses and validates manifest JSON. <paramref name="directory"/> resolves named files (scheduler).</summary>
    public static ModelManifest Parse(string json, string directory, string display)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new ManifestException($"{display}: the top level must be a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new ManifestException($"{display}: not valid JSON: {ex.Message}", ex);
        }

        // The family decides everything else; check it first for a clear message.
        string? familyText = (root["family"] as JsonValue)?.TryGetValue(out string? f) == true ? f : null;
        if (FamilyDescriptor.FromWireName(familyText) is null)
        {
            throw new ManifestException($"{display}: family: '{familyText ?? root["family"]?.ToJsonString() ?? "(missing)"}' is not a family; allowed: {string.Join(", ", FamilyDescriptor.All.Select(d => d.WireName))}.");
        }

        // "scheduler" is an object or a file name; resolve it apart from the typed read.
        JsonNode? schedulerNode = root["scheduler"];
        root.Remove("scheduler");

        ModelManifest manifest;
        try
        {
            manifest = root.Deserialize<ModelManifest>(JsonOptions) ?? throw new ManifestException($"{display}: empty manifest.");
        }
        catch (JsonException ex)
        {
            string field = string.IsNullOrEmpty(ex.Path) ? "$" : ex.Path.TrimStart('$').TrimStart('.');
            throw new ManifestException($"{display}: {(field.Length == 0 ? "(top level)" : field)}: {ex.Message}", ex);
        }

        SchedulerConfig? scheduler = schedulerNode is null ? null : ParseScheduler(schedulerNode, directory, display);
        manifest = manifest with { Scheduler = scheduler, Directory = directory };
        if (manifest.Output is { Shape: null } nullShape)
        {
            // An explicit "shape": null reads as left out (allowed for text, rejected below otherwise).
            manifest = manifest with { Output = nullShape with { Shape = [] } };
        }

        Validate(manifest, display, Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar)));
        return manifest;
    }

    /// <summary>Parses a diffusers scheduler config (object or named file); unknown keys are ignored.</summary>
    public static SchedulerConfig ParseScheduler(JsonNode node, string directory, string display)
    {
        string field = "scheduler";
        if (node is JsonValue value && value.TryGetValue(out string? fileName))
        {
            string path = Path.Combine(directory, fileName);
            display = DisplayPath(directory, fileName);
            if (!File.Exists(path))
            {
                throw new ManifestException($"{DisplayPath(directory, FileName)}: scheduler: file '{fileName}' not found.");
            }

            try
            {
                node = JsonNode.Parse(File.ReadAllText(path)) ?? throw new ManifestException($"{display}: empty file.");
            }
            catch (JsonException ex)
            {
                throw new ManifestException($"{display}: not valid JSON: {ex.Message}", ex);
            }

            field = "(scheduler config)";
        }

        if (node is not JsonObject obj)
        {
            throw new ManifestException($"{display}: {field}: must be an object of diffusers scheduler keys or a file name.");
        }

        try
        {
            SchedulerConfig config = obj.Deserialize<SchedulerConfig>(JsonOptions) ?? new SchedulerConfig();
            if (config.NumTrainTimesteps < 1)
            {
                throw new ManifestException($"{display}: {field}.num_train_timesteps: must be >= 1 (got {config.NumTrainTimesteps}).");
            }

            if (!(config.BetaStart > 0 && config.BetaEnd > config.BetaStart && config.BetaEnd < 1))
            {
                throw new ManifestException($"{display}: {field}.beta_start/beta_end: need 0 < beta_start < beta_end < 1 (got {config.BetaStart}, {config.BetaEnd}).");
            }

            return config;
        }
        catch (JsonException ex)
        {
            string path = string.IsNullOrEmpty(ex.Path) ? "" : "." + ex.Path.TrimStart('$').TrimStart('.');
            throw new ManifestException($"{display}: {field}{path}: {ex.Message} Allowed enum values: beta_schedule linear|scaled_linear|squaredcos_cap_v2; prediction_type epsilon|v_prediction|sample; timestep_spacing leading|trailing|linspace.", ex);
        }
    }

    internal static void Validate(ModelManifest m, string display, string folderName)
    {
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        void Fail(string field, string message) => throw new ManifestException($"{display}: {field}: {message}");

        if (!NameRegex().IsMatch(m.Name))
        {
            Fail("name", $"'{m.Name}' must match [a-z0-9][a-z0-9._-]{{0,63}}.");
        }

        if (m.Name != folderName)
        {
            Fail("name", $"'{m.Name}' must equal the folder name '{folderName}'.");
        }

        // Output.
        if (m.Output.Kind is not ("image" or "text" or "tensor"))
        {
            Fail("output.kind", $"'{m.Output.Kind}' is not allowed; allowed: image, text, tensor.");
        }

        // Text samples are token sequences whose length is tokens.max_length: their shape may be left out.
        bool shapeOptional = m.Output.Kind == "text" && (m.Output.Shape is null || m.Output.Shape.Length == 0);
        if (!shapeOptional && (m.Output.Shape is null || m.Output.Shape.Length == 0 || m.Output.Shape.Any(d => d <= 0)))
        {
            Fail("output.shape", $"[{string.Join(",", m.Output.Shape ?? [])}] must be a non-empty list of positive sizes.");
        }

        if (m.Output.Kind == "image")
        {
            if (m.Output.Shape!.Length != 3 || m.Output.Shape[0] is not (1 or 3))
            {
                Fail("output.shape", $"an image is CHW with C = 1 or 3; got [{string.Join(",", m.Output.Shape)}].");
            }

            if (m.Output.Range is not { Length: 2 } r || !float.IsFinite(r[0]) || !float.IsFinite(r[1]) || r[0] == r[1])
            {
                Fail("output.range", "an image needs [black, white], two different finite numbers.");
            }
        }

        if (m.Output.Range is not null && m.Output.Range.Length != 2)
        {
            Fail("output.range", "must be [low, high].");
        }

        // Conditioning.
        if (m.Conditioning is { } c)
        {
            if (c.NumClasses < 1)
            {
                Fail("conditioning.num_classes", $"must be >= 1 (got {c.NumClasses}).");
            }

            if (c.Labels is not null && c.Labels.Count != c.NumClasses)
            {
                Fail("conditioning.labels", $"has {c.Labels.Count} labels but num_classes is {c.NumClasses}.");
            }

            if (c.NullClass is { } n && n < 0)
            {
                Fail("conditioning.null_class", $"must be >= 0 (got {n}).");
            }
        }

        // Latent shape.
        if (m.Family is ModelFamily.Gan or ModelFamily.Vae && m.LatentShape is null)
        {
            Fail("latent_shape", $"required for a {m.Family.WireName()} model (the per-sample latent shape, e.g. [16]).");
        }

        if (m.LatentShape is { } ls && (ls.Length == 0 || ls.Any(d => d <= 0)))
        {
            Fail("latent_shape", $"[{string.Join(",", ls)}] must be a non-empty list of positive sizes.");
        }

        if (m.Family == ModelFamily.Flow && m.LatentShape is { } fl && fl.Aggregate(1, (a, b) => a * b) != m.SampleElements)
        {
            Fail("latent_shape", $"a flow's latent has as many elements as output.shape ({m.SampleElements}).");
        }

        // Graphs and roles.
        FamilyDescriptor family = FamilyDescriptor.Of(m.Family);
        string roleNames = string.Join(", ", family.Roles.Select(r => r.Name));
        if (m.Graphs is null || m.Graphs.Count == 0)
        {
            Fail("graphs", $"at least the required role is needed; roles of {family.WireName}: {roleNames}.");
        }

        foreach (FamilyRole rule in family.Roles)
        {
            if (rule.Required && !m.Graphs!.ContainsKey(rule.Name))
            {
                Fail("graphs", $"a {family.WireName} model needs the role '{rule.Name}'.");
            }
        }

        foreach ((string role, GraphSpec g) in m.Graphs!)
        {
            if (family.Role(role) is not { } rule)
            {
                Fail($"graphs.{role}", $"unknown role for a {family.WireName} model; allowed: {roleNames}.");
                return;
            }

            if (string.IsNullOrWhiteSpace(g.File) || Path.IsPathRooted(g.File) || g.File.Contains("..", StringComparison.Ordinal))
            {
                Fail($"graphs.{role}.file", $"'{g.File}' must be a file name inside the model folder.");
            }

            CheckNames(m, display, role, "inputs", g.Inputs, rule.Inputs, rule.OptionalInputs, isInput: true);
            CheckNames(m, display, role, "outputs", g.Outputs, rule.Outputs, rule.OptionalOutputs, isInput: false);
        }

        // Family extras. A missing diffusion scheduler is the diffusers defaults (the contract gives every key one).
        if (m.TextToImage is null && m.Graphs!.Keys.FirstOrDefault(r => r is "text_encoder" or "vae_decoder" or "vae_encoder") is { } latentRole)
        {
            Fail($"graphs.{latentRole}", "a text-to-image pipeline is served from its export folder (model_index.json beside text_encoder/, unet/, vae_decoder/), not described in model.json.");
        }

        if (m.Family == ModelFamily.Ar)
        {
            if (m.Tokens is not { } t)
            {
                Fail("tokens", "required for an ar model (vocab_size, max_length, ...).");
                return;
            }

            if (t.VocabSize < 1)
            {
                Fail("tokens.vocab_size", $"must be >= 1 (got {t.VocabSize}).");
            }

            if (t.MaxLength < 1)
            {
                Fail("tokens.max_length", $"must be >= 1 (got {t.MaxLength}).");
            }

            CheckToken(t.BosTokenId, "tokens.bos_token_id", t.VocabSize, Fail);
            CheckToken(t.EosTokenId, "tokens.eos_token_id", t.VocabSize, Fail);
            if (t.ClassStartTokenOffset is { } off && (off < 0 || off + (m.Conditioning?.NumClasses ?? 1) > t.VocabSize))
            {
                Fail("tokens.class_start_token_offset", $"class tokens {off}..{off + (m.Conditioning?.NumClasses ?? 1) - 1} must lie in 0..{t.VocabSize - 1}.");
            }

            if (t.Vocabulary is not null && t.Vocabulary.Count != t.VocabSize)
            {
                Fail("tokens.vocabulary", $"has {t.Vocabulary.Count} entries but vocab_size is {t.VocabSize}.");
            }

            if (t.Tokenizer is { } tok && !File.Exists(Path.Combine(m.Directory, tok)))
            {
                Fail("tokens.tokenizer", $"file '{tok}' not found in the model folder.");
            }

            if (m.Output.Kind == "image")
            {
                if (t.ImageLevels is not { } lv || lv < 2)
                {
                    Fail("tokens.image_levels", "an image ar model needs image_levels >= 2.");
                }
                else if (lv > t.VocabSize)
                {
                    Fail("tokens.image_levels", $"{lv} levels do not fit in vocab_size {t.VocabSize}.");
                }
            }
        }

        if (m.Likelihood is { } lk && !(lk.BinWidth > 0))
        {
            Fail("likelihood.bin_width", $"must be > 0 (got {lk.BinWidth}).");
        }

        if (m.Batching is null)
        {
            Fail("batching", "must be an object.");
            return;
        }

        if (m.Batching.MaxBatchSize < 1)
        {
            Fail("batching.max_batch_size", $"must be >= 1 (got {m.Batching.MaxBatchSize}).");
        }

        if (!(m.Batching.MaxQueueDelayMs >= 0) || m.Batching.MaxQueueDelayMs > 60_000)
        {
            Fail("batching.max_queue_delay_ms", $"must be in 0..60000 (got {m.Batching.MaxQueueDelayMs}).");
        }

        if (m.Batching.MaxQueueSize < 1)
        {
            Fail("batching.max_queue_size", $"must be >= 1 (got {m.Batching.MaxQueueSize}).");
        }

        if (m.Instances < 1)
        {
            Fail("instances", $"must be >= 1 (got {m.Instances}).");
        }
    }

    private static void CheckToken(int? id, string field, int vocab, Action<string, string> fail)
    {
        if (id is { } v && (v < 0 || v >= vocab))
        {
            fail(field, $"{v} must lie in 0..{vocab - 1}.");
        }
    }

    private static void CheckNames(ModelManifest m, string display, string role, string kind, IReadOnlyDictionary<string, string>? map,
        string[] required, string[] optional, bool isInput)
    {
        string field = $"graphs.{role}.{kind}";
        if (map is null)
        {
            throw new ManifestException($"{display}: {field}: must be an object mapping canonical names to ONNX names.");
        }

        bool ar = m.Family == ModelFamily.Ar;
        foreach ((string canonical, string onnx) in map)
        {
            bool known = required.Contains(canonical) || optional.Contains(canonical)
                || (ar && (isInput ? PastRegex() : PresentRegex()).IsMatch(canonical));
            if (!known)
            {
                string allowed = string.Join(", ", required.Concat(optional)) + (ar ? (isInput ? ", past_key_values.N.key/value" : ", present.N.key/value") : "");
                throw new ManifestException($"{display}: {field}: unknown canonical name '{canonical}' for role {role}; allowed: {allowed}");
            }

            if (string.IsNullOrEmpty(onnx))
            {
                throw new ManifestException($"{display}: {field}.{canonical}: the ONNX name is empty.");
            }
        }

        foreach (string r in required)
        {
            if (!map.ContainsKey(r))
            {
                throw new ManifestException($"{display}: {field}: the required canonical name '{r}' is not mapped for role {role}.");
            }
        }

        if (map.Values.Distinct(StringComparer.Ordinal).Count() != map.Count)
        {
            throw new ManifestException($"{display}: {field}: two canonical names map to the same ONNX name.");
        }

        if (ar)
        {
            // past_key_values.N.* and present.N.* come in pairs; a cache needs both sides.
            Regex cache = isInput ? PastRegex() : PresentRegex();
            int cacheNames = map.Keys.Count(k => cache.IsMatch(k));
            if (cacheNames % 2 != 0)
            {
                throw new ManifestException($"{display}: {field}: KV-cache names come in key/value pairs.");
            }
        }
    }

}
