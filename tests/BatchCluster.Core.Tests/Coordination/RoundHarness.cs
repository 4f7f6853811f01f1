using BatchCluster.Core.Coordination;

namespace BatchCluster.Core.Tests.Coordination;

/// <summary>
/// Drives a <see cref="WorkRound{TResult}"/> the way the coordinator does, without actors: a pool
/// of workers, a clock, and a record of every share sent and whether its worker has answered.
/// Results are the share's ids themselves, so a commit can be checked id by id.
/// </summary>
public sealed class RoundHarness : IWorkerPool
{
    public sealed record Sent(int Worker, int Slot, int[] Ids)
    {
        public bool Answered { get; set; }
    }

    private readonly List<ReadyWorker> _ready = [];
    private int _nextKey;

    public RoundHarness(int workers, int[] ids, double deadlineMs = 10, int? maxSlots = null, int granule = 1)
    {
        for (int i = 0; i < workers; i++) AddWorker(capacity: 1 + i % 3);
        Ids = ids;
        Policy = maxSlots is int m ? new RoundPolicy(deadlineMs, m) : RoundPolicy.For(TimeSpan.FromMilliseconds(deadlineMs), workers);
        Round = new WorkRound<int[]>(ids, this, Policy, granule);
    }

    public IReadOnlyList<ReadyWorker> Ready => _ready;
    public int[] Ids { get; }
    public RoundPolicy Policy { get; }
    public WorkRound<int[]> Round { get; }
    public double Now { get; set; }
    public List<Sent> Shares { get; } = [];
    public List<RoundCommand> Log { get; } = [];

    public int AddWorker(double capacity = 1)
    {
        int key = _nextKey++;
        _ready.Add(new ReadyWorker(key, capacity));
        return key;
    }

    public bool IsReady(int worker) => _ready.Any(w => w.Key == worker);

    public void Apply(IReadOnlyList<RoundCommand> commands)
    {
        foreach (var c in commands)
        {
            Log.Add(c);
            if (c is SendWork send) Shares.Add(new Sent(send.Worker, send.Slot, send.Ids));
        }
    }

    public void Start() => Apply(Round.Start(Now));

    public void Answer(Sent share)
    {
        share.Answered = true;
        Apply(Round.OnResult(share.Worker, share.Slot, share.Ids.Length, share.Ids, Now));
    }

    public void Fail(Sent share, string reason = "boom")
    {
        share.Answered = true;
        Apply(Round.OnFailed(share.Worker, share.Slot, reason, Now));
    }

    /// <param name="withResults">Its finished shares are lost too (a ring member lost before the commit).</param>
    public void Lose(int worker, bool withResults = false)
    {
        _ready.RemoveAll(w => w.Key == worker);
        foreach (var s in Shares.Where(s => s.Worker == worker)) s.Answered = true;
        Apply(Round.OnWorkerLost(worker, "lost", Now, withResults));
    }

    public void Join(double capacity = 1)
    {
        AddWorker(capacity);
        Apply(Round.OnWorkersChanged(Now));
    }

    public void Advance(double ms)
    {
        Now += ms;
        Apply(Round.OnDeadline(Now));
    }

    public IEnumerable<Sent> Unanswered => Shares.Where(s => !s.Answered && IsReady(s.Worker));
}
