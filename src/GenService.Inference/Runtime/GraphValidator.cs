using System.Text;
using GenService.Inference.Manifest;
using GenService.Inference.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace GenService.Inference.Runtime;

/// <summary>
/// Checks a graph against its manifest mapping (names, dtypes, ranks, dynamic batch dim) and builds its
/// <see cref="GraphSignature"/>. All problems of one graph are reported together.
/// </summary>
internal static class GraphValidator
{
    public static GraphSignature Validate(ModelManifest manifest, string role, IReadOnlyDictionary<string, NodeMetadata> inputs,
        IReadOnlyDictionary<string, NodeMetadata> outputs)
    {
        GraphSpec spec = manifest.Graphs[role];
        string display = ManifestLoader.DisplayPath(manifest.Directory, spec.File);
        var problems = new List<string>();
        var canonicalByOnnx = spec.Inputs.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);
        var outCanonicalByOnnx = spec.Outputs.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);

        foreach ((string canonical, string onnx) in spec.Inputs)
        {
            if (!inputs.ContainsKey(onnx))
            {
                problems.Add($"graphs.{role}.inputs.{canonical}: the graph has no input '{onnx}' (its inputs: {string.Join(", ", inputs.Keys)})");
            }
        }

        // Optional outputs (the two forms of a VAE encoder's output) are mapped as the exporters name them; the graph
        // keeps the ones it has, and must have one.
        string[] optionalOutputs = FamilyDescriptor.Of(manifest.Family).Role(role)?.OptionalOutputs ?? [];
        foreach ((string canonical, string onnx) in spec.Outputs)
        {
            if (!outputs.ContainsKey(onnx))
            {
                if (optionalOutputs.Contains(canonical))
                {
                    outCanonicalByOnnx.Remove(onnx);
                    continue;
                }

                problems.Add($"graphs.{role}.outputs.{canonical}: the graph has no output '{onnx}' (its outputs: {string.Join(", ", outputs.Keys)})");
            }
        }

        if (optionalOutputs.Length > 0 && !spec.Outputs.Any(kv => optionalOutputs.Contains(kv.Key) && outputs.ContainsKey(kv.Value)))
        {
            problems.Add($"graphs.{role}.outputs: the graph has none of the outputs {string.Join(", ", optionalOutputs)} (its outputs: {string.Join(", ", outputs.Keys)})");
        }

        List<TensorSpec> inSpecs = Build(manifest, role, "inputs", inputs, canonicalByOnnx, problems, requireMapped: true);
        List<TensorSpec> outSpecs = Build(manifest, role, "outputs", outputs, outCanonicalByOnnx, problems, requireMapped: false);
        if (problems.Count > 0)
        {
            var sb = new StringBuilder($"{display} does not match {(manifest.TextToImage is null ? "model.json" : "what its export folder's layout names")}: ");
            sb.AppendJoin("; ", problems);
            throw new ManifestException(sb.ToString());
        }

        return new GraphSignature(inSpecs, outSpecs);
    }

    private static List<TensorSpec> Build(ModelManifest m, string role, string kind, IReadOnlyDictionary<string, NodeMetadata> nodes,
        Dictionary<string, string> canonicalByOnnx, List<string> problems, bool requireMapped)
    {
        var specs = new List<TensorSpec>(nodes.Count);
        foreach ((string name, NodeMetadata meta) in nodes)
        {
            canonicalByOnnx.TryGetValue(name, out string? canonical);
            string field = $"graphs.{role}.{kind}.{canonical ?? name}";
            if (canonical is null && requireMapped)
            {
                problems.Add($"graphs.{role}.inputs: the graph input '{name}' is not mapped to a canonical name");
            }

            if (!meta.IsTensor)
            {
                problems.Add($"{field}: '{name}' is not a tensor");
                continue;
            }

            // float16 tensors move as float32: the session pool casts at the graph's boundary.
            TensorElementType? type = OrtSessionPool.FromOrt(meta.ElementDataType);
            if (type is null)
            {
                problems.Add($"{field}: '{name}' has element type {meta.ElementDataType}, which the service does not move");
                continue;
            }

            long[] dims = [.. meta.Dimensions.Select(d => (long)d)];
            bool sharedTimestep = canonical == "timestep" && kind == "inputs" && (dims.Length == 0 || dims is [1]);
            if (!sharedTimestep && (dims.Length == 0 || dims[0] >= 0))
            {
                problems.Add($"{field}: '{name}' must have a dynamic batch dimension 0 (shape [{string.Join(",", dims)}])");
            }

            if (canonical is not null && !sharedTimestep)
            {
                Check(m, role, canonical, name, field, type.Value, dims, problems);
            }

            specs.Add(new TensorSpec(name, canonical, type.Value, dims)
            {
                Values = kind == "inputs" ? IndexValues(m, role, canonical) : null,
                Float16 = meta.ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16,
            });
        }

        return specs;
    }

    /// <summary>
    /// The values the manifest allows in an index input: class labels 0..num_classes-1 (and the null class, the
    /// unconditional row of guidance, where the model has one), an AR decoder's token ids 0..vocab_size-1. A text
    /// encoder's vocabulary lives in its tokenizer folder, not the manifest: its ids are not range-checked here.
    /// </summary>
    internal static IndexRange? IndexValues(ModelManifest m, string role, string? canonical)
    {
        if (canonical == "class_label" && m.Conditioning is { } cond)
        {
            long max = Math.Max(cond.NumClasses - 1, cond.NullClass ?? -1);
            string nullClass = cond.NullClass is { } n ? $", null class {n}" : "";
            return new IndexRange(0, max, $"class labels of model '{m.Name}' (conditioning.num_classes {cond.NumClasses}{nullClass})");
        }

        if (canonical == "input_ids" && m.Family == ModelFamily.Ar && role == "decoder" && m.Tokens is { } tokens)
        {
            return new IndexRange(0, tokens.VocabSize - 1, $"token ids of model '{m.Name}' (tokens.vocab_size {tokens.VocabSize})");
        }

        return null;
    }

    private static void Check(ModelManifest m, string role, string canonical, string name, string field, TensorElementType type, long[] dims, List<string> problems)
    {
        TensorElementType[] allowed = canonical switch
        {
            // Exporters of text encoders write int32 ids (current Optimum) or int64 ones.
            "input_ids" when role == "text_encoder" => [TensorElementType.Int32, TensorElementType.Int64],
            "input_ids" or "attention_mask" or "position_ids" => [TensorElementType.Int64],
            "class_label" or "timestep" => [TensorElementType.Int64, TensorElementType.Float32],
            "log_det" => [TensorElementType.Float32],
            _ => [TensorElementType.Float32],
        };
        if (!allowed.Contains(type))
        {
            problems.Add($"{field}: '{name}' is {Tensor.V2Name(type)} but {canonical} must be {string.Join(" or ", allowed.Select(Tensor.V2Name))}");
        }

        int[]? perSample = PerSampleShape(m, role, canonical);
        int? rank = canonical switch
        {
            "timestep" or "class_label" or "log_det" => 1,
            "input_ids" or "attention_mask" or "position_ids" => 2,
            "encoder_hidden_states" or "hidden_states" => 3,
            "logits" => 3,
            _ when canonical.StartsWith("past_key_values.", StringComparison.Ordinal) || canonical.StartsWith("present.", StringComparison.Ordinal) => 4,
            _ => perSample is null ? null : perSample.Length + 1,
        };
        if (rank is { } r && dims.Length != r)
        {
            problems.Add($"{field}: '{name}' has rank {dims.Length} (shape [{string.Join(",", dims)}]) but {canonical} needs rank {r}");
            return;
        }

        if (perSample is not null)
        {
            for (int i = 0; i < perSample.Length; i++)
            {
                if (dims[i + 1] >= 0 && dims[i + 1] != perSample[i])
                {
                    problems.Add($"{field}: '{name}' has shape [{string.Join(",", dims)}] but the manifest says [batch,{string.Join(",", perSample)}]");
                    break;
                }
            }
        }

        if (canonical == "logits" && m.Tokens is { } t && dims[2] >= 0 && dims[2] != t.VocabSize)
        {
            problems.Add($"{field}: '{name}' has {dims[2]} logits per position but tokens.vocab_size is {t.VocabSize}");
        }

        if (canonical is "encoder_hidden_states" or "hidden_states" && m.TextToImage is { HiddenSize: > 0 } p && dims[2] >= 0 && dims[2] != p.HiddenSize)
        {
            problems.Add($"{field}: '{name}' has width {dims[2]} but the text encoder's hidden_size is {p.HiddenSize}");
        }
    }

    /// <summary>
    /// The per-sample shape a canonical tensor has (null when the manifest does not fix it). In a latent pipeline the
    /// UNet's sample and prediction and the VAE decoder's input are latents; the decoder's output and the encoder's
    /// input are images.
    /// </summary>
    private static int[]? PerSampleShape(ModelManifest m, string role, string canonical) => canonical switch
    {
        "latent" => m.LatentShape ?? (m.Family == ModelFamily.Flow ? m.Output.Shape : null),
        "sample" or "prediction" when role == "denoiser" && m.TextToImage is not null => m.LatentShape,
        "sample" or "prediction" => m.Output.Shape,
        "mean" or "log_var" => m.LatentShape,
        _ => null,
    };

    /// <summary>
    /// Batch-1 inputs for the warm-up run: dynamic non-batch dims from the manifest (latent shape, output
    /// shape; AR: sequence 1, past 0; a text-to-image pipeline's token length and hidden size), zeros everywhere except
    /// an attention mask of ones.
    /// </summary>
    public static Dictionary<string, Tensor> WarmUpInputs(ModelManifest m, string role, GraphSignature signature)
    {
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (TensorSpec s in signature.Inputs)
        {
            string canonical = s.Canonical ?? "";
            int[]? perSample = canonical switch
            {
                "latent" => m.LatentShape ?? m.Output.Shape,
                "input_ids" when m.TextToImage is { } p => [p.MaxTokens],
                "encoder_hidden_states" when m.TextToImage is { } p => [p.MaxTokens, Math.Max(p.HiddenSize, 1)],
                _ => PerSampleShape(m, role, canonical),
            };
            bool past = canonical.StartsWith("past_key_values.", StringComparison.Ordinal);
            long[] shape = new long[s.Dims.Length];
            if (shape.Length == 0)
            {
                // A timestep shared by the whole call (a scalar).
                inputs[s.Name] = new Tensor(s.ElementType, shape, Array.CreateInstance(Tensor.ClrType(s.ElementType), 1));
                continue;
            }

            shape[0] = 1;
            for (int d = 1; d < shape.Length; d++)
            {
                shape[d] = s.Dims[d] >= 0 ? s.Dims[d]
                    : past && d == 2 ? 0
                    : perSample is not null && d - 1 < perSample.Length ? perSample[d - 1]
                    : 1;
            }

            long count = Tensor.ElementCount(shape);
            Array data = Array.CreateInstance(Tensor.ClrType(s.ElementType), count);
            if (canonical == "attention_mask" && data is long[] mask)
            {
                Array.Fill(mask, 1L);
            }

            inputs[s.Name] = new Tensor(s.ElementType, shape, data);
        }

        return inputs;
    }
}
