using BatchCluster.Core.Coordination;

namespace BatchCluster.Core.Tests.Coordination;

public class WorkRoundTests
{
    private static int[] Ids(int n) => Enumerable.Range(0, n).ToArray();

    /// <summary>
    /// Under --bn-batch (docs/batch-norm.md) a round is planned and re-planned in whole ghost batches: every share, first plan or
    /// re-plan after a failure, a loss and a deadline, is made of whole runs of 4 ids that were 4 consecutive ids of the batch
    /// (ids here are their own positions), so each ghost batch stays intact on one worker.
    /// </summary>
    [Fact]
    public void With_a_granule_every_share_and_every_replan_is_whole_ghost_batches()
    {
        const int Ghost = 4;
        var h = new RoundHarness(3, Ids(40), granule: Ghost); // 10 ghost batches over capacities 1, 2, 3
        h.Start();
        Assert.Equal([8, 12, 20], h.Shares.Select(s => s.Ids.Length));
        h.Fail(h.Shares[2]);
        h.Lose(h.Shares[1].Worker);
        h.AddWorker(capacity: 2.5);
        h.Round.OnWorkersChanged(h.Now);
        h.Advance(1000);
        foreach (var share in h.Shares.Where(s => !s.Answered && h.IsReady(s.Worker)).ToList()) h.Answer(share);
        Assert.True(h.Shares.Count > 3, "the round re-planned");
        foreach (var share in h.Shares)
            for (int at = 0; at < share.Ids.Length; at += Ghost)
            {
                int first = share.Ids[at];
                Assert.Equal(0, first % Ghost);
                Assert.Equal(Enumerable.Range(first, Ghost), share.Ids.Skip(at).Take(Ghost));
            }
        Assert.True(h.Round.CoversIdsExactlyOnce());
        Assert.Throws<ArgumentException>(() => new RoundHarness(2, Ids(10), granule: Ghost));
    }

    [Fact]
    public void Shares_follow_capacity_and_the_round_completes_in_plan_order()
    {
        var h = new RoundHarness(3, Ids(12)); // capacities 1, 2, 3
        h.Start();
        Assert.Equal([2, 4, 6], h.Shares.Select(s => s.Ids.Length));
        foreach (var share in h.Shares.AsEnumerable().Reverse()) h.Answer(share);
        Assert.Equal(RoundState.Complete, h.Round.State);
        Assert.Equal(Ids(12), h.Round.Completed.SelectMany(s => s.Result));
        Assert.Equal([0, 1, 2], h.Round.Completed.Select(s => s.Slot));
        Assert.Null(h.Round.NextDeadlineMs);
    }

    /// <summary>
    /// The coordinator sums gradients as they arrive, in plan order: a result comes out only when
    /// every share before it in the plan is in or abandoned, and what came out is, in the end, the
    /// completed round's results in the same order.
    /// </summary>
    [Fact]
    public void Results_come_out_in_plan_order_as_they_arrive_past_abandoned_shares_and_equal_the_completed_ones()
    {
        var h = new RoundHarness(3, Ids(12)); // capacities 1, 2, 3
        h.Start();
        int cursor = 0;
        var yielded = new List<int[]>();
        void Drain()
        {
            while (h.Round.NextInPlanOrder(ref cursor) is { } result) yielded.Add(result);
        }
        h.Answer(h.Shares[2]);
        Drain();
        Assert.Empty(yielded); // shares 0 and 1 are still out
        h.Fail(h.Shares[0]); // abandoned: its ids go to new shares at the end of the plan
        Drain();
        Assert.Empty(yielded); // share 1 is still out
        h.Answer(h.Shares[1]);
        Drain();
        Assert.Equal([h.Shares[1].Ids, h.Shares[2].Ids], yielded);
        foreach (var share in h.Shares.Skip(3).Reverse().ToList())
        {
            h.Answer(share);
            Drain();
        }
        Assert.Equal(RoundState.Complete, h.Round.State);
        Assert.Equal(h.Round.Completed.Select(s => s.Result), yielded);
    }

    /// <summary>
    /// A ring member lost after the round completed but before its commit takes its finished shares
    /// with it: the round runs again, the lost ids go to the survivors (whose finished shares stay),
    /// and the completed round covers every id exactly once, without the lost worker.
    /// </summary>
    [Fact]
    public void A_worker_lost_with_its_results_reopens_a_complete_round_for_its_ids_only()
    {
        var h = new RoundHarness(3, Ids(12)); // capacities 1, 2, 3
        h.Start();
        foreach (var share in h.Shares.ToList()) h.Answer(share);
        Assert.Equal(RoundState.Complete, h.Round.State);

        h.Lose(2, withResults: true);
        Assert.Equal(RoundState.Running, h.Round.State);
        var moved = Assert.Single(h.Log.OfType<Replanned>());
        Assert.Equal(2, moved.FromWorker);
        Assert.Equal(h.Shares[2].Ids, moved.MovedIds);
        var again = h.Shares.Skip(3).ToList();
        Assert.Equal([0, 1], again.Select(s => s.Worker).Order());
        Assert.True(h.Round.CoversIdsExactlyOnce());
        foreach (var share in again) h.Answer(share);
        Assert.Equal(RoundState.Complete, h.Round.State);
        Assert.DoesNotContain(h.Round.Completed, s => s.Worker == 2);
        Assert.Equal(Ids(12), h.Round.Completed.SelectMany(s => s.Result).Order());

        h.Lose(1); // without its results: a complete round stays complete
        Assert.Equal(RoundState.Complete, h.Round.State);
    }

    [Fact]
    public void A_late_share_moves_onto_workers_that_already_answered_and_its_worker_is_benched()
    {
        var h = new RoundHarness(3, Ids(30), deadlineMs: 10);
        h.Start();
        h.Answer(h.Shares[0]);
        h.Answer(h.Shares[2]);
        h.Advance(10); // share 1 is late; workers 0 and 2 are idle
        var moved = Assert.Single(h.Log.OfType<Replanned>());
        Assert.Equal(1, moved.FromWorker);
        Assert.Equal(h.Shares[1].Ids, moved.MovedIds);
        Assert.Equal([0, 2], moved.ToWorkers.Order());
        Assert.True(Assert.Single(h.Log.OfType<Stalled>()).Replanned);
        var replacements = h.Shares.Skip(3).ToList();
        Assert.Equal(2, replacements.Count);

        h.Answer(h.Shares[1]); // the late result comes after all: refused
        Assert.Equal("the share was re-planned after a fault", Assert.Single(h.Log.OfType<ResultRefused>()).Reason);
        foreach (var share in replacements) h.Answer(share);
        Assert.Equal(RoundState.Complete, h.Round.State);
        Assert.Equal(Ids(30), h.Round.Completed.SelectMany(s => s.Result).Order());
        Assert.True(h.Round.CoversIdsExactlyOnce());
    }

    [Fact]
    public void With_every_worker_busy_a_late_round_waits_and_reports_with_doubling_waits()
    {
        var h = new RoundHarness(2, Ids(20), deadlineMs: 1);
        h.Start();
        var reports = new List<double>();
        while (h.Round.NextDeadlineMs < 100)
        {
            h.Now = h.Round.NextDeadlineMs!.Value;
            int before = h.Log.OfType<Stalled>().Count();
            h.Apply(h.Round.OnDeadline(h.Now));
            if (h.Log.OfType<Stalled>().Count() > before) reports.Add(h.Now);
        }
        Assert.Empty(h.Log.OfType<Replanned>());
        // 1, 3, 7, 15, 31, 63: each wait doubles (two shares, one report per deadline).
        Assert.Equal([1, 3, 7, 15, 31, 63], reports);
        Assert.Equal(2, h.Round.SlotCount);
    }

    [Fact]
    public void A_stalled_worker_among_busy_ones_moves_once_the_others_are_idle_at_a_later_deadline()
    {
        var h = new RoundHarness(3, Ids(30), deadlineMs: 1);
        h.Start();
        h.Advance(1); // everyone busy: a stall, no move
        Assert.Empty(h.Log.OfType<Replanned>());
        h.Answer(h.Shares[0]);
        h.Answer(h.Shares[2]);
        h.Advance(2); // the next report of worker 1's share: now workers 0 and 2 are idle
        Assert.Single(h.Log.OfType<Replanned>());
        foreach (var share in h.Shares.Skip(3).ToList()) h.Answer(share);
        Assert.Equal(RoundState.Complete, h.Round.State);
    }

    /// <summary>
    /// The livelock the old coordinator fell into (a deadline far below a share's compute time):
    /// simulated workers that each take 0.02 ms per sample, a 0.001 ms deadline, 4 workers × 512
    /// samples. The round must finish close to the compute time with no ping-pong.
    /// </summary>
    [Fact]
    public void A_deadline_far_below_the_compute_time_costs_no_replans()
    {
        var sim = new SimulatedWorkers(workers: 4, msPerSample: 0.02, deadlineMs: 0.001, ids: 2048);
        double finished = sim.Run();
        Assert.Equal(RoundState.Complete, sim.Round.State);
        Assert.Equal(0, sim.Round.Replans);
        Assert.Equal(4, sim.Round.SlotCount);
        Assert.InRange(finished, 10.24, 10.25); // 512 × 0.02 ms: the compute time itself
        // Doubling waits: about log2(10.24 / 0.001) ≈ 13 reports up to the backoff cap (2^10 × the
        // deadline), then one per 1.024 ms; each report names all four late workers at once.
        Assert.InRange(sim.StallReports, 1, 24);
    }

    /// <summary>One simulated worker is 10× slower: its share moves once onto the others and the round ends well before it would.</summary>
    [Fact]
    public void A_slow_worker_loses_its_share_once_and_the_round_ends_sooner()
    {
        var sim = new SimulatedWorkers(workers: 4, msPerSample: 0.02, deadlineMs: 12, ids: 2048, slowWorker: 3, slowFactor: 10);
        double finished = sim.Run();
        Assert.Equal(RoundState.Complete, sim.Round.State);
        Assert.Equal(1, sim.Round.Replans);
        Assert.True(finished < 30, $"finished at {finished} ms; the slow worker alone needs 102 ms");
        Assert.Equal(Ids(2048), sim.Round.Completed.SelectMany(s => s.Result).Order());
    }

    [Fact]
    public void Ids_of_the_last_lost_worker_wait_and_go_out_when_a_worker_is_ready()
    {
        var h = new RoundHarness(1, Ids(8));
        h.Start();
        h.Lose(0);
        Assert.Equal(RoundState.WaitingForWorkers, h.Round.State);
        Assert.Equal(8, Assert.Single(h.Log.OfType<WaitForWorkers>()).WaitingIds);
        Assert.Empty(Assert.Single(h.Log.OfType<Replanned>()).ToWorkers);
        Assert.True(h.Round.CoversIdsExactlyOnce());
        h.Join();
        Assert.Equal(RoundState.Running, h.Round.State);
        h.Answer(h.Shares[^1]);
        Assert.Equal(RoundState.Complete, h.Round.State);
    }

    [Fact]
    public void A_failure_moves_the_share_at_once_and_the_round_fails_when_every_worker_has_failed()
    {
        var h = new RoundHarness(2, Ids(10));
        h.Start();
        h.Fail(h.Shares[0], "out of memory");
        var moved = Assert.Single(h.Log.OfType<Replanned>());
        Assert.Equal("failed: out of memory", moved.Reason);
        Assert.Equal([1], moved.ToWorkers);
        h.Fail(h.Shares[1], "bad input shape");
        Assert.Equal(RoundState.Failed, h.Round.State);
        var failed = Assert.Single(h.Log.OfType<RoundFailed>());
        Assert.Contains("out of memory", failed.Reason);
        Assert.Contains("bad input shape", failed.Reason);
    }

    [Fact]
    public void A_result_of_the_wrong_size_counts_as_a_failure_of_its_worker()
    {
        var h = new RoundHarness(2, Ids(10));
        h.Start();
        h.Apply(h.Round.OnResult(0, 0, 4, [], h.Now));
        Assert.Equal("failed: returned 4 samples for a share of 3", Assert.Single(h.Log.OfType<Replanned>()).Reason);
        foreach (var share in h.Unanswered.Where(s => s.Worker == 1).ToList()) h.Answer(share);
        Assert.Equal(RoundState.Complete, h.Round.State);
        Assert.Equal(Ids(10), h.Round.Completed.SelectMany(s => s.Result).Order());
    }

    [Fact]
    public void Results_from_the_wrong_worker_twice_or_for_unknown_shares_are_refused()
    {
        var h = new RoundHarness(2, Ids(10));
        h.Start();
        h.Apply(h.Round.OnResult(1, 0, 5, [], h.Now));
        h.Answer(h.Shares[0]);
        h.Apply(h.Round.OnResult(0, 0, 5, [], h.Now));
        h.Apply(h.Round.OnResult(0, 7, 5, [], h.Now));
        Assert.Equal(
            ["sent by a worker the share was not given to", "the share already has a result", "unknown share 7"],
            h.Log.OfType<ResultRefused>().Select(r => r.Reason));
        Assert.Equal(RoundState.Running, h.Round.State);
    }

    [Fact]
    public void A_round_that_would_pass_its_slot_limit_fails_instead_of_growing()
    {
        var h = new RoundHarness(3, Ids(30), maxSlots: 5);
        h.Start();
        h.Lose(0); // 10 ids onto the 2 others: 5 shares in all
        Assert.Equal(RoundState.Running, h.Round.State);
        h.Lose(1);
        Assert.Equal(RoundState.Failed, h.Round.State);
        Assert.Contains("limit of 5 shares", Assert.Single(h.Log.OfType<RoundFailed>()).Reason);
        Assert.True(h.Round.SlotCount <= 5);
    }

    /// <summary>Workers that process their shares one after another, each taking size × msPerSample.</summary>
    private sealed class SimulatedWorkers
    {
        private readonly RoundHarness _h;
        private readonly double _msPerSample;
        private readonly int? _slowWorker;
        private readonly double _slowFactor;
        private readonly double[] _busyUntil;
        private readonly List<(double At, RoundHarness.Sent Share)> _pending = [];

        public SimulatedWorkers(int workers, double msPerSample, double deadlineMs, int ids, int? slowWorker = null, double slowFactor = 1)
        {
            _h = new RoundHarness(0, Ids(ids), deadlineMs, maxSlots: RoundPolicy.For(TimeSpan.FromMilliseconds(deadlineMs), workers).MaxSlots);
            for (int i = 0; i < workers; i++) _h.AddWorker();
            _msPerSample = msPerSample;
            _slowWorker = slowWorker;
            _slowFactor = slowFactor;
            _busyUntil = new double[workers];
        }

        public WorkRound<int[]> Round => _h.Round;
        public int StallReports => _h.Log.OfType<Stalled>().Count();

        public double Run()
        {
            _h.Start();
            Schedule();
            while (!_h.Round.IsOver)
            {
                double nextDone = _pending.Count == 0 ? double.MaxValue : _pending.Min(p => p.At);
                double nextDeadline = _h.Round.NextDeadlineMs ?? double.MaxValue;
                if (nextDone <= nextDeadline)
                {
                    var done = _pending.First(p => p.At == nextDone);
                    _pending.Remove(done);
                    _h.Now = nextDone;
                    _h.Answer(done.Share);
                }
                else
                {
                    _h.Now = nextDeadline;
                    _h.Apply(_h.Round.OnDeadline(_h.Now));
                }
                Schedule();
            }
            return _h.Now;
        }

        private void Schedule()
        {
            foreach (var share in _h.Shares.Where(s => !s.Answered && _pending.All(p => p.Share != s)))
            {
                double cost = share.Ids.Length * _msPerSample * (share.Worker == _slowWorker ? _slowFactor : 1);
                double start = Math.Max(_h.Now, _busyUntil[share.Worker]);
                _busyUntil[share.Worker] = start + cost;
                _pending.Add((start + cost, share));
            }
        }
    }
}
