namespace BatchCluster.Core.Coordination;

/// <summary>
/// Counts messages an actor ignores (from strangers, or not for it) so that a flood costs neither
/// memory nor disk: the first message of a sender in a window is logged, with how many were ignored
/// since its previous line; the rest only counted. At most <see cref="MaxSenders"/> senders are
/// remembered, all further ones under one name, so a flood from many addresses is bounded too.
/// Plain code: the host passes the time.
/// </summary>
public sealed class IgnoredMessages(double windowMs = 60_000)
{
    /// <summary>Senders remembered at once; past it, the rest count under <see cref="OtherSenders"/>.</summary>
    public const int MaxSenders = 256;
    public const string OtherSenders = "(other senders)";

    private sealed class Tally
    {
        public double WindowStartMs;
        public long Suppressed;
    }

    private readonly Dictionary<string, Tally> _senders = [];
    private double _forgotAtMs = double.NegativeInfinity;

    /// <summary>Messages ignored in all, logged or not.</summary>
    public long Total { get; private set; }

    /// <summary>One more message from <paramref name="sender"/> was ignored at <paramref name="nowMs"/>.</summary>
    /// <param name="suppressed">When a line is due: how many of this sender's were ignored without a line since its last one.</param>
    /// <returns>Whether the host logs a line now.</returns>
    public bool Ignore(string sender, double nowMs, out long suppressed, out string loggedAs)
    {
        Total++;
        suppressed = 0;
        loggedAs = sender;
        if (!_senders.TryGetValue(sender, out var tally))
        {
            if (_senders.Count >= MaxSenders && nowMs - _forgotAtMs >= windowMs) Forget(nowMs); // at most once a window: a flood of new names stays cheap
            if (_senders.Count >= MaxSenders)
            {
                loggedAs = OtherSenders;
                if (!_senders.TryGetValue(OtherSenders, out tally)) _senders[OtherSenders] = tally = new Tally { WindowStartMs = double.NegativeInfinity };
            }
            else _senders[sender] = tally = new Tally { WindowStartMs = double.NegativeInfinity };
        }
        if (nowMs - tally.WindowStartMs < windowMs)
        {
            tally.Suppressed++;
            return false;
        }
        suppressed = tally.Suppressed;
        tally.Suppressed = 0;
        tally.WindowStartMs = nowMs;
        return true;
    }

    /// <summary>Senders whose window has passed with nothing left to report are forgotten.</summary>
    private void Forget(double nowMs)
    {
        _forgotAtMs = nowMs;
        foreach (var (sender, tally) in _senders.ToList())
            if (nowMs - tally.WindowStartMs >= windowMs && tally.Suppressed == 0) _senders.Remove(sender);
    }

    /// <summary>How many senders are remembered (bounded by <see cref="MaxSenders"/> + 1).</summary>
    public int SendersRemembered => _senders.Count;
}
