namespace BatchCluster.Core.Coordination;

/// <summary>
/// How patient a round is. A share is late when it has not come back <see cref="DeadlineMs"/> after
/// it was sent; each re-plan generation doubles the deadline of the shares it creates, and each
/// stall report doubles the wait before the next one, up to 2^<see cref="MaxBackoffExponent"/> ×
/// the deadline. Shares of generation <see cref="MaxGeneration"/> are no longer moved for being
/// late (only for a lost or failed worker). A round never holds more than <see cref="MaxSlots"/>
/// shares, so nothing grows without bound whatever the faults.
/// </summary>
public sealed record RoundPolicy(double DeadlineMs, int MaxSlots, int MaxGeneration = 4, int MaxBackoffExponent = 10)
{
    /// <summary>
    /// Deadline re-plans bench a worker each, so a round sees at most one per worker, each making
    /// at most one share per worker; losses and failures likewise. 4·(W+1)² + 16 is far above what
    /// faults of W workers can produce and still small.
    /// </summary>
    public static RoundPolicy For(TimeSpan deadline, int workers) =>
        new(deadline.TotalMilliseconds, 4 * (Math.Max(1, workers) + 1) * (Math.Max(1, workers) + 1) + 16);

    /// <summary>The wait granted at backoff level <paramref name="level"/> (0: the plain deadline).</summary>
    public double WaitMs(int level) => DeadlineMs * Math.Pow(2, Math.Clamp(level, 0, MaxBackoffExponent));
}
