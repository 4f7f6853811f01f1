using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using BatchCluster.Core.Training;

namespace BatchCluster.Core.Checkpoints;

/// <summary>
/// A hash of the settings that define a run's mathematics: data set and split, model, global
/// batch (fixed, scheduled or adaptive), learning-rate rule, optimizer, clipping, seed and shuffling. Not in it: run length
/// (a run may be extended), workers, threads, micro-batch (which change only float rounding,
/// except with batch norm without --bn-batch), paths and ids. The ghost batch (--bn-batch) is in it.
/// </summary>
public static class ConfigFingerprint
{
    public static string Of(TrainingConfig c)
    {
        var o = c.Optimizer;
        string text = string.Join('|',
            c.Dataset, c.ValidationSize, c.Model.Name, string.Join(',', c.Model.HiddenSizes), c.GlobalBatch,
            R(c.LearningRate), c.LrScaling, c.BaseBatch, c.WarmupSteps,
            o.Kind, R(o.Momentum), o.Nesterov, R(o.WeightDecay), R(o.Beta1), R(o.Beta2), R(o.Epsilon),
            R(c.ClipGradNorm), c.Seed, c.Shuffle);
        // Appended only when set, so a fixed batch's fingerprint (and its checkpoints) stay what they were.
        if (c.Adaptive is { } adaptive) text += $"|auto {adaptive.Min}:{adaptive.Max}:{adaptive.AdaptEvery}";
        if (c.BatchSchedule is { Count: > 0 } schedule) text += "|schedule " + string.Join(',', schedule);
        if (c.BnBatch is int ghost) text += $"|bn {ghost}";
        if (c.NeedsNoiseEstimate) text += $"|noise-window {R(c.EffectiveNoiseWindow)}";
        if (c.MaxLearningRate is double max && c.LrScaling == Schedules.LrScaling.AdaScale) text += $"|max-lr {R(max)}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }

    private static string R(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
