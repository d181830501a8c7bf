using GenService.Generation.Loops;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Generation.Diffusion;

/// <summary>
/// One denoiser call over the current step of any set of samples (of one request or of many): a sample row per
/// sample at its own timestep and, under guidance, its unconditional row first (the null class, or the negative or
/// empty prompt's hidden states, as diffusers orders its guidance batch). Input names are resolved once per graph.
/// <para>
/// Rows can share a call only when they agree on what the call fixes for all of them (<see cref="GroupKey"/>): the
/// sample's shape (text-to-image requests may ask different sizes) and, for a UNet whose timestep is one scalar for
/// the whole call (current Optimum exports), the timestep. An iteration makes one call per group.
/// </para>
/// </summary>
internal sealed class DenoiserBatch
{
    private readonly string _sampleName;
    private readonly TensorSpec _timestepSpec;
    private readonly TensorSpec? _labelSpec;
    private readonly TensorSpec? _textSpec;

    public DenoiserBatch(IGraphRunner denoiser)
    {
        Denoiser = denoiser;
        _sampleName = GraphIO.Input(denoiser, "sample");
        string timestepName = GraphIO.Input(denoiser, "timestep");
        _timestepSpec = denoiser.Signature.Inputs.First(s => s.Name == timestepName);
        _labelSpec = denoiser.Signature.Inputs.FirstOrDefault(s => s.Canonical == "class_label");
        _textSpec = denoiser.Signature.Inputs.FirstOrDefault(s => s.Canonical == "encoder_hidden_states");
        PredictionName = GraphIO.Output(denoiser, "prediction");
    }

    public IGraphRunner Denoiser { get; }

    public string PredictionName { get; }

    /// <summary>Whether the graph takes one timestep for the whole call (a scalar or [1]) instead of one per row.</summary>
    public bool SharedTimestep => !_timestepSpec.Batched;

    /// <summary>Rows of one call over <paramref name="samples"/>.</summary>
    public static int RowsOf(IReadOnlyList<DiffusionSampleCursor> samples)
    {
        int rows = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            rows += samples[k].Rows;
        }

        return rows;
    }

    /// <summary>What rows must agree on to share a call: the sample shape and, for a shared timestep, its value.</summary>
    public (int[] Shape, double Timestep) GroupKey(DiffusionSampleCursor s) => (s.Job.SampleShape, SharedTimestep ? s.Timestep : double.NaN);

    /// <summary>
    /// <paramref name="samples"/> split into the groups that can share a call, each in the samples' order. One group
    /// when every sample has the same shape and the graph takes a timestep per row (the usual case, no copy).
    /// </summary>
    public List<List<DiffusionSampleCursor>> Groups(List<DiffusionSampleCursor> samples)
    {
        if (samples.Count == 0 || samples.TrueForAll(s => SameGroup(s, samples[0])))
        {
            return [samples];
        }

        var groups = new List<List<DiffusionSampleCursor>>();
        foreach (DiffusionSampleCursor s in samples)
        {
            List<DiffusionSampleCursor>? group = groups.Find(g => SameGroup(g[0], s));
            if (group is null)
            {
                group = [];
                groups.Add(group);
            }

            group.Add(s);
        }

        return groups;
    }

    private bool SameGroup(DiffusionSampleCursor a, DiffusionSampleCursor b)
    {
        (int[] shapeA, double tA) = GroupKey(a);
        (int[] shapeB, double tB) = GroupKey(b);
        return (ReferenceEquals(shapeA, shapeB) || shapeA.AsSpan().SequenceEqual(shapeB)) && (double.IsNaN(tA) || tA == tB);
    }

    /// <summary>
    /// The inputs of one call over one group (<see cref="Groups"/>): rows in the order of <paramref name="samples"/>,
    /// a guided sample's unconditional row before its conditional one.
    /// <paramref name="dispatchImmediately"/>: the call is a whole loop iteration, batched already, so the
    /// batcher sends it at once; a request-level step leaves it false, so concurrent requests' steps can merge.
    /// </summary>
    /// <param name="samples">One group's samples.</param>
    /// <param name="rows">Their rows.</param>
    /// <param name="dispatchImmediately">See above.</param>
    /// <param name="buffers">
    /// Where the call's large arrays come from: rented (an iteration loop, which returns them once the call has
    /// completed: a text-to-image call moves rows x tokens x width floats, which as fresh arrays would land on the
    /// large-object heap every iteration, see <see cref="CallBuffers"/>), with the prediction written in place; or
    /// null, fresh arrays (the request-level loop, whose calls the batcher may hold and merge).
    /// </param>
    public InferenceRequest Build(IReadOnlyList<DiffusionSampleCursor> samples, int rows, bool dispatchImmediately, CallBuffers? buffers = null)
    {
        int[] shape = samples[0].Job.SampleShape;
        int elements = samples[0].Job.SampleElements;
        PromptConditioning? text0 = samples[0].Job.Text;
        int textElements = _textSpec is null || text0 is null ? 0 : text0.Elements;
        long[] dims = new long[shape.Length + 1];
        dims[0] = rows;
        for (int d = 0; d < shape.Length; d++)
        {
            dims[d + 1] = shape[d];
        }

        Tensor inputTensor = buffers?.Floats(dims) ?? Tensor.FromFloats(new float[rows * elements], dims);
        Tensor? textTensor = textElements == 0 ? null
            : buffers?.Floats(rows, text0!.Tokens, text0.Width) ?? Tensor.FromFloats(new float[rows * textElements], rows, text0!.Tokens, text0.Width);
        float[] input = (float[])inputTensor.Data;
        float[]? text = (float[]?)textTensor?.Data;
        var timesteps = new double[rows];
        var labels = _labelSpec is null ? null : new double[rows];
        int row = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            DiffusionSampleCursor s = samples[k];
            Span<float> x = input.AsSpan(row * elements, elements);
            s.WriteModelInput(x);
            if (s.Rows == 2)
            {
                x.CopyTo(input.AsSpan((row + 1) * elements, elements));
                WriteRow(s, row, conditional: false);
                WriteRow(s, row + 1, conditional: true);
            }
            else
            {
                WriteRow(s, row, conditional: true);
            }

            row += s.Rows;
        }

        var inputs = new Dictionary<string, Tensor>
        {
            [_sampleName] = inputTensor,
            [_timestepSpec.Name] = SharedTimestep ? GraphIO.Shared(_timestepSpec, timesteps[0]) : GraphIO.Scalars(_timestepSpec, timesteps),
        };
        if (_labelSpec is not null && labels is not null)
        {
            inputs[_labelSpec.Name] = GraphIO.Scalars(_labelSpec, labels);
        }

        if (_textSpec is not null)
        {
            inputs[_textSpec.Name] = textTensor
                ?? throw new InvalidOperationException($"Graph {Denoiser.V2Name} takes encoder_hidden_states but the job has no prompt conditioning.");
        }

        return new InferenceRequest
        {
            Inputs = inputs,
            Outputs = [PredictionName],
            DispatchImmediately = dispatchImmediately,
            OutputBuffers = buffers is null ? null : new Dictionary<string, Tensor> { [PredictionName] = buffers.Floats(dims) },
        };

        void WriteRow(DiffusionSampleCursor s, int at, bool conditional)
        {
            timesteps[at] = s.Timestep;
            if (labels is not null)
            {
                labels[at] = conditional ? s.Label ?? s.UnconditionalLabel : s.UnconditionalLabel;
            }

            if (text is not null)
            {
                PromptConditioning c = s.Job.Text!;
                (conditional ? c.Conditional : c.Unconditional).CopyTo(text.AsSpan(at * textElements, textElements));
            }
        }
    }

    /// <summary>Advances every sample one step from the call's prediction (rows laid out as <see cref="Build"/>).</summary>
    public static void Advance(IReadOnlyList<DiffusionSampleCursor> samples, ReadOnlySpan<float> prediction, float[] scratch)
    {
        int row = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            DiffusionSampleCursor s = samples[k];
            int n = s.Job.SampleElements;
            ReadOnlySpan<float> uncond = s.Rows == 2 ? prediction.Slice(row * n, n) : default;
            ReadOnlySpan<float> cond = prediction.Slice((row + s.Rows - 1) * n, n);
            s.Advance(cond, uncond, scratch.AsSpan(0, 3 * n));
            row += s.Rows;
        }
    }

    /// <summary>Scratch for <see cref="Advance"/>: 3 x the largest sample of <paramref name="samples"/>.</summary>
    public static float[] EnsureScratch(float[] scratch, IReadOnlyList<DiffusionSampleCursor> samples)
    {
        int most = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            most = Math.Max(most, samples[k].Job.SampleElements);
        }

        return scratch.Length >= 3 * most ? scratch : new float[3 * most];
    }
}
