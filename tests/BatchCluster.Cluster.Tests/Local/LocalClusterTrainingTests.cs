using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Local;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Training;
using Xunit.Abstractions;
using static BatchCluster.Cluster.Tests.TrainingFixtures;

namespace BatchCluster.Cluster.Tests.Local;

/// <summary>The promises of docs/architecture.md, checked on the real data with the real actors: exact averaging, determinism, learning.</summary>
public class LocalClusterTrainingTests(ITestOutputHelper output)
{
    private static TrainingConfig Sgd(int globalBatch, long? steps = null, double? epochs = null, int workers = 1, int? microBatch = null) => new()
    {
        Model = ModelSpec.Mlp(),
        GlobalBatch = globalBatch,
        Steps = steps,
        Epochs = epochs,
        Workers = workers,
        MicroBatch = microBatch,
        LearningRate = 0.1,
        Seed = 17,
        EvalEvery = 0,
    };

    /// <summary>
    /// Promise 1. Plain loop, 1 worker, 4 workers × micro-batch 16, and 3 workers (uneven
    /// shares 43/43/42) must reach the same parameters after 30 SGD steps at global batch 128.
    ///
    /// Why 1e-4 is honest for float32: the layouts differ only in the order in which per-sample
    /// gradients are summed (one 128-sample pass vs micro-batches of 16 vs shares). Each reordering
    /// changes a gradient entry by a few ulp of the sum (float32 ulp ≈ 6e-8 relative); scaled by
    /// lr 0.1 and accumulated over 30 steps this stays around 1e-7 for weights of size ~0.1
    /// (measured here: 3e-8). 1e-4 leaves room for other BLAS kernels or thread counts, yet
    /// is far below the effect of a wrong average: dropping, duplicating or mis-weighting one of
    /// 128 samples moves a step's gradient by ~1/128 of a per-sample gradient (~1e-3 of entries
    /// of size ~0.1), i.e. ~1e-4 per step in the parameters at lr 0.1, compounding over 30 steps.
    /// </summary>
    [Fact]
    public async Task Any_worker_layout_gives_the_plain_loops_parameters()
    {
        var data = FashionMnistData;
        var plain = RunPlain(Sgd(128, steps: 30), data);
        var oneWorker = await RunLocalAsync(Sgd(128, steps: 30, workers: 1), data);
        var fourWorkers = await RunLocalAsync(Sgd(128, steps: 30, workers: 4, microBatch: 16), data);
        var threeWorkers = await RunLocalAsync(Sgd(128, steps: 30, workers: 3), data);

        double d1 = MaxAbsDifference(plain.FinalParameters, oneWorker.FinalParameters);
        double d4 = MaxAbsDifference(plain.FinalParameters, fourWorkers.FinalParameters);
        double d3 = MaxAbsDifference(plain.FinalParameters, threeWorkers.FinalParameters);
        output.WriteLine($"max |Δparam| after 30 steps: 1 worker {d1:E2}, 4 workers × 16 {d4:E2}, 3 uneven workers {d3:E2}");
        Assert.True(d1 <= 1e-4, $"1 worker differs by {d1:E2}");
        Assert.True(d4 <= 1e-4, $"4 workers differ by {d4:E2}");
        Assert.True(d3 <= 1e-4, $"3 workers differ by {d3:E2}");
        // The comparison is not vacuous: training moved the parameters far more than the bound.
        var initial = ModelFactory.InitialParameters(ModelSpec.Mlp(), 17);
        Assert.True(MaxAbsDifference(initial, plain.FinalParameters) > 1e-2);
    }

    /// <summary>Promise 2: the same configuration and seed give bitwise the same parameters.</summary>
    [Fact]
    public async Task The_same_run_twice_gives_bitwise_identical_parameters()
    {
        var data = FashionMnistData;
        var config = Sgd(96, steps: 25, workers: 4, microBatch: 10) with { Optimizer = new(Core.Optimizers.OptimizerKind.Adam), LearningRate = 0.001 };
        var first = await RunLocalAsync(config, data);
        var second = await RunLocalAsync(config, data);
        Assert.Equal(first.FinalParameters, second.FinalParameters);
        Assert.Equal(first.Summary.ValidationLoss, second.Summary.ValidationLoss);
        var plainFirst = RunPlain(config, data);
        var plainSecond = RunPlain(config, data);
        Assert.Equal(plainFirst.FinalParameters, plainSecond.FinalParameters);
    }

    /// <summary>
    /// MLP, 4 workers, global batch 64, plain SGD lr 0.1, 2 epochs of the real Fashion-MNIST:
    /// validation accuracy ≥ 0.84 (a straightforward single-process loop reaches about 0.85).
    /// </summary>
    [Fact]
    public async Task Four_workers_learn_fashion_mnist()
    {
        var data = FashionMnistData;
        int steps = 0;
        var result = await RunLocalAsync(Sgd(64, epochs: 2, workers: 4), data, onStep: (_, _) => steps++);
        output.WriteLine($"validation accuracy {result.Summary.ValidationAccuracy:F4}, test accuracy {result.Summary.TestAccuracy:F4}, {result.Summary.SamplesPerSecond:F0} samples/s");
        Assert.Equal(2 * (55_000 / 64), result.Summary.Steps);
        Assert.Equal(result.Summary.Steps, steps);
        Assert.Equal(2.0, result.Summary.Epochs);
        Assert.True(result.Summary.ValidationAccuracy >= 0.84, $"validation accuracy {result.Summary.ValidationAccuracy:F4} < 0.84");
        Assert.True(result.Summary.TestAccuracy >= 0.80, $"test accuracy {result.Summary.TestAccuracy:F4} < 0.80");
    }
}

/// <summary>
/// A local cluster whose first worker computes on the ILGPU backend (ILGPU's CPU accelerator: the GPU's kernels)
/// and whose second runs TorchSharp: the same training as the plain loop, within the cross-layout bound.
/// </summary>
public sealed class MixedBackendClusterTests
{
    [Fact]
    public async Task An_ilgpu_worker_beside_a_torchsharp_worker_trains_as_the_plain_loop()
    {
        var data = SyntheticImages.Create(seed: 6, trainCount: 640, validationCount: 64, testCount: 64);
        var config = new TrainingConfig
        {
            Dataset = "synthetic", Model = ModelSpec.Mlp(32), GlobalBatch = 64, Workers = 2, Steps = 30, EvalEvery = 0, TrainEvalSamples = 64, Seed = 2,
            LearningRate = 0.05, Threads = 1,
        };
        var plain = TrainingFixtures.RunPlain(config, data);
        int ilgpuReplicas = 0;
        var ilgpu = Gpu.ComputeBackends.ReplicasFor("ilgpu-cpu")!;
        LocalCluster.WorkerFactory mixed = (index, coordinator, settings) => WorkerActor.Props(coordinator, index == 0
            ? settings with { Device = "ilgpu-cpu", CreateReplica = spec => { Interlocked.Increment(ref ilgpuReplicas); return ilgpu(spec); } }
            : settings);
        var sharesPerStep = new List<int>();
        var cluster = await TrainingFixtures.RunLocalAsync(config, data, workers: mixed, onStep: (record, _) => { lock (sharesPerStep) sharesPerStep.Add(record.Shares.Length); });
        double worst = TrainingFixtures.MaxAbsDifference(plain.FinalParameters, cluster.FinalParameters);
        Assert.True(worst <= 1e-4, $"the mixed cluster ends {worst:E2} from the plain loop");
        Assert.Equal(30, cluster.Summary.Steps);
        Assert.Equal(1, ilgpuReplicas);
        Assert.All(sharesPerStep, n => Assert.Equal(2, n)); // both workers computed every step
        Assert.Equal(plain.Summary.ValidationAccuracy, cluster.Summary.ValidationAccuracy, 2);
    }
}
