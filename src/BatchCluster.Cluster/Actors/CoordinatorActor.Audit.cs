using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Coordination;
using BatchCluster.Core.Data;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// The evaluation cross-check (docs/robustness.md, "Answers checked: evaluations"): beside its part of an evaluation,
/// every available worker evaluates the same few audit rows; the verdict is <see cref="EvaluationAudit"/>'s (plain
/// code). A worker whose answer disagrees with the majority is quarantined and the evaluation is done again without
/// it; answers that disagree with no majority (two workers) are logged as disputed and the evaluation stands.
/// </summary>
public sealed partial class CoordinatorActor
{
    /// <summary>Chooses the audit rows; not part of any result, so not seeded from the run's seed alone.</summary>
    private readonly Random _auditRandom = new(Environment.TickCount);

    /// <summary>Sends the audit rows to every available worker (nothing with fewer than two: there is nobody to compare with).</summary>
    private void StartAudit(EvaluationInFlight evaluation, int count)
    {
        var auditors = _roster.All.Where(_roster.IsAvailable).ToList();
        if (auditors.Count < 2) return;
        var audit = new EvaluationAudit(EvaluationAudit.ChooseRows(count, auditors.Count, _auditRandom), auditors.Select(a => a.Key));
        evaluation.Audit = audit;
        evaluation.AuditRequestId = ++_nextRequestId;
        evaluation.AuditDeadlineMs = Now + _settings.StepDeadline.TotalMilliseconds;
        foreach (var auditor in auditors)
            _links.SendEvaluation(auditor.Handle, auditor.Key, _runId, evaluation.AuditRequestId, part: 0, evaluation.Split, audit.Rows,
                _session.ParameterVersion, _session.Parameters, _session.RunningStatistics);
    }

    private void OnAuditAnswer(EvaluationInFlight evaluation, int worker, TrainingProtocol.EvaluationDone done)
    {
        if (evaluation.Audit is not { } audit) return;
        // An answer about another number of rows, or an impossible count, cannot agree with anyone's.
        bool possible = done.Count == audit.Rows.Length && done.Correct >= 0 && done.Correct <= done.Count;
        audit.Record(worker, possible ? done.Correct : -1, possible ? done.LossSum : double.NaN);
        if (evaluation.Total is not null) FinishEvaluation(evaluation);
    }

    /// <summary>A worker left or was quarantined while the audit was out: its answer is not waited for.</summary>
    private void DropAuditor(EvaluationInFlight evaluation, int worker)
    {
        if (evaluation.Audit is not { } audit) return;
        audit.Drop(worker);
        if (evaluation.Total is not null && audit.Complete) FinishEvaluation(evaluation);
    }

    /// <summary>
    /// Once the round is complete: waits for the audit's answers (until its deadline), then acts on its verdict —
    /// quarantine the dissenters and evaluate again without them, or hand the sum on (logging a dispute).
    /// </summary>
    private void FinishEvaluation(EvaluationInFlight evaluation)
    {
        if (_evaluation != evaluation) return;
        if (evaluation.Audit is { Complete: false } && Now < evaluation.AuditDeadlineMs)
        {
            ArmDeadline(evaluation.AuditDeadlineMs);
            return;
        }
        CancelDeadline();
        _evaluation = null;
        var verdict = evaluation.Audit?.Decide();
        if (verdict is { Dissenters.Count: > 0 })
        {
            var others = verdict.Answers.Where(a => !verdict.Dissenters.Contains(a.Worker)).ToList();
            string majority = $"{string.Join(" / ", others.Select(a => a.Correct).Distinct())} correct";
            foreach (int key in verdict.Dissenters)
            {
                var answer = verdict.Answers.First(a => a.Worker == key);
                string said = answer.Correct < 0 ? "an impossible answer" : $"{answer.Correct} correct (loss sum {answer.LossSum:G6})";
                if (_roster.Find(key) is { } entry)
                    QuarantineWorker(entry, $"its {evaluation.Split.LogName()} evaluation of {evaluation.Audit!.Rows.Length} audit rows said {said} "
                                            + $"where {others.Count} other workers said {majority}", withResults: false);
            }
            Evaluate(evaluation.Split, evaluation.Final, evaluation.Then); // again, without them
            return;
        }
        if (verdict is { Disputed: true })
            _session.Events.EvaluationDisputed(_session.LastCommittedStep, evaluation.Split.LogName(), evaluation.Audit!.Rows.Length,
                verdict.Answers.Select(a => _roster.Find(a.Worker)?.Handle.Path.ToString() ?? $"#{a.Worker}").ToArray(),
                verdict.Answers.Select(a => a.Correct).ToArray());
        evaluation.Then(evaluation.Total!.Value);
    }
}
