using BatchCluster.Analysis.Logs;

namespace BatchCluster.Analysis.Summary;

/// <summary>
/// One worker of a run, from its WorkerJoined events and the shares it computed (StepCompleted's
/// ShareWorkers, schema 7): what it is, how fast it measured itself, how much of each step it took
/// and how fast it computed it, and why it left. Shares and speeds are medians over the steps it
/// took part in; NaN (and 0 steps) for logs before schema 7, which do not say who computed a share.
/// </summary>
public sealed record WorkerSummary(
    string WorkerId, string Address, string Device, int Threads, string Transport, int Joins, double MeasuredSamplesPerSecond,
    int StepsWithShare, double MedianShare, double MedianShareSamplesPerSecond, IReadOnlyList<string> LeftBecause)
{
    public static IReadOnlyList<WorkerSummary> Of(RunLog log)
    {
        var shares = new Dictionary<string, List<(int Samples, double Speed)>>(StringComparer.Ordinal);
        foreach (var step in log.Steps)
        {
            if (step.ShareWorkers is not { } workers || step.Shares is not { } sizes || workers.Length != sizes.Length) continue;
            for (int i = 0; i < workers.Length; i++)
            {
                if (!shares.TryGetValue(workers[i], out var list)) shares[workers[i]] = list = [];
                double speed = step.ShareSamplesPerSecond is { } speeds && speeds.Length == workers.Length ? speeds[i] : double.NaN;
                list.Add((sizes[i], speed > 0 ? speed : double.NaN));
            }
        }
        var left = log.Marks.Where(m => m.Kind == "WorkerLeft").ToList();
        var ids = log.Workers.Select(w => w.WorkerId).Concat(shares.Keys).Distinct(StringComparer.Ordinal);
        return ids.Select(id =>
        {
            var joins = log.Workers.Where(w => w.WorkerId == id).ToList();
            var last = joins.LastOrDefault();
            var taken = shares.GetValueOrDefault(id) ?? [];
            return new WorkerSummary(
                id, last?.Address ?? "", last?.Device ?? "", last?.Threads ?? 0, last?.Transport ?? "", joins.Count,
                last?.MeasuredSamplesPerSecond ?? double.NaN, taken.Count,
                RunRow.Median(taken.Select(t => (double)t.Samples)), RunRow.Median(taken.Select(t => t.Speed)),
                left.Where(m => m.Detail.StartsWith(id + ":", StringComparison.Ordinal)).Select(m => m.Detail[(id.Length + 1)..].Trim()).ToList());
        }).ToList();
    }
}
