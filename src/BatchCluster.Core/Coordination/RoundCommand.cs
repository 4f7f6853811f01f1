namespace BatchCluster.Core.Coordination;

/// <summary>
/// What a <see cref="WorkRound{TResult}"/> asks its host to do after an event. The host (the
/// coordinator actor) turns these into messages, log events and timers; the round itself never
/// sends anything. Worker keys are the coordinator's own numbers (see <see cref="WorkerRoster{THandle}"/>).
/// </summary>
public abstract record RoundCommand;

/// <summary>Send <paramref name="Ids"/> to <paramref name="Worker"/> as share number <paramref name="Slot"/> of this round.</summary>
public sealed record SendWork(int Worker, int Slot, int[] Ids) : RoundCommand;

/// <summary>
/// The ids of <paramref name="FromWorker"/> (null: ids that were waiting for any worker) moved onto
/// <paramref name="ToWorkers"/> within the round; an empty target list means they now wait for a worker.
/// </summary>
public sealed record Replanned(int? FromWorker, string Reason, int[] MovedIds, int[] ToWorkers) : RoundCommand;

/// <summary>Shares of <paramref name="LateWorkers"/> passed their deadline; <paramref name="Replanned"/> says whether they moved.</summary>
public sealed record Stalled(int[] LateWorkers, bool Replanned) : RoundCommand;

/// <summary>A result or failure report that the round does not take, and why.</summary>
public sealed record ResultRefused(int Worker, int Slot, string Reason) : RoundCommand;

/// <summary>No worker can take <paramref name="WaitingIds"/> ids: the round waits until one becomes ready.</summary>
public sealed record WaitForWorkers(int WaitingIds) : RoundCommand;

/// <summary>The round cannot finish (every worker failed it, or it was re-planned past its slot limit).</summary>
public sealed record RoundFailed(string Reason) : RoundCommand;
