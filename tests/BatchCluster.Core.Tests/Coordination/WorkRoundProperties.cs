using BatchCluster.Core.Coordination;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace BatchCluster.Core.Tests.Coordination;

/// <summary>
/// The round's promises over random event sequences: results of any share (late, duplicated,
/// from the wrong worker, of the wrong size), failures, lost and new workers, and time passing
/// in any order. After every event each id is covered exactly once (by a live share or the
/// waiting list) and the round holds no more shares than its limit; once the faults stop and
/// workers answer, the round ends, and a completed round's results hold every id exactly once.
/// Workers may also be lost with their finished shares (a ring member lost before the commit),
/// also after the round completed.
/// </summary>
public class WorkRoundProperties
{
    [Property(MaxTest = 400)]
    public Property Every_id_is_committed_exactly_once_and_the_round_ends(PositiveInt workerCount, PositiveInt idCount, int[] script)
    {
        int workers = workerCount.Get % 5 + 1;
        var ids = Enumerable.Range(1000, idCount.Get % 300 + 1).Reverse().ToArray();
        var h = new RoundHarness(workers, ids);
        h.Start();
        var random = new Random(script.Length);
        foreach (int step in script.Take(80))
        {
            int kind = Math.Abs(step % 9), arg = Math.Abs(step / 9);
            var pick = h.Shares.Count == 0 ? null : h.Shares[arg % h.Shares.Count];
            switch (kind)
            {
                case 0 or 1 when pick is not null: h.Answer(pick); break; // also answers twice or after abandonment
                case 2 when pick is not null: h.Apply(h.Round.OnResult(pick.Worker + 1, pick.Slot, pick.Ids.Length, pick.Ids, h.Now)); break;
                case 3 when pick is not null: h.Apply(h.Round.OnResult(pick.Worker, pick.Slot, pick.Ids.Length + 1, pick.Ids, h.Now)); break;
                case 4 when pick is not null && arg % 4 == 0: h.Fail(pick); break;
                case 5 when h.Ready.Count > 0: h.Lose(h.Ready[arg % h.Ready.Count].Key, withResults: arg % 2 == 1); break;
                case 6: h.Join(1 + arg % 3); break;
                case 7: h.Advance(arg % 40); break;
                case 8: h.Apply(h.Round.OnResult(arg % 7, arg % 50 - 3, 1, [], h.Now)); break; // garbage
            }
            if (h.Round.State != RoundState.Failed && !h.Round.CoversIdsExactlyOnce()) return false.Label($"coverage broken after event {kind}");
            if (h.Round.SlotCount > h.Policy.MaxSlots) return false.Label("slot limit passed");
        }

        // The faults stop: a worker is around, workers answer what they hold, time passes.
        for (int round = 0; round < 200 && !h.Round.IsOver; round++)
        {
            if (h.Ready.Count == 0) h.Join();
            foreach (var share in h.Unanswered.ToList()) h.Answer(share);
            h.Advance(1000);
            h.Apply(h.Round.OnWorkersChanged(h.Now));
        }
        if (!h.Round.IsOver) return false.Label("the round did not end once the faults stopped");
        if (h.Round.State == RoundState.Failed)
            return h.Log.OfType<RoundFailed>().Any().Label("a failed round says why");
        var committed = h.Round.Completed.SelectMany(s => s.Result).Order().ToArray();
        return committed.SequenceEqual(ids.Order()).Label("the results cover every id exactly once");
    }

    /// <summary>Without failure reports (which may legitimately exhaust the workers), a round always completes.</summary>
    [Property(MaxTest = 300)]
    public Property Without_failures_a_round_always_completes(PositiveInt workerCount, int[] script)
    {
        var ids = Enumerable.Range(0, 97).ToArray();
        // A generous slot limit: this property is about completion; the limit has its own test.
        var h = new RoundHarness(workerCount.Get % 4 + 1, ids, maxSlots: 10_000);
        h.Start();
        foreach (int step in script.Take(60))
        {
            int kind = Math.Abs(step % 4), arg = Math.Abs(step / 4);
            if (kind == 0 && h.Shares.Count > 0) h.Answer(h.Shares[arg % h.Shares.Count]);
            else if (kind == 1 && h.Ready.Count > 0) h.Lose(h.Ready[arg % h.Ready.Count].Key, withResults: arg % 3 == 0);
            else if (kind == 2 && h.Ready.Count < 6) h.Join();
            else h.Advance(arg % 25);
        }
        for (int round = 0; round < 100 && !h.Round.IsOver; round++)
        {
            if (h.Ready.Count == 0) h.Join();
            foreach (var share in h.Unanswered.ToList()) h.Answer(share);
            h.Advance(1000);
        }
        return (h.Round.State == RoundState.Complete).Label($"state {h.Round.State}");
    }
}
