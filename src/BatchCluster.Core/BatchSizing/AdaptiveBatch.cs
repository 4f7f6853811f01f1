namespace BatchCluster.Core.BatchSizing;

/// <summary>
/// <c>--global-batch auto</c>: the run chooses its global batch within [<paramref name="Min"/>, <paramref name="Max"/>] by goodput
/// (docs/adaptive-batch.md), reconsidering every <paramref name="AdaptEvery"/> steps (null: once per epoch at the current batch, and
/// not more often than every <see cref="MinimumDefaultWindow"/> steps).
/// </summary>
public sealed record AdaptiveBatch(int Min, int Max, long? AdaptEvery = null)
{
    public const long MinimumDefaultWindow = 100;

    /// <summary>Steps between two decisions at <paramref name="batch"/> on <paramref name="trainSamples"/> samples.</summary>
    public long WindowAt(int batch, int trainSamples) => AdaptEvery ?? Math.Max(MinimumDefaultWindow, trainSamples / Math.Max(1, batch));
}

/// <summary>One entry of a batch schedule (<c>--batch-schedule STEP:B,…</c>): from step <paramref name="Step"/> on, the global batch is <paramref name="Batch"/>.</summary>
public readonly record struct BatchChange(long Step, int Batch)
{
    public override string ToString() => $"{Step}:{Batch}";

    /// <summary>The batch of <paramref name="step"/> under <paramref name="schedule"/> (ascending by step), <paramref name="initial"/> before its first entry.</summary>
    public static int At(IReadOnlyList<BatchChange> schedule, long step, int initial)
    {
        int batch = initial;
        foreach (var change in schedule)
        {
            if (change.Step > step) break;
            batch = change.Batch;
        }
        return batch;
    }
}
