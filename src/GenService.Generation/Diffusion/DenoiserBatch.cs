using GenService.Inference.Manifest;
using GenService.Inference.Runtime;
using GenService.Inference.Tensors;

namespace GenService.Generation.Diffusion;

/// <summary>
/// One denoiser call over the current step of any set of samples (of one request or of many): a sample row per
/// sample at its own timestep, followed by its null-class row under guidance. Input names are resolved once.
/// </summary>
internal sealed class DenoiserBatch
{
    private readonly string _sampleName;
    private readonly string _timestepName;
    private readonly TensorSpec _timestepSpec;
    private readonly TensorSpec? _labelSpec;
    private readonly long[] _sampleDims;
    private readonly int _elements;

    public DenoiserBatch(IGraphRunner denoiser, ModelManifest manifest)
    {
        Denoiser = denoiser;
        _sampleName = GraphIO.Input(denoiser, "sample");
        _timestepName = GraphIO.Input(denoiser, "timestep");
        _timestepSpec = denoiser.Signature.Inputs.First(s => s.Name == _timestepName);
        _labelSpec = denoiser.Signature.Inputs.FirstOrDefault(s => s.Canonical == "class_label");
        PredictionName = GraphIO.Output(denoiser, "prediction");
        int[] shape = manifest.Output.Shape;
        _sampleDims = new long[shape.Length + 1];
        for (int d = 0; d < shape.Length; d++)
        {
            _sampleDims[d + 1] = shape[d];
        }

        _elements = manifest.SampleElements;
    }

    public IGraphRunner Denoiser { get; }

    public string PredictionName { get; }

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

    /// <summary>
    /// The inputs of one call: rows in the order of <paramref name="samples"/>, guided samples taking two.
    /// <paramref name="dispatchImmediately"/>: the call is a whole loop iteration, batched already, so the
    /// batcher sends it at once; a request-level step leaves it false, so concurrent requests' steps can merge.
    /// </summary>
    public InferenceRequest Build(IReadOnlyList<DiffusionSampleCursor> samples, int rows, bool dispatchImmediately)
    {
        // Fresh arrays per call: the batcher may hold the tensors until the call completes, and the call is
        // small next to the model run (64 rows of 8x8 = 16 KB).
        int total = rows;
        var input = new float[total * _elements];
        var timesteps = new double[total];
        var labels = _labelSpec is null ? null : new double[total];
        int row = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            DiffusionSampleCursor s = samples[k];
            Span<float> cond = input.AsSpan(row * _elements, _elements);
            s.WriteModelInput(cond);
            timesteps[row] = s.Timestep;
            if (labels is not null)
            {
                labels[row] = s.Label ?? s.UnconditionalLabel;
            }

            row++;
            if (s.Rows == 2)
            {
                cond.CopyTo(input.AsSpan(row * _elements, _elements));
                timesteps[row] = s.Timestep;
                if (labels is not null)
                {
                    labels[row] = s.UnconditionalLabel;
                }

                row++;
            }
        }

        long[] dims = (long[])_sampleDims.Clone();
        dims[0] = total;
        var inputs = new Dictionary<string, Tensor>
        {
            [_sampleName] = Tensor.FromFloats(input, dims),
            [_timestepName] = GraphIO.Scalars(_timestepSpec, timesteps),
        };
        if (_labelSpec is not null && labels is not null)
        {
            inputs[_labelSpec.Name] = GraphIO.Scalars(_labelSpec, labels);
        }

        return new InferenceRequest { Inputs = inputs, Outputs = [PredictionName], DispatchImmediately = dispatchImmediately };
    }

    /// <summary>Advances every sample one step from the call's prediction (rows laid out as <see cref="Build"/>).</summary>
    public void Advance(IReadOnlyList<DiffusionSampleCursor> samples, float[] prediction, Span<float> scratch)
    {
        int row = 0;
        for (int k = 0; k < samples.Count; k++)
        {
            DiffusionSampleCursor s = samples[k];
            ReadOnlySpan<float> cond = prediction.AsSpan(row * _elements, _elements);
            ReadOnlySpan<float> uncond = s.Rows == 2 ? prediction.AsSpan((row + 1) * _elements, _elements) : default;
            s.Advance(cond, uncond, scratch);
            row += s.Rows;
        }
    }
}
