using BatchCluster.Cluster.Local;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Cluster.Tests;

/// <summary>Shared set-up: the real Fashion-MNIST (loaded once) and helpers to run each engine.</summary>
public static class TrainingFixtures
{
    private static readonly Lazy<DataSplits> RealData = new(() => FashionMnist.Load(FashionMnist.DefaultDirectory));

    /// <summary>Fashion-MNIST as Debian installs it; scripts/test.sh installs the package. Never replaced by synthetic data.</summary>
    public static DataSplits FashionMnistData => RealData.Value;

    public static RunEvents SilentEvents(string runId = "test") => new(Logger.None, runId);

    public static RunResult RunPlain(TrainingConfig config, DataSplits data, int threads = 1, Action<StepRecord, TrainingSession>? onStep = null)
    {
        TorchRuntime.Initialise(threads);
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        return PlainTrainer.Run(config with { Engine = Engine.Plain }, data, initial, SilentEvents(), "", onStep);
    }

    public static Task<RunResult> RunLocalAsync(TrainingConfig config, DataSplits data, int threads = 1,
        Action<StepRecord, TrainingSession>? onStep = null, RunEvents? events = null, LocalCluster.WorkerFactory? workers = null)
    {
        TorchRuntime.Initialise(threads);
        var initial = ModelFactory.InitialParameters(config.Model, config.Seed);
        return LocalCluster.RunAsync(config with { Engine = Engine.Actors }, data, initial, events ?? SilentEvents(), "", onStep, workers: workers);
    }

    public static double MaxAbsDifference(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - (double)b[i]));
        return worst;
    }
}
