using System.Diagnostics;
using BatchCluster.Core.Data;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Planning;
using ILGPU;
using ILGPU.Runtime;

namespace BatchCluster.Gpu;

/// <summary>
/// The MLP on an ILGPU accelerator (a CUDA device, or ILGPU's CPU accelerator, which runs the same
/// kernels anywhere). Parameters, the gradient sum, and one micro-batch of inputs and activations
/// live in device memory: one upload of the parameters per version (<see cref="LoadParameters"/>),
/// one upload of inputs per micro-batch, one download of the gradient per share. The contract is
/// <see cref="IModelReplica"/>'s: the flat order of TorchSharp's Linear layers (weight [out × in]
/// row-major, then bias), inputs x / 255, the loss summed over samples, gradient sums accumulated
/// across micro-batches on the device.
/// </summary>
public sealed class IlgpuMlpReplica : IModelReplica
{
    private const int Classes = 10;

    private readonly IlgpuDevice _device;
    private readonly bool _ownsDevice;
    private readonly int[] _widths; // 784, hidden…, 10
    private readonly int[] _weightAt, _biasAt;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _parameters, _gradient;
    private readonly Action<KernelConfig, GemmShape, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _gemm;
    private readonly Action<Index2D, GemmShape, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>> _gemmUntiled;
    private readonly Action<Index1D, ArrayView<float>> _relu;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _reluBackward;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int> _softmax;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int> _columnSums;
    private readonly int _tile;
    private Batch? _batch;

    /// <param name="ownsDevice">Dispose <paramref name="device"/> with the replica (a worker's own device).</param>
    /// <param name="tile">The GEMM tile side (0: untiled); null picks by device (16 on a GPU, untiled on the CPU accelerator). Tests set it.</param>
    public IlgpuMlpReplica(ModelSpec spec, IlgpuDevice device, bool ownsDevice = false, int? tile = null)
    {
        if (spec.Name != "mlp")
            throw new NotSupportedException($"the ILGPU backend runs the MLP only (--model mlp); '{spec}' needs --device cpu");
        Spec = spec;
        _device = device;
        _ownsDevice = ownsDevice;
        _widths = [28 * 28, .. spec.HiddenSizes, Classes];
        _weightAt = new int[_widths.Length - 1];
        _biasAt = new int[_widths.Length - 1];
        int offset = 0;
        for (int l = 0; l < _widths.Length - 1; l++)
        {
            _weightAt[l] = offset;
            offset += _widths[l + 1] * _widths[l];
            _biasAt[l] = offset;
            offset += _widths[l + 1];
        }
        ParameterCount = offset;
        var accelerator = device.Accelerator;
        // 16 × 16 tiles on a GPU; none on ILGPU's CPU accelerator (the untiled kernel: the same bits, many times faster there).
        _tile = tile ?? (accelerator.AcceleratorType == AcceleratorType.CPU ? 0 : 16);
        _parameters = accelerator.Allocate1D<float>(ParameterCount);
        _gradient = accelerator.Allocate1D<float>(ParameterCount);
        _gemm = accelerator.LoadStreamKernel<GemmShape, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(MlpKernels.Gemm);
        _gemmUntiled = accelerator.LoadAutoGroupedStreamKernel<Index2D, GemmShape, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            MlpKernels.GemmUntiled);
        _relu = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>>(MlpKernels.Relu);
        _reluBackward = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(MlpKernels.ReluBackward);
        _softmax = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int>(
            MlpKernels.SoftmaxCrossEntropy);
        _columnSums = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int>(MlpKernels.AddColumnSums);
    }

    public ModelSpec Spec { get; }
    public int ParameterCount { get; }
    public string Device => _device.Name;

    public void LoadParameters(ReadOnlySpan<float> flat)
    {
        if (flat.Length != ParameterCount)
            throw new ArgumentException($"{flat.Length} parameters given, {Spec} has {ParameterCount}");
        _parameters.View.CopyFromCPU(_device.Accelerator.DefaultStream, flat);
        // The caller may reuse its buffer as soon as this returns (a worker gives pooled buffers back): finish the copy first.
        _device.Accelerator.Synchronize();
    }

    public ShareGradient ComputeGradientSum(ImageDataSet data, ReadOnlySpan<int> sampleIds, int microBatch, float[] gradientSum)
    {
        if (gradientSum.Length != ParameterCount)
            throw new ArgumentException($"gradient buffer holds {gradientSum.Length} values, the model has {ParameterCount}");
        var clock = Stopwatch.StartNew();
        _gradient.MemSetToZero();
        double lossSum = 0;
        foreach (Range range in MicroBatches.Of(sampleIds.Length, microBatch))
        {
            var ids = sampleIds[range];
            var batch = Upload(data, ids);
            Forward(batch, ids.Length);
            _softmax(ids.Length, batch.Activations[^1].View, batch.Labels.View, batch.Delta.View, batch.Loss.View, batch.Correct.View, Classes);
            Backward(batch, ids.Length);
            lossSum += SumOfLosses(batch, ids.Length);
        }
        _gradient.View.CopyToCPU(gradientSum);
        _device.Accelerator.Synchronize();
        double squaredNorm = FlatMath.SquaredNorm(gradientSum);
        return new ShareGradient(gradientSum, sampleIds.Length, lossSum, squaredNorm, clock.Elapsed.TotalMilliseconds);
    }

    public EvaluationResult Evaluate(ImageDataSet data, ReadOnlySpan<int> rows, int batchSize = 256)
    {
        var result = EvaluationResult.Empty;
        for (int offset = 0; offset < rows.Length; offset += batchSize)
        {
            var ids = rows.Slice(offset, Math.Min(batchSize, rows.Length - offset));
            var batch = Upload(data, ids);
            Forward(batch, ids.Length);
            _softmax(ids.Length, batch.Activations[^1].View, batch.Labels.View, batch.Delta.View, batch.Loss.View, batch.Correct.View, Classes);
            double loss = SumOfLosses(batch, ids.Length);
            var correct = batch.HostCorrect.AsSpan(0, ids.Length);
            batch.Correct.View.SubView(0, ids.Length).CopyToCPU(ref correct[0], ids.Length);
            _device.Accelerator.Synchronize();
            int count = 0;
            foreach (int c in correct) count += c;
            result = result.Add(new EvaluationResult(loss, count, ids.Length));
        }
        return result;
    }

    /// <summary>Layer by layer: Z = A·Wᵀ + b, then ReLU but on the last layer (the logits).</summary>
    private void Forward(Batch batch, int n)
    {
        for (int l = 0; l < _weightAt.Length; l++)
        {
            int input = _widths[l], output = _widths[l + 1];
            var previous = l == 0 ? batch.Inputs.View : batch.Activations[l - 1].View;
            var z = batch.Activations[l].View;
            Gemm(new GemmShape { M = n, N = output, K = input, A0 = input, A1 = 1, B0 = 1, B1 = input, AddBias = 1 },
                previous, Weights(l), z, Bias(l));
            if (l < _weightAt.Length - 1) _relu(n * output, z.SubView(0, n * output));
        }
    }

    /// <summary>From the logits' gradient (in batch.Delta) back to the first layer, adding into the gradient sum.</summary>
    private void Backward(Batch batch, int n)
    {
        var delta = batch.Delta.View;
        var spare = batch.Spare.View;
        for (int l = _weightAt.Length - 1; l >= 0; l--)
        {
            int input = _widths[l], output = _widths[l + 1];
            var previous = l == 0 ? batch.Inputs.View : batch.Activations[l - 1].View;
            // dW[out × in] += dZᵀ · A_prev
            Gemm(new GemmShape { M = output, N = input, K = n, A0 = 1, A1 = output, B0 = input, B1 = 1, Accumulate = 1 },
                delta, previous, _gradient.View.SubView(_weightAt[l], output * input), Bias(l));
            _columnSums(output, delta, _gradient.View.SubView(_biasAt[l], output), n, output);
            if (l == 0) break;
            // dA_prev[n × in] = dZ · W, then through the ReLU
            Gemm(new GemmShape { M = n, N = input, K = output, A0 = output, A1 = 1, B0 = input, B1 = 1 }, delta, Weights(l), spare, Bias(l));
            _reluBackward(n * input, spare.SubView(0, n * input), previous.SubView(0, n * input));
            (delta, spare) = (spare, delta);
        }
    }

    private void Gemm(GemmShape shape, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        int tile = _tile;
        if (tile == 0)
        {
            _gemmUntiled(new Index2D(shape.N, shape.M), shape, a, b, c, bias);
            return;
        }
        shape.Tile = tile;
        var groups = new Index2D((shape.N + tile - 1) / tile, (shape.M + tile - 1) / tile);
        _gemm(new KernelConfig(groups, new Index2D(tile, tile), SharedMemoryConfig.RequestDynamic<float>(2 * tile * tile)), shape, a, b, c, bias);
    }

    private ArrayView<float> Weights(int layer) => _parameters.View.SubView(_weightAt[layer], _widths[layer + 1] * _widths[layer]);
    private ArrayView<float> Bias(int layer) => _parameters.View.SubView(_biasAt[layer], _widths[layer + 1]);

    private double SumOfLosses(Batch batch, int n)
    {
        var losses = batch.HostLoss.AsSpan(0, n);
        batch.Loss.View.SubView(0, n).CopyToCPU(ref losses[0], n);
        _device.Accelerator.Synchronize(); // read only once the copy has landed
        double sum = 0;
        foreach (float loss in losses) sum += loss;
        return sum;
    }

    /// <summary>Inputs (x / 255) and labels of <paramref name="ids"/> into device memory, the buffers grown to fit.</summary>
    private Batch Upload(ImageDataSet data, ReadOnlySpan<int> ids)
    {
        if (data.PixelsPerImage != _widths[0])
            throw new ArgumentException($"the MLP takes {_widths[0]} pixels per image; the data set has {data.PixelsPerImage}");
        if (_batch is null || _batch.Capacity < ids.Length)
        {
            _batch?.Dispose();
            _batch = new Batch(_device.Accelerator, Math.Max(ids.Length, _batch?.Capacity ?? 0), _widths);
        }
        int pixels = data.PixelsPerImage;
        // Staged in the batch's host arrays (allocated once with it, not per micro-batch), then copied over.
        var inputs = _batch.HostInputs.AsSpan(0, ids.Length * pixels);
        var labels = _batch.HostLabels.AsSpan(0, ids.Length);
        for (int i = 0; i < ids.Length; i++)
        {
            FlatMath.BytesToUnitFloats(data.Image(ids[i]), inputs.Slice(i * pixels, pixels));
            labels[i] = data.Labels[ids[i]];
        }
        _batch.Inputs.View.SubView(0, inputs.Length).CopyFromCPU(ref inputs[0], inputs.Length);
        _batch.Labels.View.SubView(0, labels.Length).CopyFromCPU(ref labels[0], labels.Length);
        _device.Accelerator.Synchronize(); // the host arrays are refilled by the next micro-batch: the copies end first
        return _batch;
    }

    public void Dispose()
    {
        _batch?.Dispose();
        _parameters.Dispose();
        _gradient.Dispose();
        if (_ownsDevice) _device.Dispose();
    }

    /// <summary>
    /// Memory for up to <see cref="Capacity"/> samples: on the device inputs, each layer's output, two gradient buffers as
    /// wide as the widest layer; on the host the staging arrays of what crosses per micro-batch.
    /// </summary>
    private sealed class Batch : IDisposable
    {
        public Batch(Accelerator accelerator, int capacity, int[] widths)
        {
            Capacity = capacity;
            Inputs = accelerator.Allocate1D<float>((long)capacity * widths[0]);
            Activations = widths.Skip(1).Select(w => accelerator.Allocate1D<float>((long)capacity * w)).ToArray();
            int widest = widths.Max();
            Delta = accelerator.Allocate1D<float>((long)capacity * widest);
            Spare = accelerator.Allocate1D<float>((long)capacity * widest);
            Labels = accelerator.Allocate1D<int>(capacity);
            Loss = accelerator.Allocate1D<float>(capacity);
            Correct = accelerator.Allocate1D<int>(capacity);
            HostInputs = new float[capacity * widths[0]];
            HostLabels = new int[capacity];
            HostLoss = new float[capacity];
            HostCorrect = new int[capacity];
        }

        public int Capacity { get; }
        public MemoryBuffer1D<float, Stride1D.Dense> Inputs { get; }
        public MemoryBuffer1D<float, Stride1D.Dense>[] Activations { get; }
        public MemoryBuffer1D<float, Stride1D.Dense> Delta { get; }
        public MemoryBuffer1D<float, Stride1D.Dense> Spare { get; }
        public MemoryBuffer1D<int, Stride1D.Dense> Labels { get; }
        public MemoryBuffer1D<float, Stride1D.Dense> Loss { get; }
        public MemoryBuffer1D<int, Stride1D.Dense> Correct { get; }
        /// <summary>Host-side staging of the same sizes: inputs and labels go up from them, losses and correct flags come down into them.</summary>
        public float[] HostInputs { get; }
        public int[] HostLabels { get; }
        public float[] HostLoss { get; }
        public int[] HostCorrect { get; }

        public void Dispose()
        {
            Inputs.Dispose();
            foreach (var a in Activations) a.Dispose();
            Delta.Dispose();
            Spare.Dispose();
            Labels.Dispose();
            Loss.Dispose();
            Correct.Dispose();
        }
    }
}
