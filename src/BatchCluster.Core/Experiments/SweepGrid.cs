using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using BatchCluster.Core.Schedules;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Experiments;

/// <summary>How long each run of a sweep trains: epochs, a fixed number of samples, or a fixed number of steps.</summary>
public abstract record RunBudget
{
    public sealed record Epochs(double Count) : RunBudget;
    public sealed record Samples(long Count) : RunBudget;
    public sealed record Steps(long Count) : RunBudget;
}

/// <summary>One run of a sweep: its whole configuration and its run id.</summary>
public sealed record SweepPoint(string RunId, TrainingConfig Config);

/// <summary>
/// The grid of a sweep: every combination of global batch × workers × micro-batch × LR scaling on
/// top of a base configuration. Run ids are derived from the configuration (readable part + a hash
/// of everything else), so the same grid always names the same runs: that is what makes a sweep
/// resumable, and a changed base setting (say the learning rate) gives new ids instead of
/// skipping runs that were trained differently.
/// </summary>
public static class SweepGrid
{
    /// <param name="microBatches">null entries mean "the whole share".</param>
    /// <param name="evalsPerEpoch">Validations per epoch (each run's eval interval follows its steps per epoch); null keeps the base config's.</param>
    /// <param name="warmupEpochs">LR warm-up length in epochs (Goyal et al. warm up over epochs, so each batch size gets its own step count); null keeps the base config's steps.</param>
    /// <param name="adaptive">Also one run with --global-batch auto in this range per (scaling, workers, micro-batch): it starts at the
    /// base batch held in the range, its eval interval and warm-up are counted at that batch, and a sample budget becomes epochs
    /// (its steps are not known in advance).</param>
    public static IReadOnlyList<SweepPoint> Expand(TrainingConfig baseConfig, IReadOnlyList<int> globalBatches, IReadOnlyList<int> workers,
        IReadOnlyList<int?> microBatches, IReadOnlyList<LrScaling> scalings, RunBudget budget, int trainSamples, int? evalsPerEpoch,
        out IReadOnlyList<string> skipped, double? warmupEpochs = null, BatchSizing.AdaptiveBatch? adaptive = null)
    {
        // The batches of the grid: numbers, then the adaptive run (null) if asked for.
        var batches = globalBatches.Select(b => (int?)b).Concat(adaptive is null ? [] : [(int?)null]).ToList();
        int adaptiveStart = adaptive is null ? 0 : Math.Clamp(baseConfig.BaseBatch, adaptive.Min, Math.Min(adaptive.Max, trainSamples));
        var points = new List<SweepPoint>();
        var notes = new List<string>();
        foreach (var scaling in scalings)
        foreach (int w in workers)
        foreach (int? micro in microBatches)
        foreach (int? point in batches)
        {
            int batch = point ?? adaptiveStart;
            bool auto = point is null;
            if (batch > trainSamples)
            {
                notes.Add($"global batch {batch} is more than the {trainSamples} training samples");
                continue;
            }
            if (baseConfig.Engine == Engine.Actors && w == 1 && (auto || scaling == LrScaling.AdaScale))
            {
                notes.Add($"{(auto ? "the auto batch" : "AdaScale")} on 1 worker (one share per step gives no noise estimate)");
                continue;
            }
            if (baseConfig.Engine == Engine.Actors && w > (auto ? adaptive!.Min : batch))
            {
                notes.Add($"{w} workers at global batch {(auto ? $"auto {adaptive!.Min}:{adaptive.Max}" : batch)} (some workers would get no sample)");
                continue;
            }
            int stepsPerEpoch = trainSamples / batch;
            var config = baseConfig with
            {
                GlobalBatch = batch,
                Adaptive = auto ? adaptive : null,
                Workers = baseConfig.Engine == Engine.Plain ? 1 : w,
                MicroBatch = micro,
                LrScaling = scaling,
                MaxLearningRate = scaling == LrScaling.AdaScale ? baseConfig.MaxLearningRate : null, // only AdaScale has a gain to cap
                Epochs = budget switch
                {
                    RunBudget.Epochs e => e.Count,
                    RunBudget.Samples s when auto => (double)s.Count / trainSamples,
                    _ => null,
                },
                Steps = budget switch
                {
                    RunBudget.Samples s when !auto => (s.Count + batch - 1) / batch,
                    RunBudget.Steps s => s.Count,
                    _ => null,
                },
                EvalEvery = evalsPerEpoch is int k ? Math.Max(1, stepsPerEpoch / k) : baseConfig.EvalEvery,
                WarmupSteps = warmupEpochs is double we ? (int)Math.Round(we * stepsPerEpoch, MidpointRounding.AwayFromZero) : baseConfig.WarmupSteps,
                RunId = null,
            };
            string id = RunIdOf(config);
            // The plain engine has one worker whatever the list says: one run, not one per entry.
            if (points.Any(p => p.RunId == id)) continue;
            points.Add(new SweepPoint(id, config with { RunId = id }));
        }
        skipped = notes.Distinct().ToList();
        return points;
    }

    /// <summary>e.g. <c>mlp-b256-w4-share-linear-3f9a01c2</c>: the grid's coordinates, then a hash of the whole configuration.</summary>
    public static string RunIdOf(TrainingConfig config)
    {
        // Where output goes is not part of the run: the same run logged elsewhere keeps its id.
        var canonical = config with { RunId = null, RunsDirectory = "", TensorBoardDirectory = null };
        string hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(canonical))))[..8];
        string micro = config.MicroBatch is int m ? $"m{m}" : "share";
        return $"{config.Model.Name}-b{(config.Adaptive is null ? config.GlobalBatch : "auto")}-w{config.Workers}-{micro}-{config.LrScaling.ToString().ToLowerInvariant()}-{hash}";
    }
}
