using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Gpu.Tests;

/// <summary>Training on the ILGPU backend (CPU accelerator) against the TorchSharp plain loop, and the GPU's tiled GEMM against the untiled one.</summary>
public sealed class IlgpuTrainingTests
{
    private static readonly DataSplits Data = SyntheticImages.Create(seed: 4, trainCount: 640, validationCount: 64, testCount: 64);

    private static float[] Train(TrainingConfig config, Func<ModelSpec, IModelReplica>? replicas)
    {
        TorchRuntime.Initialise(1);
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        return PlainTrainer.Run(config, Data, initial, new RunEvents(Logger.None, "ilgpu"), "", createReplica: replicas).FinalParameters;
    }

    /// <summary>
    /// 30 steps of SGD with momentum from the same initial parameters: each step's gradient differs by
    /// rounding (≤ 1e-5 relative, IlgpuMlpReplicaTests), and 30 steps at lr 0.05 keep that far below 1e-4.
    /// </summary>
    [Fact]
    public void Thirty_steps_on_the_ilgpu_backend_end_within_1e_4_of_the_plain_loop()
    {
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Mlp(32), GlobalBatch = 32, Steps = 30, EvalEvery = 0, TrainEvalSamples = 64, Seed = 9,
            LearningRate = 0.05, Optimizer = new Core.Optimizers.OptimizerSettings(Core.Optimizers.OptimizerKind.Momentum), Engine = Engine.Plain,
        };
        var torch = Train(config, null);
        var ilgpu = Train(config with { Device = "ilgpu-cpu" }, ComputeBackends.ReplicasFor("ilgpu-cpu"));
        double worst = torch.Zip(ilgpu, (a, b) => Math.Abs(a - (double)b)).Max();
        Assert.True(worst <= 1e-4, $"parameters differ by {worst:E2} after 30 steps");
        Assert.True(worst > 0 || torch.SequenceEqual(ilgpu)); // (equal bits would also do)
    }

    /// <summary>
    /// A GPU runs the tiled GEMM (shared memory, barriers); ILGPU's CPU accelerator runs it too, slowly, so
    /// a small share with 4 × 4 tiles checks it here: the same bits as the untiled kernel, which walks K in the same order.
    /// </summary>
    [Fact]
    public void The_tiled_gemm_gives_the_same_bits_as_the_untiled_one()
    {
        var spec = ModelSpec.Mlp(6, 5);
        var parameters = ModelFactory.InitialParameters(spec, seed: 3);
        var ids = Enumerable.Range(10, 9).ToArray(); // shapes that do not divide by 4
        using var device = IlgpuDevice.Open("ilgpu-cpu");
        float[] Gradient(int tile)
        {
            using var replica = new IlgpuMlpReplica(spec, device, tile: tile);
            replica.LoadParameters(parameters);
            var gradient = new float[replica.ParameterCount];
            replica.ComputeGradientSum(Data.Train, ids, 9, gradient);
            return gradient;
        }
        Assert.Equal(Gradient(0), Gradient(4));
    }

    [Fact]
    public void A_device_that_is_not_here_or_not_a_device_is_named_in_the_error()
    {
        Assert.Equal("--device must be cpu, ilgpu-cpu, cuda or cuda:N, not 'tpu'", Assert.Throws<ArgumentException>(() => ComputeBackends.Check("tpu", null)).Message);
        Assert.Equal("--device cuda:-1: the CUDA device number must be a whole number from 0, e.g. cuda:0",
            Assert.Throws<ArgumentException>(() => ComputeBackends.Check("cuda:-1", null)).Message);
        Assert.Equal("ilgpu-cpu", ComputeBackends.Check("ilgpu-cpu", ModelSpec.Mlp(8)));
        if (!File.Exists("/dev/nvidia0")) // on a machine with an NVIDIA GPU, cuda opens instead
            Assert.Contains("ILGPU found no CUDA device", Assert.Throws<ArgumentException>(() => ComputeBackends.Check("cuda", null)).Message);
    }
}
