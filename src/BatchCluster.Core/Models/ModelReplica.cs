using System.Diagnostics;
using System.Runtime.InteropServices;
using BatchCluster.Core.Data;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Planning;
using TorchSharp;
using static TorchSharp.torch;

namespace BatchCluster.Core.Models;

/// <summary>
/// One worker's copy of the model: loads a flat parameter buffer, computes the gradient SUM of a
/// share micro-batch by micro-batch (gradients accumulate in TorchSharp's .grad between
/// micro-batches), and evaluates. Not thread-safe: one replica belongs to one thread (TorchSharp's
/// dispose scopes are thread-static).
///
/// Inputs are pixels scaled to [0, 1] (x / 255), nothing else. With batch norm, training normalises
/// over each micro-batch (results then depend on the micro-batch and the layout), or over ghost
/// batches of a declared size after <see cref="UseGhostBatches"/> (they do not: docs/batch-norm.md).
/// </summary>
public sealed class ModelReplica : IModelReplica
{
    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly List<TorchSharp.Modules.Parameter> _parameters;

    public ModelReplica(ModelSpec spec)
    {
        Spec = spec;
        _model = ModelFactory.Create(spec);
        _model.train();
        _parameters = _model.parameters().ToList();
        Layout = ParameterLayout.Of(_model);
    }

    private GhostBatchNorm? _ghosts;

    public ModelSpec Spec { get; }
    public ParameterLayout Layout { get; }
    public int ParameterCount => Layout.TotalCount;
    public string Device => "cpu";

    public void LoadParameters(ReadOnlySpan<float> flat) => ParameterLayout.CopyIn(_model, flat);

    public void UseGhostBatches(int size)
    {
        if (_model is not CnnNetwork { Norms.Count: > 0 } network)
            throw new InvalidOperationException($"--bn-batch needs a model with batch norm; {Spec} has none");
        _ghosts?.Dispose();
        _ghosts = new GhostBatchNorm(size, RunningStatistics.Layers(Spec));
        network.Ghosts = _ghosts;
    }

    public void LoadRunningStatistics(ReadOnlySpan<float> values)
    {
        if (values.Length != RunningStatistics.Length(Spec))
            throw new ArgumentException($"{values.Length} running statistics for a model with {RunningStatistics.Length(Spec)}");
        if (values.Length == 0) return;
        var norms = ((CnnNetwork)_model).Norms;
        var layers = RunningStatistics.Layers(Spec);
        for (int l = 0; l < layers.Count; l++)
        {
            var (at, channels) = layers[l];
            values.Slice(at, channels).CopyTo(ParameterLayout.FloatsOf(norms[l].running_mean!));
            values.Slice(at + channels, channels).CopyTo(ParameterLayout.FloatsOf(norms[l].running_var!));
        }
    }

    public void CopyParametersTo(Span<float> flat) => ParameterLayout.CopyOut(_model, flat);

    /// <summary>
    /// Σ over the share's samples of ∇ loss(sample), written into <paramref name="gradientSum"/>,
    /// processing at most <paramref name="microBatch"/> samples per forward/backward pass.
    /// </summary>
    public ShareGradient ComputeGradientSum(ImageDataSet data, ReadOnlySpan<int> sampleIds, int microBatch, float[] gradientSum)
    {
        if (gradientSum.Length != ParameterCount)
            throw new ArgumentException($"gradient buffer holds {gradientSum.Length} values, the model has {ParameterCount}");
        if (_ghosts is { } ghosts)
        {
            if (sampleIds.Length % ghosts.Size != 0 || microBatch % ghosts.Size != 0)
                throw new ArgumentException($"a share of {sampleIds.Length} samples in micro-batches of {microBatch} is not made of whole ghost batches of {ghosts.Size}");
            ghosts.Reset();
        }
        var clock = Stopwatch.StartNew();
        _model.zero_grad();
        double lossSum = 0;
        foreach (Range range in MicroBatches.Of(sampleIds.Length, microBatch))
        {
            using var scope = NewDisposeScope();
            var ids = sampleIds[range];
            Tensor inputs = Inputs(data, ids);
            Tensor labels = Labels(data, ids);
            Tensor loss = nn.functional.cross_entropy(_model.call(inputs), labels, reduction: nn.Reduction.Sum);
            loss.backward();
            lossSum += loss.item<float>();
        }
        double squaredNorm = CopyGradientsTo(gradientSum);
        return new ShareGradient(gradientSum, sampleIds.Length, lossSum, squaredNorm, clock.Elapsed.TotalMilliseconds)
        {
            BatchNormSums = _ghosts is { } used ? Array.ConvertAll(used.Sums, v => (float)v) : null, // a fresh array: the result owns it
        };
    }

    /// <summary>Loss sum and correct count over the given rows in eval mode (sums: any split of the rows adds up exactly).</summary>
    /// <remarks>256 rows per pass by default: on this machine a CNN's evaluation of 15,000 images took 45–49 s at 1,000 rows
    /// per pass (its activations are ~100 MB a layer) and 18–20 s at 256; the MLP's is the same at either.</remarks>
    public EvaluationResult Evaluate(ImageDataSet data, ReadOnlySpan<int> rows, int batchSize = 256)
    {
        _model.eval();
        try
        {
            var result = EvaluationResult.Empty;
            using var noGrad = no_grad();
            for (int offset = 0; offset < rows.Length; offset += batchSize)
            {
                using var scope = NewDisposeScope();
                var ids = rows.Slice(offset, Math.Min(batchSize, rows.Length - offset));
                Tensor logits = _model.call(Inputs(data, ids));
                Tensor labels = Labels(data, ids);
                double loss = nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
                long correct = logits.argmax(1).eq(labels).sum().item<long>();
                result = result.Add(new EvaluationResult(loss, correct, ids.Length));
            }
            return result;
        }
        finally
        {
            _model.train();
        }
    }

    /// <summary>
    /// Copies the gradients into <paramref name="flat"/> and returns their squared norm, taken block
    /// by block as each block is copied (while it is in the L1 cache) instead of in a second pass
    /// over the whole buffer; per parameter tensor, its sum in FlatMath.SquaredNorm's order.
    /// </summary>
    private double CopyGradientsTo(Span<float> flat)
    {
        const int Block = 2048; // 8 KiB: a multiple of any vector width
        int offset = 0;
        double squaredNorm = 0;
        foreach (var p in _parameters)
        {
            int count = (int)p.numel();
            var target = flat.Slice(offset, count);
            offset += count;
            using Tensor? grad = p.grad;
            if (grad is null)
            {
                target.Clear(); // a parameter the loss does not touch
                continue;
            }
            var source = ParameterLayout.FloatsOf(grad);
            var norm = new FlatMath.SquaredNormSum();
            int whole = count - count % FlatMath.Width;
            for (int start = 0; start < count; start += Block)
            {
                int length = Math.Min(Block, count - start);
                source.Slice(start, length).CopyTo(target.Slice(start, length));
                norm.AddWholeVectors(target.Slice(start, Math.Min(length, whole - start)));
            }
            squaredNorm += norm.Total(target.Slice(whole));
        }
        return squaredNorm;
    }

    private static Tensor Inputs(ImageDataSet data, ReadOnlySpan<int> ids)
    {
        int pixels = data.PixelsPerImage;
        Tensor inputs = empty(ids.Length, 1, data.Height, data.Width, dtype: ScalarType.Float32);
        Span<float> values = ParameterLayout.FloatsOf(inputs);
        for (int i = 0; i < ids.Length; i++)
            FlatMath.BytesToUnitFloats(data.Image(ids[i]), values.Slice(i * pixels, pixels));
        return inputs;
    }

    private static Tensor Labels(ImageDataSet data, ReadOnlySpan<int> ids)
    {
        Tensor labels = empty(ids.Length, dtype: ScalarType.Int64);
        Span<long> values = MemoryMarshal.Cast<byte, long>(labels.bytes);
        for (int i = 0; i < ids.Length; i++) values[i] = data.Labels[ids[i]];
        return labels;
    }

    public void Dispose()
    {
        _ghosts?.Dispose();
        _model.Dispose();
    }
}
