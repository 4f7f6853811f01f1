using BatchCluster.Analysis.Logs;

namespace BatchCluster.Analysis.Summary;

/// <summary>
/// B_simple from a run's raw per-step estimates, as a ratio of window averages:
/// mean(tr Σ) / mean(|G|²) over consecutive windows of steps. The logged <c>BSimple</c> is an EMA
/// over about 20 steps, which is fine while |G|² is large but explodes whenever its average comes
/// near zero (late in training, at small shares); averaging over a quarter of an epoch or more,
/// as McCandlish et al. do, gives a readable curve and a stable final value.
/// </summary>
public static class NoiseScaleWindows
{
    public const int MinimumWindowSteps = 10;

    /// <summary>(epoch at the window's end, B_simple) per window of ¼ epoch (at least 10 steps); windows whose mean |G|² is not positive are left out.</summary>
    public static IReadOnlyList<(double Epoch, double BSimple)> Curve(RunLog log)
    {
        var points = new List<(double, double)>();
        if (log.Info is not { StepsPerEpoch: > 0 } info) return points;
        var steps = Estimates(log);
        int window = Math.Max(MinimumWindowSteps, info.StepsPerEpoch / 4);
        for (int start = 0; start + window <= steps.Count; start += window)
        {
            double b = Ratio(steps.GetRange(start, window));
            if (double.IsFinite(b)) points.Add(((double)(steps[start + window - 1].Step + 1) / info.StepsPerEpoch, b));
        }
        return points;
    }

    /// <summary>B_simple over the run's last epoch (or all its steps when shorter, at least 10 steps); NaN without estimates.</summary>
    public static double Final(RunLog log)
    {
        var steps = Estimates(log);
        int window = Math.Max(MinimumWindowSteps, log.Info?.StepsPerEpoch ?? 0);
        return steps.Count < MinimumWindowSteps ? double.NaN : Ratio(steps.GetRange(Math.Max(0, steps.Count - window), Math.Min(window, steps.Count)));
    }

    private static List<StepPoint> Estimates(RunLog log) =>
        log.Steps.Where(s => double.IsFinite(s.GradSquaredEstimate) && double.IsFinite(s.TraceSigmaEstimate)).OrderBy(s => s.Step).ToList();

    private static double Ratio(List<StepPoint> window)
    {
        double gradSquared = window.Average(s => s.GradSquaredEstimate);
        return gradSquared > 0 ? window.Average(s => s.TraceSigmaEstimate) / gradSquared : double.NaN;
    }
}
