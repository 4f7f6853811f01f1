using BatchCluster.Cluster.Local;
using BatchCluster.Core.Models;
using BatchCluster.Core.Training;
using Xunit.Abstractions;
using static BatchCluster.Cluster.Tests.TrainingFixtures;

namespace BatchCluster.Cluster.Tests.Local;

/// <summary>
/// --bn-batch in the local simulated cluster, where workers share memory (docs/batch-norm.md): batch norm over ghost batches of
/// 16 makes a step of cnn-bn the same on every layout — 2 workers with shares of 2 ghost batches each; and 3 workers (shares of
/// 2, 1 and 1 ghost batches) in micro-batches of 16, of which one dies at step 3, so its share is re-planned in whole ghost
/// batches over the other two. Each ends within 1e-4 of the plain loop with the same ghost batch (the bound of LocalClusterTrainingTests:
/// only float rounding differs — the order of the sums, and the conv kernels' blocking for another batch size), its running
/// statistics within 1e-5 relative (sums of 4 ghost batches' means and variances in another order, ~1e-7 relative in float32,
/// then 30 updates), and its validation and test results from those statistics equal to the plain loop's to a few samples.
/// The learning rate is 0.002: batch norm over 16 samples amplifies float rounding fast, and the running statistics follow the
/// parameters. Measured on these layouts: at lr 0.01, 3e-8 after 5 steps grew to 1.6e-4 after 30; at 0.005 the parameters end
/// 1.5e-5 and the running statistics 4.5e-5 apart; at 0.002 3.0e-8 and 1.2e-7 (and the thread count alone moves a run by 0.14
/// at lr 0.05 with momentum: docs/batch-norm.md). Without --bn-batch the 2-worker layout ends 4.9e-4 from the plain loop at
/// 0.005; ModelReplicaTests shows the mechanism on one step.
/// </summary>
public class GhostBatchNormTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(4);

    private static readonly TrainingConfig Config = new()
    {
        Model = ModelSpec.Cnn(batchNorm: true), GlobalBatch = 64, BnBatch = 16, Steps = 30, LearningRate = 0.002, Seed = 8, EvalEvery = 0,
        TrainEvalSamples = 0, ValidationSize = 1000, Threads = 1,
    };

    [Fact]
    public async Task Ghost_batch_norm_gives_the_plain_loops_parameters_and_running_statistics_on_every_layout()
    {
        // The first 2,000 test images: the test only compares evaluations of the same images across layouts, and a CNN's
        // pass over all 10,000 took most of the test's time (3 runs × ~10 s).
        var data = FashionMnistData with { Test = FashionMnistData.Test.Slice("test", 0, 2000) };
        var plain = RunPlain(Config, data);
        Assert.NotNull(plain.FinalRunningStatistics);
        var initial = RunningStatistics.Initial(Config.Model);
        Assert.True(MaxAbsDifference(initial, plain.FinalRunningStatistics!) > 1e-2, "the running statistics never moved");

        var layouts = new (string Name, TrainingConfig Config, LocalCluster.WorkerFactory? Workers)[]
        {
            ("2 workers", Config with { Workers = 2 }, null),
            ("3 workers, micro-batch 16, one dies at step 3", Config with { Workers = 3, MicroBatch = 16 }, FaultyWorker.Factory(2, WorkerFault.Die, atStep: 3)),
        };
        foreach (var (name, config, workers) in layouts)
        {
            var events = new EventCollector();
            var result = await RunLocalAsync(config, data, events: events.Run("ghost"), workers: workers).WaitAsync(RunTimeout);
            double parameters = MaxAbsDifference(plain.FinalParameters, result.FinalParameters);
            double running = MaxRelativeDifference(plain.FinalRunningStatistics!, result.FinalRunningStatistics!);
            output.WriteLine($"{name}: max |Δparam| {parameters:E2}, max |Δrunning|/max(1,|running|) {running:E2}, validation {result.Summary.ValidationAccuracy:P2} "
                             + $"(plain {plain.Summary.ValidationAccuracy:P2}), re-plans {events.OfType("StepReplanned").Count()}");
            Assert.True(parameters <= 1e-4, $"{name}: parameters differ by {parameters:E2}");
            Assert.True(running <= 1e-5, $"{name}: running statistics differ by {running:E2}");
            Assert.InRange(Math.Abs(result.Summary.ValidationAccuracy - plain.Summary.ValidationAccuracy), 0, 3.0 / 1000);
            Assert.InRange(Math.Abs(result.Summary.TestAccuracy - plain.Summary.TestAccuracy), 0, 3.0 / 2000);
            if (workers is not null) Assert.NotEmpty(events.OfType("StepReplanned"));
        }

    }

    /// <summary>Running variances are of order 1 to 10: their float32 rounding is relative.</summary>
    private static double MaxRelativeDifference(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
            worst = Math.Max(worst, Math.Abs(expected[i] - (double)actual[i]) / Math.Max(1, Math.Abs(expected[i])));
        return worst;
    }
}
