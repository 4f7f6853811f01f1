namespace BatchCluster.Core.Coordination;

/// <summary>What an <see cref="EvaluationAudit"/> concluded.</summary>
/// <param name="Dissenters">Workers whose answer on the audit rows disagrees with the majority: quarantined, and the evaluation redone without them.</param>
/// <param name="Disputed">The answers disagree and no majority can tell who is right (two workers): the evaluation stands, flagged.</param>
/// <param name="Answers">Each answering worker's (key, correct, loss sum) on the audit rows, for the log.</param>
public sealed record AuditVerdict(IReadOnlyList<int> Dissenters, bool Disputed, IReadOnlyList<(int Worker, long Correct, double LossSum)> Answers);

/// <summary>
/// The evaluation cross-check (docs/robustness.md, "Answers checked: evaluations"). A worker that answers evaluations
/// with "all correct" was counted as it said. Now a few rows of each evaluation — the audit rows, chosen at random and
/// about 2 % of the set in all — are evaluated by every available worker, as a request of their own beside its part of
/// the evaluation; honest workers agree on them (the same model at the same parameters: the same predictions, up to
/// a tie broken differently). A worker whose count of correct rows or loss differs from the median answer by more
/// than the tolerance, where a majority agrees, is a dissenter. Plain code: the host sends, collects and acts.
/// </summary>
public sealed class EvaluationAudit
{
    /// <summary>The share of the set the audit rows make up, over all auditors together.</summary>
    public const double Fraction = 0.02;
    /// <summary>The fewest audit rows (a liar's "all correct" differs from a model at 85 % by ~5 of 32).</summary>
    public const int FewestRows = 32;
    /// <summary>Relative difference of loss sums that is still the same answer (summation order and thread counts move it by ~1e-6).</summary>
    public const double LossTolerance = 1e-3;
    /// <summary>Share of the audit rows whose count of correct may differ from the median answer (at least one row): prediction ties broken differently.</summary>
    public const double CorrectTolerance = 0.02;

    private readonly Dictionary<int, (long Correct, double LossSum)> _answers = [];
    private readonly HashSet<int> _auditors;

    /// <param name="rows">The audit rows (<see cref="ChooseRows"/>).</param>
    /// <param name="auditors">The workers asked: every available worker.</param>
    public EvaluationAudit(int[] rows, IEnumerable<int> auditors)
    {
        Rows = rows;
        _auditors = auditors.ToHashSet();
    }

    public int[] Rows { get; }
    public bool Complete => _answers.Count == _auditors.Count;

    /// <summary>
    /// Audit rows for a set of <paramref name="count"/> rows evaluated by <paramref name="workers"/> workers: about
    /// <see cref="Fraction"/> of the set over all of them together (each evaluates them all), at least
    /// <see cref="FewestRows"/> (or the whole set when smaller), distinct, in ascending order.
    /// </summary>
    public static int[] ChooseRows(int count, int workers, Random random)
    {
        if (count <= 0 || workers <= 0) return [];
        int size = Math.Min(count, Math.Max(FewestRows, (int)Math.Ceiling(Fraction * count / workers)));
        var chosen = new HashSet<int>();
        while (chosen.Count < size) chosen.Add(random.Next(count));
        var rows = chosen.ToArray();
        Array.Sort(rows);
        return rows;
    }

    /// <summary>An auditor's answer; answers from others, or a second from the same worker, are ignored.</summary>
    /// <returns>Whether it was taken.</returns>
    public bool Record(int worker, long correct, double lossSum)
    {
        if (!_auditors.Contains(worker) || _answers.ContainsKey(worker)) return false;
        _answers[worker] = (correct, lossSum);
        return true;
    }

    /// <summary>Forgets an auditor that left or was quarantined meanwhile: its answer is not waited for.</summary>
    public void Drop(int worker)
    {
        _auditors.Remove(worker);
        _answers.Remove(worker);
    }

    /// <summary>
    /// The verdict on the answers so far (all of them, or what came before the deadline). A count of correct rows may
    /// differ from the median by max(1, 2 % of the rows) — a prediction tie broken differently —, a loss sum by
    /// <see cref="LossTolerance"/> of the median's magnitude. Dissenters must be a minority; otherwise (two workers that
    /// disagree) the answers are disputed.
    /// </summary>
    public AuditVerdict Decide()
    {
        var answers = _answers.Select(a => (Worker: a.Key, a.Value.Correct, a.Value.LossSum)).OrderBy(a => a.Worker).ToList();
        if (answers.Count < 2) return new AuditVerdict([], false, answers);
        // Medians of the finite answers (an impossible answer's NaN loss does not move them).
        double medianCorrect = Numerics.Statistics.Median(answers.Select(a => (double)a.Correct));
        double medianLoss = Numerics.Statistics.Median(answers.Select(a => a.LossSum));
        double correctTolerance = Math.Max(1, Math.Ceiling(CorrectTolerance * Rows.Length));
        double lossTolerance = LossTolerance * Math.Max(Math.Abs(medianLoss), 1e-9);
        var dissenters = answers
            .Where(a => Math.Abs(a.Correct - medianCorrect) > correctTolerance || !(Math.Abs(a.LossSum - medianLoss) <= lossTolerance))
            .Select(a => a.Worker).ToList();
        if (dissenters.Count == 0) return new AuditVerdict([], false, answers);
        return 2 * dissenters.Count < answers.Count ? new AuditVerdict(dissenters, false, answers) : new AuditVerdict([], true, answers);
    }
}
