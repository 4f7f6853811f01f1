using Akka.Actor;
using Akka.Event;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Coordination;
using BatchCluster.Core.Data;
using BatchCluster.Core.Diagnostics;
using BatchCluster.Core.Gradients;
using BatchCluster.Core.Models;
using BatchCluster.Core.Numerics;
using BatchCluster.Core.Sampling;
using BatchCluster.Core.Training;
using ClusterMembership = Akka.Cluster.ClusterEvent;

namespace BatchCluster.Cluster.Actors;

/// <summary>
/// The thin shell around a run: it keeps the roster of workers, turns each step and each
/// evaluation into a <see cref="WorkRound{TResult}"/> (Core: the exactly-once, re-planning state
/// machine) and carries out the round's commands as messages, log events and one deadline timer.
/// All maths and state live in the <see cref="TrainingSession"/>. Its behaviours are the run's
/// phases (docs/architecture.md shows the diagram):
/// <list type="bullet">
/// <item><b>WaitingForWorkers</b> — before the first step, until <c>StartWorkers</c> are ready.</item>
/// <item><b>Stepping</b> — a step round is out; its results commit one update.</item>
/// <item><b>Evaluating</b> — the training subset and validation after a step that calls for them.</item>
/// <item><b>Paused</b> — fewer than <c>MinWorkers</c> at a step boundary, or a round whose ids have no worker.</item>
/// <item><b>Finishing</b> — the final evaluations (training subset, validation, test), then the summary.</item>
/// </list>
/// In every behaviour it admits workers, loses them (death watch, cluster membership, a worker
/// leaving), and takes <see cref="Interrupt"/>. It never restarts: an exception propagates to
/// <see cref="RunSupervisor"/>, which decides (promise 8).
/// </summary>
public sealed partial class CoordinatorActor : ReceiveActor, IWithTimers
{
    public const string DispatcherId = "batchcluster.coordinator-dispatcher";
    public const string RunWatchName = "run-watch";
    private const string DeadlineTimer = "round-deadline";

    /// <summary>From the host on SIGTERM/SIGINT: checkpoint (when on), log RunInterrupted, end the run.</summary>
    public sealed record Interrupt(string Reason);

    private sealed class DeadlinePassed
    {
        public static readonly DeadlinePassed Instance = new();
    }

    private sealed class StepInFlight(GlobalBatch batch, WorkRound<TrainingProtocol.ShareComputed> round, double startedAtMs)
    {
        public GlobalBatch Batch { get; } = batch;
        public WorkRound<TrainingProtocol.ShareComputed> Round { get; } = round;
        public double StartedAtMs { get; } = startedAtMs;
        /// <summary>Under --reduce ring, the reduction in flight once every share is computed (null before, and after an abandoned one).</summary>
        public RingStep? Ring { get; set; }
        /// <summary>Ring reductions started for this step (the next one's generation).</summary>
        public int Generations { get; set; }
        /// <summary>Reductions of this step that failed or missed their deadline, in a row.</summary>
        public int FailedReductions { get; set; }
        /// <summary>A failed reduction waits for its back-off before the ring is re-formed.</summary>
        public bool RetryPending { get; set; }
        /// <summary>The ring planned when the step started: each member's part, sent with its first share (then removed here).</summary>
        public List<(int Worker, TrainingProtocol.ReduceShares Part)>? Plans { get; set; }
        /// <summary>Star: where the running sum of gradients stands in the plan order (WorkRound.NextInPlanOrder).</summary>
        public int FoldCursor;
        /// <summary>Star: how many results the running sum holds.</summary>
        public int Folded;
        /// <summary>Star: non-finite shares of this step were rejected once (their workers quarantined); a second time the step is skipped.</summary>
        public bool SharesRejected => Blamed.Count > 0;
        /// <summary>Star: the workers quarantined for this step's non-finite shares (pardoned if the recomputation is non-finite too).</summary>
        public List<int> Blamed { get; } = [];
        /// <summary>Star: the workers quarantined for this step's outlier shares; once any are, outliers in the recomputation
        /// are the data's, not a worker's (they are pardoned).</summary>
        public List<int> OutliersBlamed { get; } = [];
    }

    private sealed class EvaluationInFlight(DataSplit split, int requestId, WorkRound<TrainingProtocol.EvaluationDone> round,
        Action<EvaluationResult> then, bool final)
    {
        public DataSplit Split { get; } = split;
        public int RequestId { get; } = requestId;
        public WorkRound<TrainingProtocol.EvaluationDone> Round { get; } = round;
        public Action<EvaluationResult> Then { get; } = then;
        public bool Final { get; } = final;
        /// <summary>The cross-check of this evaluation (null with fewer than two available workers): docs/robustness.md.</summary>
        public EvaluationAudit? Audit { get; set; }
        public int AuditRequestId { get; set; } = -1;
        public double AuditDeadlineMs { get; set; }
        /// <summary>The round's sum once it is complete; handed on when the audit is decided too.</summary>
        public EvaluationResult? Total { get; set; }
    }

    private readonly TrainingSession _session;
    private readonly CoordinatorSettings _settings;
    private readonly string _runId;
    private readonly string _logPath;
    private readonly TaskCompletionSource<RunResult> _completion;
    private readonly Action<StepRecord, TrainingSession>? _onStep;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly CoordinatorLinks _links;
    private readonly WorkerRoster<IActorRef> _roster;
    /// <summary>Workers on nodes the failure detector lost, kept so they can be taken back when the node is reachable again.</summary>
    private readonly Dictionary<Address, List<(IActorRef Worker, WorkerDescription Description)>> _unreachable = [];
    private readonly HashSet<string> _workersSeen = [];
    /// <summary>Messages from strangers, counted and logged at most once a minute per sender (a flood costs neither memory nor disk).</summary>
    private readonly IgnoredMessages _ignored = new();
    /// <summary><see cref="BlameWorkers"/> as the commit's delegate, made once.</summary>
    private readonly Func<int[], bool> _blameWorkers;
    /// <summary>Workers whose false speed claim was logged (once each).</summary>
    private readonly HashSet<int> _claimsIgnored = [];
    private readonly string _selfAddress = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString();

    private StepInFlight? _step;
    private EvaluationInFlight? _evaluation;
    private int _nextRequestId;
    private double? _armedDeadlineMs;
    /// <summary>This process's managed allocation per commit (in one process: its workers' too).</summary>
    private readonly AllocationMeter _allocation = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(TrainingSession session, CoordinatorSettings settings, string logPath,
        TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep) =>
        Akka.Actor.Props.Create(() => new CoordinatorActor(session, settings, logPath, completion, onStep)).WithDispatcher(DispatcherId);

    public CoordinatorActor(TrainingSession session, CoordinatorSettings settings, string logPath,
        TaskCompletionSource<RunResult> completion, Action<StepRecord, TrainingSession>? onStep)
    {
        _session = session;
        _settings = settings;
        _runId = session.Events.RunId;
        _logPath = logPath;
        _completion = completion;
        _onStep = onStep;
        _quarantine = new WorkerQuarantine(session.Config.Quarantine);
        _roster = new WorkerRoster<IActorRef>(session.Config.Split, _quarantine);
        _blameWorkers = BlameWorkers;
        var address = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress;
        _links = new CoordinatorLinks(new CoordinatorLinkSettings(_runId, session.Parameters.Length, session.Config.TransferPrecision,
            settings.UseDataPlane, settings.DataPort, address.Host ?? "127.0.0.1", settings.Tls, Ring), Self, _log);
        WaitingForWorkers();
    }

    protected override void PreStart()
    {
        if (!_settings.WatchClusterMembership) return;
        Akka.Cluster.Cluster.Get(Context.System).Subscribe(Self, ClusterMembership.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterMembership.UnreachableMember), typeof(ClusterMembership.ReachableMember), typeof(ClusterMembership.MemberRemoved));
        Context.System.EventStream.Subscribe(Self, typeof(Akka.Remote.DisassociatedEvent));
        Context.System.EventStream.Subscribe(Self, typeof(Nodes.UnreachableWorkerDowning.WorkerNodeDowned));
    }

    protected override void PostStop()
    {
        _step?.Ring?.Abort();
        if (_settings.WatchClusterMembership)
        {
            Akka.Cluster.Cluster.Get(Context.System).Unsubscribe(Self);
            Context.System.EventStream.Unsubscribe(Self, typeof(Akka.Remote.DisassociatedEvent));
            Context.System.EventStream.Unsubscribe(Self, typeof(Nodes.UnreachableWorkerDowning.WorkerNodeDowned));
        }
        _links.Dispose();
    }

    private double Now => _session.NowMs;

    // ---- behaviours ----

    /// <summary>The current behaviour's name; switching to the one already active is free (a step does not rebuild its handlers).</summary>
    private string _behaviour = "";

    private void Enter(string behaviour, Action handlers)
    {
        if (behaviour == _behaviour) return;
        _behaviour = behaviour;
        Become(handlers);
    }

    private void WaitingForWorkers() => Enter(nameof(WaitingForWorkers), () =>
    {
        Receive<TrainingProtocol.WorkerReady>(ready =>
        {
            if (Admit(ready) && _roster.ReadyCount >= _settings.StartWorkers) BeginStepOrFinish();
        });
        Always();
    });

    private void Stepping() => Enter(nameof(Stepping), () =>
    {
        Receive<TrainingProtocol.WorkerReady>(ready =>
        {
            if (Admit(ready)) ApplyStep(_step!.Round.OnWorkersChanged(Now));
        });
        Receive<DeadlinePassed>(_ =>
        {
            if (_step!.Ring is { SharesKnown: true }) OnReductionDeadline(_step);
            else ApplyStep(_step.Round.OnDeadline(Now));
        });
        Always();
    });

    private void Evaluating() => Enter(nameof(Evaluating), EvaluationBehaviour);

    private void Finishing() => Enter(nameof(Finishing), EvaluationBehaviour);

    private void EvaluationBehaviour()
    {
        Receive<TrainingProtocol.WorkerReady>(ready =>
        {
            if (Admit(ready)) ApplyEvaluation(_evaluation!.Round.OnWorkersChanged(Now));
        });
        Receive<DeadlinePassed>(_ => ApplyEvaluation(_evaluation!.Round.OnDeadline(Now)));
        Always();
    }

    /// <summary>No worker to go on with: between steps (below the floor), or inside a round whose ids wait for a worker.</summary>
    private void Paused(int readyWorkers)
    {
        if (_behaviour != nameof(Paused)) _session.Events.RunPaused(_session.NextStep, readyWorkers, _settings.MinWorkers);
        Enter(nameof(Paused), () =>
        {
            Receive<TrainingProtocol.WorkerReady>(ready =>
            {
                if (Admit(ready)) ResumeIfPossible();
            });
            Always();
        });
    }

    private void ResumeIfPossible()
    {
        if (_step is not null)
        {
            ApplyStep(_step.Round.OnWorkersChanged(Now));
            if (_step?.Round.State == RoundState.Running) Resumed(Stepping);
        }
        else if (_evaluation is not null)
        {
            bool final = _evaluation.Final;
            ApplyEvaluation(_evaluation.Round.OnWorkersChanged(Now));
            if (_evaluation?.Round.State == RoundState.Running) Resumed(final ? Finishing : Evaluating);
        }
        else if (_roster.ReadyMembers >= _settings.MinWorkers)
        {
            Resumed(() => { });
            BeginStepOrFinish();
        }
    }

    private void Resumed(Action behaviour)
    {
        _session.Events.RunResumed(_session.NextStep, _roster.ReadyCount);
        behaviour();
    }

    /// <summary>
    /// What every behaviour handles: membership, tensor chunks, interruption, and results (each
    /// handler checks them against the round in flight, if any, and drops the rest).
    /// </summary>
    private void Always()
    {
        Receive<TrainingProtocol.RegisterWorker>(OnRegister);
        Receive<TrainingProtocol.WorkerLeaving>(_ => LoseWorker(_roster.Find(Sender), "leaving (shut down)", downNode: true));
        Receive<Terminated>(t => LoseWorker(_roster.Find(t.ActorRef), "stopped", downNode: true));
        Receive<ClusterMembership.UnreachableMember>(m => OnUnreachable(m.Member.Address));
        Receive<ClusterMembership.ReachableMember>(m => OnReachable(m.Member.Address));
        Receive<Akka.Remote.DisassociatedEvent>(e => OnDisassociated(e.RemoteAddress));
        Receive<Nodes.UnreachableWorkerDowning.WorkerNodeDowned>(d => _session.Events.WorkerNodeDowned(_session.NextStep, d.Node.ToString(), d.Reason));
        Receive<ClusterMembership.MemberRemoved>(m =>
        {
            _unreachable.Remove(m.Member.Address);
            foreach (var entry in _roster.All.Where(e => e.Handle.Path.Address.Equals(m.Member.Address)).ToList()) LoseWorker(entry, "left the cluster");
        });
        Receive<ClusterMembership.IClusterDomainEvent>(_ => { });
        // Only a registered worker's tensors are reassembled: nobody else gets memory here.
        Receive<TensorTransferStart>(start => _roster.Find(Sender) is not null, start => _links.Deliver(start, Sender));
        Receive<TensorChunk>(chunk => _roster.Find(Sender) is not null, chunk => _links.Deliver(chunk, Sender));
        Receive<TensorTransferStart>(_ =>
        {
            if (_ignored.Ignore(Sender.Path.Address.ToString(), Now, out long more, out string _))
                Dropped(_session.NextStep, -1, "a tensor transfer from an actor that is not a registered worker"
                                               + (more > 0 ? $" ({more} more ignored from there since the last such event)" : ""));
        });
        Receive<TensorChunk>(_ => { });
        Receive<Interrupt>(OnInterrupt);
        Receive<TrainingProtocol.WorkerReady>(ready => Admit(ready));
        Receive<TrainingProtocol.ShareComputed>(OnShareComputed);
        Receive<TrainingProtocol.ShareFailed>(OnShareFailed);
        Receive<TrainingProtocol.EvaluationDone>(OnEvaluationDone);
        Receive<TrainingProtocol.EvaluationFailed>(OnEvaluationFailed);
        Receive<GradientArrived>(OnGradientArrived);
        Receive<MessageArrived>(OnMessageArrived);
        Receive<DataConnectionLost>(OnDataConnectionLost);
        Receive<ShardArrived>(OnShardArrived);
        Receive<TrainingProtocol.ReductionFailed>(OnReductionFailed);
        Receive<RetryReduction>(OnRetryReduction);
        QuarantineHandlers();
        Receive<DeadlinePassed>(_ => { });
    }

    // ---- membership ----

    private void OnRegister(TrainingProtocol.RegisterWorker registration)
    {
        // Membership first: a non-member gets no answer and nothing of it is kept (a counted log line at most once a minute).
        if (!MayRegister(Sender, out string why))
        {
            if (_ignored.Ignore(Sender.Path.Address.ToString(), Now, out long more, out string who))
                _log.Warning("Ignored a registration from {0}: {1}{2}", who, why, more > 0 ? $" ({more} more ignored from there since the last such line)" : "");
            return;
        }
        if (registration.ProtocolVersion != TrainingProtocol.Version)
        {
            Sender.Tell(new TrainingProtocol.WorkerRejected(
                $"protocol version {registration.ProtocolVersion} does not match the coordinator's {TrainingProtocol.Version}; run the same BatchCluster build on every node"));
            return;
        }
        if (_expelled.Contains(Sender))
        {
            Sender.Tell(new TrainingProtocol.WorkerRejected($"this worker was expelled from run {_runId} for misbehaving (see the coordinator's log)"));
            return;
        }
        if (Ring && (CoordinatorLinks.SharesMemoryWith(Sender) || !_settings.UseDataPlane))
        {
            Sender.Tell(new TrainingProtocol.WorkerRejected(
                "this run reduces by ring, which takes only workers in other processes over the data plane; run this worker as a worker node"));
            return;
        }
        var entry = _roster.Find(Sender);
        if (entry is null)
        {
            entry = _roster.Add(Sender, new WorkerDescription(registration.WorkerId, registration.Address, registration.Device, registration.Threads));
            Context.Watch(Sender);
        }
        Sender.Tell(new TrainingProtocol.WorkerAccepted(_runId, _settings.Spec, _links.Accept(entry.Key, entry.Handle)));
    }

    /// <summary>
    /// A worker in this process may always register; across processes (node mode) only an actor on
    /// a node that is a member of this cluster. Any process that reaches the port can send a
    /// registration; membership (with TLS: a node that proved its certificate) is what is trusted.
    /// </summary>
    private bool MayRegister(IActorRef worker, out string why)
    {
        why = "";
        if (CoordinatorLinks.SharesMemoryWith(worker) || !_settings.WatchClusterMembership) return true;
        var address = worker.Path.Address;
        bool member = Akka.Cluster.Cluster.Get(Context.System).State.Members.Any(m => m.Address.Equals(address)
            && m.Status is Akka.Cluster.MemberStatus.Up or Akka.Cluster.MemberStatus.WeaklyUp or Akka.Cluster.MemberStatus.Joining);
        if (!member) why = $"{address} is not a member of this cluster";
        return member;
    }

    /// <returns>true when a registered worker became ready now.</returns>
    private bool Admit(TrainingProtocol.WorkerReady ready)
    {
        var entry = _roster.Find(Sender);
        if (entry is null || entry.Ready) return false;
        if (Ring && !AdmitToRing(entry, ready.RingPort)) return false;
        entry.Ready = true;
        // Its own measurement is logged, never used for shares: capacity comes from what the coordinator times (MeasuredShare).
        _workersSeen.Add(entry.Description.Id);
        var d = entry.Description;
        _session.Events.WorkerJoined(d.Id, d.Address, d.Device, d.Threads, ready.SamplesPerSecond, _roster.ReadyCount, _links.Describe(entry.Key));
        return true;
    }

    /// <param name="downNode">
    /// The worker is gone for good (its process stopped, left, or broke its data connection): down its
    /// node now, instead of leaving it a member the failure detector will call unreachable seconds later.
    /// Unreachable members block the cluster's convergence, so new workers could not come up; a few
    /// crashes in a row once left replacements stuck joining while the run paused (the chaos run). A
    /// node merely unreachable is not downed here: it may come back (see <see cref="OnReachable"/>).
    /// </param>
    private void LoseWorker(WorkerRoster<IActorRef>.Entry? entry, string reason, bool downNode = false)
    {
        if (entry is null) return;
        if (downNode) DownWorkerNode(entry.Handle);
        _roster.Remove(entry);
        _quarantine.Forget(entry.Key);
        _links.Forget(entry.Key, entry.Handle);
        Context.Unwatch(entry.Handle);
        _session.Events.WorkerLeft(entry.Description.Id, reason, _roster.ReadyCount);
        if (Ring) RingMemberGone(entry, reason);
        // Under --reduce ring a finished share's gradient sum is still on its worker: it is lost with it.
        if (_step is not null) ApplyStep(_step.Round.OnWorkerLost(entry.Key, reason, Now, withResults: Ring));
        else if (_evaluation is not null)
        {
            DropAuditor(_evaluation, entry.Key);
            if (_evaluation is not null) ApplyEvaluation(_evaluation.Round.OnWorkerLost(entry.Key, reason, Now));
        }
    }

    /// <summary>Downs the node of a lost worker in another process; never this node, nor a node with the coordinator role.</summary>
    private void DownWorkerNode(IActorRef worker)
    {
        if (!_settings.WatchClusterMembership || CoordinatorLinks.SharesMemoryWith(worker)) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        var address = worker.Path.Address;
        var member = cluster.State.Members.FirstOrDefault(m => m.Address.Equals(address));
        if (member is null || member.HasRole(Nodes.ClusterBootstrap.CoordinatorRole) || address.Equals(cluster.SelfAddress)) return;
        cluster.Down(address);
    }

    /// <summary>
    /// The remoting connection to a worker's node dropped (its process died, or our transport refused a frame of it larger
    /// than the limit): whatever was in flight either way is lost, so its share is re-planned now, not at the step deadline.
    /// The worker is not downed here: it registers again when it finds its data connection closed, and a node that stays
    /// unreachable is downed by <see cref="Nodes.UnreachableWorkerDowning"/>.
    /// </summary>
    private void OnDisassociated(Address address)
    {
        foreach (var entry in _roster.All.Where(e => e.Handle.Path.Address.Equals(address) && !CoordinatorLinks.SharesMemoryWith(e.Handle)).ToList())
            LoseWorker(entry, "its connection dropped");
    }

    private void OnUnreachable(Address address)
    {
        foreach (var entry in _roster.All.Where(e => e.Handle.Path.Address.Equals(address)).ToList())
        {
            if (!_unreachable.TryGetValue(address, out var kept)) _unreachable[address] = kept = [];
            kept.Add((entry.Handle, entry.Description));
            LoseWorker(entry, "unreachable");
        }
    }

    /// <summary>A node the failure detector had lost is back: accept its workers again; they report ready and get work from the next round.</summary>
    private void OnReachable(Address address)
    {
        if (!_unreachable.Remove(address, out var workers)) return;
        foreach (var (worker, description) in workers)
        {
            if (_roster.Find(worker) is not null) continue;
            var entry = _roster.Add(worker, description);
            Context.Watch(worker);
            worker.Tell(new TrainingProtocol.WorkerAccepted(_runId, _settings.Spec, _links.Accept(entry.Key, entry.Handle)));
        }
    }

    // ---- steps ----

    /// <summary>A worker answered a request made at <paramref name="version"/>: it no longer reads the snapshots up to it.</summary>
    private void Answered(WorkerRoster<IActorRef>.Entry? worker, long version)
    {
        if (worker is null) return;
        _links.Answered(worker.Key, version);
        Confirmed(worker.Key, version);
    }

    private void BeginStepOrFinish()
    {
        if (_session.Finished)
        {
            Finishing();
            EvaluateTrainSubset(final: true, train =>
                Evaluate(DataSplit.Validation, final: true, validation =>
                    Evaluate(DataSplit.Test, final: true, test => Finish(train, validation, test))));
            return;
        }
        ReleaseDueWorkers();
        if (_roster.ReadyMembers < _settings.MinWorkers)
        {
            Paused(_roster.ReadyMembers);
            return;
        }
        var batch = _session.NextBatch();
        var round = new WorkRound<TrainingProtocol.ShareComputed>(batch.SampleIds, _roster, RoundPolicy.For(_settings.StepDeadline, _roster.ReadyCount),
            _session.Config.ShareGranule);
        var step = _step = new StepInFlight(batch, round, Now);
        _links.BeginStep();
        Stepping();
        var commands = round.Start(Now);
        if (Ring && round.State == RoundState.Running) PlanReduction(step, commands);
        using (StepTrace.Time(StepPhase.SendShares, batch.Step)) ApplyStep(commands);
    }

    private void ApplyStep(IReadOnlyList<RoundCommand> commands)
    {
        var step = _step!;
        string? failure = Carry(commands, step.Batch.Step, send => SendShare(step, send), logReplans: true, refusalNote: "");
        if (failure is not null) FailRun($"step {step.Batch.Step} cannot be completed: {failure}");
        else if (step.Round.State != RoundState.Complete) ArmDeadline(step.Round.NextDeadlineMs);
        else if (!Ring) Commit(step);
        else if (step.Ring is { SharesKnown: false } planned) RoundCompleted(step, planned);
        else if (step.Ring is null && !step.RetryPending) BeginReduction(step); // a reduction in flight (or about to be retried) goes on
    }

    private void SendShare(StepInFlight step, SendWork send)
    {
        var target = _roster.Find(send.Worker)!;
        TrainingProtocol.ReduceShares? plan = null;
        for (int at = 0; step.Plans is { } plans && at < plans.Count; at++)
            if (plans[at].Worker == target.Key)
            {
                plan = plans[at].Part;
                plans.RemoveAt(at);
                break;
            }
        // A share that is the whole batch gives no noise estimate by itself: where the run needs one, it is computed as two halves.
        int halfAt = _session.Config.NeedsNoiseEstimate && !Ring && send.Ids.Length == step.Batch.Size
            ? ShareHalves.FirstHalf(send.Ids.Length, _session.Config.ShareGranule) : 0;
        _links.SendShare(target.Handle, target.Key, _runId, step.Batch.Step, send.Slot, send.Ids, _session.Config.EffectiveMicroBatch(send.Ids.Length),
            _session.ParameterVersion, _session.Parameters, plan, halfAt);
    }

    /// <summary>
    /// Carries out a round's commands (a step's or an evaluation's): requests go out through
    /// <paramref name="send"/>, the rest become log events or a pause. Completion is read from the
    /// round's state afterwards.
    /// </summary>
    /// <param name="step">The step the round belongs to, for the log (an evaluation: the step it follows).</param>
    /// <returns>Why the round failed, or null.</returns>
    private string? Carry(IReadOnlyList<RoundCommand> commands, long step, Action<SendWork> send, bool logReplans, string refusalNote)
    {
        string? failure = null;
        foreach (var command in commands)
        {
            switch (command)
            {
                case SendWork work:
                    send(work);
                    break;
                case Replanned moved when logReplans:
                    _session.Events.StepReplanned(step, moved.FromWorker is int from ? _roster.NameOf(from) : "nobody", moved.Reason,
                        moved.MovedIds, moved.ToWorkers.Select(_roster.NameOf).ToArray());
                    break;
                case Stalled stalled:
                    _session.Events.StallReport(step, stalled.LateWorkers.Select(_roster.NameOf).ToArray(), _settings.StepDeadline.TotalSeconds);
                    Self.Tell(new MissedDeadlines(stalled.LateWorkers)); // quarantine re-plans the round: not from inside its commands
                    break;
                case ResultRefused refused:
                    Dropped(step, refused.Slot, refused.Reason + refusalNote);
                    break;
                case WaitForWorkers:
                    Paused(_roster.ReadyCount);
                    break;
                case RoundFailed failed:
                    failure = failed.Reason;
                    break;
            }
        }
        return failure;
    }

    private void OnShareComputed(TrainingProtocol.ShareComputed result)
    {
        var step = _step;
        var worker = _roster.Find(Sender);
        Answered(worker, result.ParameterVersion);
        string? problem =
            result.RunId != _runId ? $"foreign run {result.RunId}" :
            step is null || result.Step != step.Batch.Step ? $"stale step {result.Step}" :
            result.ParameterVersion != _session.ParameterVersion ? $"stale parameter version {result.ParameterVersion}" :
            worker is null ? "sent by a worker that is not registered" :
            null;
        if (problem is not null)
        {
            Dropped(result.Step, result.ShareIndex, problem);
            return;
        }
        // Over the data plane the gradient travels apart from this message: go on once both halves are here.
        if (_links.OnShareMessage(worker!.Key, result) is { } whole) AcceptShare(step!, worker, whole);
    }

    private void OnGradientArrived(GradientArrived arrived)
    {
        var step = _step;
        var worker = _roster.Find(arrived.WorkerKey);
        bool current = step is not null && worker is not null && arrived.Header.Step == step.Batch.Step && arrived.Header.Version == _session.ParameterVersion;
        if (_links.OnGradient(arrived, current) is { } whole) AcceptShare(step!, worker!, whole);
    }

    /// <summary>
    /// A result that came on a worker's data connection (a message frame): handled as if it came through Akka from the
    /// worker that connection authenticated, so every check a result meets applies to it unchanged.
    /// </summary>
    private void OnMessageArrived(MessageArrived arrived)
    {
        if (_roster.Find(arrived.WorkerKey) is { } worker && _links.IsCurrent(arrived)) Self.Tell(arrived.Message, worker.Handle);
    }

    private void OnDataConnectionLost(DataConnectionLost lost)
    {
        var worker = _roster.Find(lost.WorkerKey);
        // Moot when the worker is gone already or has connected again since.
        if (worker is null || !_links.StillLost(lost)) return;
        LoseWorker(worker, $"data connection lost: {lost.Reason}", downNode: true);
    }

    private void AcceptShare(StepInFlight step, WorkerRoster<IActorRef>.Entry worker, TrainingProtocol.ShareComputed result)
    {
        if (ImplausibleResult(worker, result) is { } problem)
        {
            CoordinatorLinks.Release(result);
            // A share that cannot be right comes from a broken or hostile worker: held out of the work, not just this share re-planned.
            ApplyStep(step.Round.OnFailed(worker.Key, result.ShareIndex, problem, Now));
            if (_step == step) QuarantineWorker(worker, $"share {result.ShareIndex} of step {step.Batch.Step} {problem}", withResults: true);
            return;
        }
        _quarantine.Answered(worker.Key);
        if (step.Round.SentAtMs(result.ShareIndex) is double sent
            && _roster.MeasuredShare(worker.Key, result.SampleCount, result.ComputeMilliseconds, Now - sent) && _claimsIgnored.Add(worker.Key))
            _session.Events.SpeedClaimIgnored(step.Batch.Step, worker.Key, worker.Handle.Path.ToString(),
                result.ComputeMilliseconds > 0 ? result.SampleCount / result.ComputeMilliseconds * 1000 : double.MaxValue,
                result.SampleCount / (Now - sent) * 1000, WorkerRoster<IActorRef>.ClaimFactor);
        var commands = step.Round.OnResult(worker.Key, result.ShareIndex, result.SampleCount, result, Now);
        if (!Ring) FoldArrived(step);
        ApplyStep(commands);
    }

    /// <summary>
    /// Star: adds the gradients that lead the plan order to the step's running sum as they arrive,
    /// so the commit after the last result adds only what is left. A worker of this process sends
    /// its result on its own thread, and the coordinator's dispatcher usually runs this message on
    /// that same thread, while the gradient it just wrote is still in that core's cache.
    /// </summary>
    private void FoldArrived(StepInFlight step)
    {
        while (step.Round.NextInPlanOrder(ref step.FoldCursor) is { } arrived)
            using (StepTrace.Time(StepPhase.Fold, step.Batch.Step))
                _session.Fold(step.Batch, arrived.GradientSum, step.Folded++);
    }

    /// <summary>
    /// What a result from the network must satisfy before it is used (the round checks the sample
    /// count against the share): the model's size, measurements that can be true, and — from a worker
    /// in another process — a squared norm that is the norm of the values that arrived (the noise
    /// scale and the outlier check read it; an in-process worker is this program's own code). Non-finite
    /// gradient values and losses pass here: the session's NaN policy decides about the whole step.
    /// </summary>
    private string? ImplausibleResult(WorkerRoster<IActorRef>.Entry worker, TrainingProtocol.ShareComputed result)
    {
        if (result.GradientSum.Length != (Ring ? 0 : _session.Parameters.Length))
            return $"returned {result.GradientSum.Length} gradient values for a model of {_session.Parameters.Length}"
                   + (Ring ? " in a ring run, where they stay on the worker" : "");
        if (!(result.ComputeMilliseconds >= 0 && double.IsFinite(result.ComputeMilliseconds)
              && result.HandlingMilliseconds >= 0 && double.IsFinite(result.HandlingMilliseconds)))
            return $"reported impossible times (compute {result.ComputeMilliseconds} ms, handling {result.HandlingMilliseconds} ms)";
        if (result.PeakMemoryBytes < 0 || result.AllocatedBytes < 0 || result.GradientSumSquaredNorm < 0)
            return "reported a negative memory figure or squared norm";
        if (result.Halves is { } halves && double.IsFinite(result.GradientSumSquaredNorm)
            && (halves.FirstSize <= 0 || halves.FirstSize != ShareHalves.FirstHalf(result.SampleCount, _session.Config.ShareGranule)
                || !ShareHalves.Consistent(halves.FirstSquaredNorm, halves.SecondSquaredNorm, result.GradientSumSquaredNorm)))
            return $"reported halves ({halves.FirstSize} samples, squared norms {halves.FirstSquaredNorm:G6} and {halves.SecondSquaredNorm:G6}) "
                   + $"that no two parts of {result.SampleCount} samples with a sum of squared norm {result.GradientSumSquaredNorm:G6} can have";
        if (BatchNormProblem(result) is { } batchNorm) return batchNorm;
        if (Ring || CoordinatorLinks.SharesMemoryWith(worker.Handle)) return null;
        double computed = FlatMath.SquaredNorm(result.GradientSum.Span);
        return ShareOutliers.NormAgrees(result.GradientSumSquaredNorm, computed, _session.Config.TransferPrecision)
            ? null
            : $"reported a squared gradient norm of {result.GradientSumSquaredNorm:G6} for values whose squared norm is {computed:G6}";
    }

    /// <summary>
    /// Under --bn-batch a result carries one sum per running statistic (none otherwise); the variance sums cannot be negative,
    /// and non-finite sums are possible only beside a non-finite gradient (the NaN policy decides those steps).
    /// </summary>
    private string? BatchNormProblem(TrainingProtocol.ShareComputed result)
    {
        int expected = _session.RunningStatistics.Length;
        var sums = result.BatchNormSums ?? [];
        if (sums.Length != expected)
            return $"returned {sums.Length} batch-norm statistics where the run has {expected}";
        if (expected == 0) return null;
        if (double.IsFinite(result.GradientSumSquaredNorm) && !FlatMath.AllFinite(sums))
            return "returned non-finite batch-norm statistics with a finite gradient";
        return RunningStatistics.VariancesNonNegative(_session.Config.Model, sums) ? null : "returned a negative batch-norm variance";
    }

    private void OnShareFailed(TrainingProtocol.ShareFailed failed)
    {
        var step = _step;
        var worker = _roster.Find(Sender);
        Answered(worker, failed.Step); // a share of step s is computed at parameter version s
        if (failed.RunId != _runId || step is null || failed.Step != step.Batch.Step || worker is null)
        {
            Dropped(failed.Step, failed.ShareIndex, "a failure report for no current share");
            return;
        }
        _log.Warning("Worker {0} failed share {1} of step {2}: {3}", worker.Description.Id, failed.ShareIndex, failed.Step, failed.Reason);
        ApplyStep(step.Round.OnFailed(worker.Key, failed.ShareIndex, failed.Reason, Now));
    }

    private void Commit(StepInFlight step)
    {
        CancelDeadline();
        // Promise 3, checked at every commit, not assumed: every sample id contributed exactly once.
        if (!step.Round.CoversIdsExactlyOnce())
        {
            FailRun($"step {step.Batch.Step}: the shares do not cover the global batch exactly once");
            return;
        }
        var done = step.Round.Completed;
        foreach (var share in done) _links.CountGradient(share.Worker, share.Result);
        var outliers = CheckOutliers(step, done);
        if (outliers == OutlierCheck.Rejected) return; // their samples are being computed again: the round completes anew
        var measured = Measure(done, extraTransferMs: 0);
        var shares = done.Select(s => new ShareGradient(s.Result.GradientSum, s.Result.SampleCount, s.Result.LossSum,
            s.Result.GradientSumSquaredNorm, s.Result.ComputeMilliseconds, _roster.NameOf(s.Worker))
        {
            BatchNormSums = s.Result.BatchNormSums,
            Halves = s.Result.Halves is { } h ? ShareHalves.AsShares(s.Result.SampleCount, h.FirstSize, h.FirstSquaredNorm, h.SecondSquaredNorm) : null,
        }).ToList();
        StepRecord? record;
        int[] rejected;
        try
        {
            record = _session.Commit(step.Batch, shares, measured, step.StartedAtMs, _blameWorkers, out rejected);
        }
        catch (RunFailedException stop)
        {
            EndStep(done);
            FailRun(stop); // too many non-finite steps, or non-finite parameters: a decision, with the checkpoints intact
            return;
        }
        if (rejected.Length > 0)
        {
            RejectNonFiniteShares(step, done, rejected);
            return;
        }
        EndStep(done);
        if (record is null && step.SharesRejected) PardonBlamed(step.Blamed);
        if (outliers == OutlierCheck.StillThere && step.OutliersBlamed.Count > 0) PardonBlamed(step.OutliersBlamed);
        AfterCommit(record);
    }

    /// <summary>
    /// Whether a step's non-finite shares are taken as their workers' fault (they are quarantined and their samples
    /// computed again by others) rather than the model's (the step is skipped): once per step, whenever a member that
    /// computed none of them can compute them cleanly — now, or after its own quarantine. If that recomputation is
    /// non-finite too, the fault follows the model: the step is skipped and the blamed are pardoned. With nobody else
    /// (one worker), the step is skipped at once, as before quarantine existed.
    /// </summary>
    /// <remarks>Made into a delegate once (<see cref="_blameWorkers"/>): a lambda per commit would allocate at every step.</remarks>
    private bool BlameWorkers(int[] places)
    {
        if (_step is not { SharesRejected: false } step) return false;
        var done = step.Round.Completed; // only here, where a step is not finite
        return SomeoneElseCanCompute(places.Select(p => done[p].Worker).ToHashSet());
    }

    /// <summary>
    /// Whether a ready member that computed none of the <paramref name="blamed"/> workers' shares can compute their samples —
    /// now, or after its own quarantine: the condition for taking bad shares as their workers' fault (both rejections).
    /// </summary>
    private bool SomeoneElseCanCompute(HashSet<int> blamed) => _roster.All.Any(e => e.Ready && !blamed.Contains(e.Key));

    private enum OutlierCheck { None, Rejected, StillThere }

    /// <summary>
    /// Looks for shares whose gradient is of another scale than the step's others (<see cref="ShareOutliers"/>) and acts on
    /// them by the run's policy: logged and averaged in (log), or — once per step, when a worker that computed none of them
    /// is available — their workers quarantined and their samples computed again (quarantine). If the recomputed step has
    /// outliers still, the samples are the cause, not the workers: the blamed are pardoned and the step commits as computed.
    /// </summary>
    /// <returns>None; Rejected (the step waits for their recomputation); or StillThere (averaged in: the blamed, if any, are
    /// pardoned after the commit).</returns>
    private OutlierCheck CheckOutliers(StepInFlight step, IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done)
    {
        var policy = _session.Config.Outliers;
        if (policy == OutlierPolicy.Off || done.Count < ShareOutliers.FewestWorkers) return OutlierCheck.None;
        Span<int> samples = done.Count <= 64 ? stackalloc int[done.Count] : new int[done.Count];
        Span<double> norms = done.Count <= 64 ? stackalloc double[done.Count] : new double[done.Count];
        Span<int> workers = done.Count <= 64 ? stackalloc int[done.Count] : new int[done.Count];
        for (int i = 0; i < done.Count; i++)
        {
            samples[i] = done[i].Result.SampleCount;
            norms[i] = done[i].Result.GradientSumSquaredNorm;
            workers[i] = done[i].Worker;
        }
        if (ShareOutliers.Find(samples, norms, workers) is not { } outliers) return OutlierCheck.None; // after a recomputation: clean, the blamed stay quarantined
        bool recomputed = step.OutliersBlamed.Count > 0;
        var blamed = outliers.Select(o => done[o.Place].Worker).ToHashSet();
        bool reject = policy == OutlierPolicy.Quarantine && !recomputed && SomeoneElseCanCompute(blamed);
        string action = reject ? "its worker is quarantined and its samples computed again by others"
            : policy == OutlierPolicy.Log ? "averaged in as computed (--outlier-policy log)"
            : recomputed ? "averaged in: these samples were computed again by other workers and are still far out, so the data, not a worker, is the cause"
            : "averaged in: no other worker can compute its samples";
        foreach (var o in outliers)
            _session.Events.ShareOutlier(step.Batch.Step, o.Place, done[o.Place].Worker, _roster.Find(done[o.Place].Worker)?.Handle.Path.ToString() ?? "(gone)",
                o.Samples, o.MeanGradientNorm, o.MedianMeanGradientNorm, o.Ratio, o.Allowed, action);
        if (!reject) return OutlierCheck.StillThere;
        RejectShares(step, done, outliers.Select(o => o.Place).ToArray(),
            $"a gradient of another scale than the step's other shares (--outlier-policy quarantine) at step {step.Batch.Step}", step.OutliersBlamed);
        return OutlierCheck.Rejected;
    }

    /// <summary>The step is decided (committed, skipped or failed): its gradient buffers go back to the pool.</summary>
    private void EndStep(IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done)
    {
        foreach (var share in done) CoordinatorLinks.Release(share.Result);
        _links.EndStep(); // a re-planned share's late half: its step is over
        _step = null;
    }

    /// <summary>
    /// Shares at <paramref name="places"/> (plan order) were non-finite and another member can compute them: their workers
    /// are quarantined and their samples move onto the others; the round completes again and the step commits then.
    /// </summary>
    private void RejectNonFiniteShares(StepInFlight step, IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done, int[] places)
    {
        string others = places.Length < done.Count ? "the other shares were finite" : "another member can compute its samples";
        RejectShares(step, done, places, $"a non-finite gradient or loss in its share of step {step.Batch.Step}, where {others}", step.Blamed);
    }

    /// <summary>
    /// The shares at <paramref name="places"/> are wrong: their workers, added to <paramref name="blamedInto"/> (the step's
    /// record of whom to pardon if the recomputation is as bad), are quarantined for <paramref name="reason"/> and the
    /// round moves their samples.
    /// </summary>
    private void RejectShares(StepInFlight step, IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done, int[] places,
        string reason, List<int> blamedInto)
    {
        foreach (int place in places) CoordinatorLinks.Release(done[place].Result); // the round forgets these results
        var blamed = places.Select(p => done[p].Worker).Distinct().ToList();
        blamedInto.AddRange(blamed);
        foreach (int key in blamed)
        {
            if (_roster.Find(key) is { } entry) QuarantineWorker(entry, reason, withResults: true);
            else ApplyStep(step.Round.OnWorkerLost(key, reason, Now, withResults: true)); // it left meanwhile: its results go all the same
            if (_step != step) return; // the round failed
        }
    }

    /// <summary>
    /// What a step measured, for its record: the critical share (the one whose result arrived last:
    /// the step waited for it) gives compute and transfer; <paramref name="extraTransferMs"/> adds a
    /// ring reduction's time on the network; bytes come from the links; every node's peak memory and
    /// managed allocation since the previous commit.
    /// </summary>
    private StepMeasurements Measure(IReadOnlyList<WorkRound<TrainingProtocol.ShareComputed>.CompletedShare> done, double extraTransferMs)
    {
        var peakByNode = new Dictionary<string, double>();
        var allocatedByNode = new Dictionary<string, long>();
        foreach (var share in done)
        {
            string node = _roster.DescriptionOf(share.Worker).Address;
            if (node != _selfAddress) allocatedByNode[node] = allocatedByNode.GetValueOrDefault(node) + share.Result.AllocatedBytes;
            peakByNode[node] = share.Result.PeakMemoryBytes / (1024.0 * 1024.0);
        }
        // The coordinator's own node too (in one process it is the workers' node as well).
        peakByNode[_selfAddress] = PeakMemory.Megabytes;
        allocatedByNode[_selfAddress] = _allocation.Report(); // in one process: the workers' too
        var critical = done.MaxBy(s => s.ArrivedAtMs)!;
        double transferMs = Math.Max(0, critical.ArrivedAtMs - critical.SentAtMs - critical.Result.HandlingMilliseconds) + extraTransferMs;
        return new StepMeasurements(critical.Result.ComputeMilliseconds, transferMs, _links.StepBytes, peakByNode, allocatedByNode,
            _links.BusiestWorkerBytes, _links.StepHandedOverBytes);
    }

    /// <summary>After a step's commit (or its skip, <paramref name="record"/> null): the step callback, then validation if due, or the next step.</summary>
    private void AfterCommit(StepRecord? record)
    {
        if (record is not null) _onStep?.Invoke(record, _session);
        if (_session.ValidationDue)
        {
            Evaluating();
            EvaluateTrainSubset(final: false, _ =>
                Evaluate(DataSplit.Validation, final: false, result =>
                {
                    _session.RecordEvaluation(DataSplit.Validation, result);
                    BeginStepOrFinish();
                }));
        }
        else
        {
            BeginStepOrFinish();
        }
    }

    // ---- evaluation ----

    /// <summary>
    /// Evaluates the fixed training subset (for the generalization gap) and logs it, then continues;
    /// at the end of the run the result goes to the summary instead. Skipped when the subset is off.
    /// </summary>
    private void EvaluateTrainSubset(bool final, Action<EvaluationResult?> then)
    {
        if (_settings.TrainEvaluationCount <= 0)
        {
            then(null);
            return;
        }
        Evaluate(DataSplit.Train, final, result =>
        {
            if (!final) _session.RecordEvaluation(DataSplit.Train, result);
            then(result);
        });
    }

    /// <summary>Splits the set over the ready workers by capacity and continues with the summed result.</summary>
    private void Evaluate(DataSplit split, bool final, Action<EvaluationResult> then)
    {
        int count = split switch
        {
            DataSplit.Validation => _settings.ValidationCount,
            DataSplit.Test => _settings.TestCount,
            _ => _settings.TrainEvaluationCount,
        };
        if (count == 0)
        {
            then(EvaluationResult.Empty);
            return;
        }
        var round = new WorkRound<TrainingProtocol.EvaluationDone>(Enumerable.Range(0, count).ToArray(), _roster,
            RoundPolicy.For(_settings.StepDeadline, _roster.ReadyCount));
        var evaluation = new EvaluationInFlight(split, ++_nextRequestId, round, then, final);
        _evaluation = evaluation;
        ApplyEvaluation(round.Start(Now));
        if (_evaluation == evaluation) StartAudit(evaluation, count); // after the parts: a worker's part is its first request
    }

    private void ApplyEvaluation(IReadOnlyList<RoundCommand> commands)
    {
        var evaluation = _evaluation!;
        string? failure = Carry(commands, _session.NextStep, send => SendEvaluation(evaluation, send), logReplans: false,
            refusalNote: $" (evaluation request {evaluation.RequestId})");
        if (failure is not null)
        {
            FailRun($"the {evaluation.Split.LogName()} evaluation after step {_session.LastCommittedStep} cannot be completed: {failure}");
            return;
        }
        if (evaluation.Round.State != RoundState.Complete)
        {
            ArmDeadline(evaluation.Round.NextDeadlineMs);
            return;
        }
        evaluation.Total = evaluation.Round.Completed.Aggregate(EvaluationResult.Empty,
            (sum, s) => sum.Add(new EvaluationResult(s.Result.LossSum, s.Result.Correct, s.Result.Count)));
        FinishEvaluation(evaluation);
    }

    private void SendEvaluation(EvaluationInFlight evaluation, SendWork send)
    {
        var target = _roster.Find(send.Worker)!;
        _links.SendEvaluation(target.Handle, target.Key, _runId, evaluation.RequestId, send.Slot, evaluation.Split, send.Ids,
            _session.ParameterVersion, _session.Parameters, _session.RunningStatistics);
    }

    private void OnEvaluationDone(TrainingProtocol.EvaluationDone done)
    {
        var evaluation = _evaluation;
        var worker = _roster.Find(Sender);
        Answered(worker, done.ParameterVersion);
        if (evaluation is not null && done.RequestId == evaluation.AuditRequestId && done.RunId == _runId && worker is not null
            && done.ParameterVersion == _session.ParameterVersion)
        {
            OnAuditAnswer(evaluation, worker.Key, done);
            return;
        }
        if (evaluation is null || done.RunId != _runId || done.RequestId != evaluation.RequestId || done.ParameterVersion != _session.ParameterVersion || worker is null)
        {
            Dropped(_session.NextStep, done.Part, $"stale or foreign evaluation result (request {done.RequestId})");
            return;
        }
        if (done.Count > int.MaxValue || done.Correct < 0 || done.Correct > done.Count)
        {
            ApplyEvaluation(evaluation.Round.OnFailed(worker.Key, done.Part, $"reported {done.Correct} correct of {done.Count}", Now));
            return;
        }
        ApplyEvaluation(evaluation.Round.OnResult(worker.Key, done.Part, (int)done.Count, done, Now));
    }

    private void OnEvaluationFailed(TrainingProtocol.EvaluationFailed failed)
    {
        var evaluation = _evaluation;
        var worker = _roster.Find(Sender);
        if (evaluation is not null && failed.RequestId == evaluation.RequestId) Answered(worker, _session.ParameterVersion);
        if (evaluation is null || failed.RunId != _runId || failed.RequestId != evaluation.RequestId || worker is null)
        {
            Dropped(_session.NextStep, failed.Part, $"a failure report for no current evaluation (request {failed.RequestId})");
            return;
        }
        _log.Warning("Worker {0} failed evaluation part {1}: {2}", worker.Description.Id, failed.Part, failed.Reason);
        ApplyEvaluation(evaluation.Round.OnFailed(worker.Key, failed.Part, failed.Reason, Now));
    }

    // ---- timers and logging ----

    private void ArmDeadline(double? atMs)
    {
        if (atMs == _armedDeadlineMs) return;
        _armedDeadlineMs = atMs;
        if (atMs is double at) Timers.StartSingleTimer(DeadlineTimer, DeadlinePassed.Instance, TimeSpan.FromMilliseconds(Math.Max(0, at - Now)));
        else Timers.Cancel(DeadlineTimer);
    }

    private void CancelDeadline() => ArmDeadline(null);

    private void Dropped(long step, int share, string reason) =>
        _session.Events.ResultDropped(step, share, Sender.Path.ToString(), reason);

    // ---- the end ----

    private void Finish(EvaluationResult? train, EvaluationResult validation, EvaluationResult test)
    {
        RunSummary summary;
        try
        {
            summary = _session.Complete(train, validation, test, _workersSeen.Count, _logPath);
        }
        catch (RunFailedException stop)
        {
            FailRun(stop); // the event log lost events: a decision, with the checkpoints intact
            return;
        }
        var ended = new TrainingProtocol.RunEnded(_runId, Succeeded: true);
        foreach (var worker in _roster.All) worker.Handle.Tell(ended);
        TellStandbyCoordinators(ended);
        _completion.TrySetResult(new RunResult(summary, _session.Parameters.ToArray(),
            _session.RunningStatistics.IsEmpty ? null : _session.RunningStatistics.ToArray()));
        Context.Stop(Self);
    }

    /// <summary>Other coordinator-role nodes wait to take over; tell them the run is over.</summary>
    private void TellStandbyCoordinators(TrainingProtocol.RunEnded ended)
    {
        if (!_settings.WatchClusterMembership) return;
        var cluster = Akka.Cluster.Cluster.Get(Context.System);
        foreach (var member in cluster.State.Members.Where(m => m.HasRole(Nodes.ClusterBootstrap.CoordinatorRole) && !m.Address.Equals(cluster.SelfAddress)))
            Context.ActorSelection($"{member.Address}/user/{RunWatchName}").Tell(ended);
    }

    /// <summary>A decision, not a crash: the run cannot go on (e.g. every worker fails the same step).</summary>
    private void FailRun(string reason) => FailRun(_session.Failure(reason));

    private void FailRun(RunFailedException failure)
    {
        CancelDeadline();
        _step?.Ring?.Abort(); // the session stays at its last commit
        var ended = new TrainingProtocol.RunEnded(_runId, Succeeded: false);
        foreach (var worker in _roster.All) worker.Handle.Tell(ended);
        TellStandbyCoordinators(ended);
        _completion.TrySetException(failure);
        Context.Stop(Self);
    }

    private void OnInterrupt(Interrupt interrupt)
    {
        CancelDeadline();
        _step?.Ring?.Abort(); // a reduction half applied is undone first: the checkpoint is of the last commit
        // Between two messages the session is exactly at its last commit: a round in flight is simply dropped.
        _completion.TrySetException(_session.Interrupt(interrupt.Reason));
        Context.Stop(Self);
    }
}
