using Akka.Actor;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Local;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cluster.Tests.Local;

/// <summary>One fault, injected at one step, by a <see cref="FaultyWorker"/>.</summary>
public enum WorkerFault
{
    /// <summary>Keeps the share and never answers (a hung worker that is still alive).</summary>
    Stall,
    /// <summary>The worker actor stops while holding the share (as a crash does under the stopping supervision).</summary>
    Die,
    /// <summary>The share reaches the real worker with a sample id that does not exist: its compute throws.</summary>
    Throw,
    /// <summary>Keeps the first evaluation request it gets (from the step given on) and never answers it.</summary>
    StallEvaluation,
    /// <summary>Computes the share for real, then writes a NaN into its gradient sum (a faulty device or a hostile peer).</summary>
    PoisonGradient,
    /// <summary>Like <see cref="PoisonGradient"/>, at the given step and at every step after it.</summary>
    PoisonEveryGradient,
    /// <summary>Poisons, at the given step, only shares re-planned onto it (a share number past the first plan's).</summary>
    PoisonReplanned,
}

/// <summary>
/// Stands between the coordinator and a real <see cref="WorkerActor"/> in the same process and
/// passes every message on as it is (no copy: the in-process path, where buffer ownership
/// matters), except that it injects <paramref name="fault"/> into the first share of
/// <paramref name="atStep"/>. The coordinator sees this actor as the worker.
/// </summary>
public sealed class FaultyWorker : ReceiveActor
{
    public static LocalCluster.WorkerFactory Factory(int index, WorkerFault fault, long atStep) => Factory((index, fault), atStep);

    /// <summary>Several workers, each with its fault, all at <paramref name="atStep"/>.</summary>
    public static LocalCluster.WorkerFactory Factory((int Index, WorkerFault Fault) first, long atStep, params (int Index, WorkerFault Fault)[] more)
    {
        var faults = more.Prepend(first).ToDictionary(f => f.Index, f => f.Fault);
        return (i, coordinator, settings) => faults.TryGetValue(i, out var fault)
            ? Props.Create(() => new FaultyWorker(coordinator, settings, fault, atStep))
            : WorkerActor.Props(coordinator, settings);
    }

    /// <summary>Every worker with <paramref name="fault"/> at <paramref name="atStep"/>.</summary>
    public static LocalCluster.WorkerFactory Everywhere(WorkerFault fault, long atStep) => (_, coordinator, settings) =>
        Props.Create(() => new FaultyWorker(coordinator, settings, fault, atStep));

    /// <summary>Shares of a step's first plan in the tests that use <see cref="WorkerFault.PoisonReplanned"/> (one per worker, three workers).</summary>
    private const int FirstPlanShares = 3;

    public FaultyWorker(IActorRef coordinator, WorkerSettings settings, WorkerFault fault, long atStep)
    {
        var real = Context.ActorOf(WorkerActor.Props(Self, settings), "real");
        Context.Watch(real);
        bool injected = false;
        Receive<Terminated>(_ => Context.Stop(Self));
        Receive<TrainingProtocol.Evaluate>(_ => !injected && fault == WorkerFault.StallEvaluation, _ => injected = true);
        bool ShouldPoison(TrainingProtocol.ShareComputed share) =>
            (fault == WorkerFault.PoisonGradient && !injected && share.Step == atStep)
            || (fault == WorkerFault.PoisonEveryGradient && share.Step >= atStep)
            || (fault == WorkerFault.PoisonReplanned && share.Step == atStep && share.ShareIndex >= FirstPlanShares);
        bool Intercepts(long step) => !injected && step == atStep && fault is WorkerFault.Stall or WorkerFault.Die or WorkerFault.Throw;
        Receive<TrainingProtocol.ComputeShare>(work => Intercepts(work.Step), work =>
        {
            injected = true;
            switch (fault)
            {
                case WorkerFault.Stall:
                    break;
                case WorkerFault.Die:
                    Context.Stop(Self);
                    break;
                case WorkerFault.Throw:
                    real.Tell(work with { SampleIds = [.. work.SampleIds[..^1], -1] }, Self);
                    break;
                default:
                    real.Tell(work, Self);
                    break;
            }
        });
        Receive<TrainingProtocol.ShareComputed>(result => Sender.Equals(real) && ShouldPoison(result), result =>
        {
            // In one process the worker's buffer is this message's: writing it here is what a broken worker would send.
            var gradient = System.Runtime.InteropServices.MemoryMarshal.AsMemory(result.GradientSum);
            gradient.Span[gradient.Length / 2] = float.NaN;
            injected = true;
            coordinator.Tell(result, Self);
        });
        ReceiveAny(message =>
        {
            if (Sender.Equals(real)) coordinator.Tell(message, Self); // the worker's side: registration, results
            else real.Tell(message, Self);                            // the coordinator's side: acceptance, work
        });
    }
}
