using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace BatchCluster.Core.Models;

/// <summary>
/// Multi-layer perceptron on flattened 28×28 images: 784 → hidden… → 10 with ReLU.
/// Flat parameter order (TorchSharp's parameters()): layer-1 weight [h1×784], layer-1 bias [h1],
/// …, last weight [10×h_last], last bias [10]; each tensor row-major.
/// </summary>
internal sealed class MlpNetwork : Module<Tensor, Tensor>
{
    private readonly ModuleList<Linear> layers = new();

    public MlpNetwork(int inputs, IReadOnlyList<int> hidden, int classes) : base("mlp")
    {
        int previous = inputs;
        foreach (int h in hidden)
        {
            layers.Add(Linear(previous, h));
            previous = h;
        }
        layers.Add(Linear(previous, classes));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        Tensor x = input.flatten(1);
        for (int i = 0; i < layers.Count; i++)
        {
            Tensor next = layers[i].call(x);
            if (i < layers.Count - 1) next = functional.relu(next);
            x = next;
        }
        return x;
    }
}

/// <summary>
/// Two conv blocks (3×3 conv, optional batch norm, ReLU, 2×2 max-pool: 1→32→64 channels) and two
/// dense layers (3136→128→10). Parameter order: conv1 weight, conv1 bias (or bn1 weight, bias),
/// conv2 …, fc1 weight, fc1 bias, fc2 weight, fc2 bias. With batch norm the convs have no bias
/// (the norm's shift replaces it); running statistics are buffers, not parameters.
/// </summary>
internal sealed class CnnNetwork : Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d? bn1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d? bn2;
    private readonly Linear fc1;
    private readonly Linear fc2;

    public CnnNetwork(int side, int classes, bool batchNorm) : base(batchNorm ? "cnn-bn" : "cnn")
    {
        int[] channels = ModelSpec.CnnChannels;
        conv1 = Conv2d(1, channels[0], kernel_size: 3, padding: 1, bias: !batchNorm);
        bn1 = batchNorm ? BatchNorm2d(channels[0]) : null;
        conv2 = Conv2d(channels[0], channels[1], kernel_size: 3, padding: 1, bias: !batchNorm);
        bn2 = batchNorm ? BatchNorm2d(channels[1]) : null;
        fc1 = Linear(channels[1] * (side / 4) * (side / 4), 128);
        fc2 = Linear(128, classes);
        RegisterComponents();
    }

    /// <summary>The batch-norm layers in forward order (empty without batch norm).</summary>
    internal IReadOnlyList<BatchNorm2d> Norms => bn1 is null ? [] : [bn1, bn2!];

    /// <summary>In training, normalise over ghost batches of a fixed size instead of the whole micro-batch (null: the micro-batch).</summary>
    internal GhostBatchNorm? Ghosts { get; set; }

    public override Tensor forward(Tensor input)
    {
        Tensor x = input.dim() == 2 ? input.view(-1, 1, 28, 28) : input;
        x = Block(x, conv1, bn1, 0);
        x = Block(x, conv2, bn2, 1);
        x = functional.relu(fc1.call(x.flatten(1)));
        return fc2.call(x);
    }

    private Tensor Block(Tensor x, Conv2d conv, BatchNorm2d? norm, int layer)
    {
        Tensor y = conv.call(x);
        if (norm is not null) y = Ghosts is { } ghosts && training ? ghosts.Normalize(y, norm, layer) : norm.call(y);
        return functional.max_pool2d(functional.relu(y), 2);
    }
}
