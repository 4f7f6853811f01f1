using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using static BatchCluster.Cluster.Tests.TrainingFixtures;

namespace BatchCluster.Cluster.Tests.Actors;

/// <summary>
/// The coordinator's side of the protocol, with TestProbes playing the workers: what it sends,
/// and that stale or foreign results are dropped (promise 4, docs/architecture.md) while the right ones commit.
/// </summary>
public class CoordinatorProtocolTests() : TestKit(Cluster.Local.LocalCluster.AkkaConfig)
{
    private static readonly DataSplits Data = SyntheticImages.Create(seed: 1, trainCount: 64, validationCount: 10, testCount: 6);
    private static readonly ModelSpec Model = ModelSpec.Mlp(8);

    private static TrainingConfig OneStep(int workers) => new()
    {
        Dataset = "synthetic", Model = Model, GlobalBatch = 8, Steps = 1, Workers = workers, EvalEvery = 0, LearningRate = 0.5,
    };

    private static readonly TrainingProtocol.RunSpec Spec = new("synthetic", 10, "mlp", [8], 1);

    private static CoordinatorSettings Settings(int minWorkers, double deadlineSeconds = 30) =>
        new(minWorkers, minWorkers, TimeSpan.FromSeconds(deadlineSeconds), Spec, Data.Validation.Count, Data.Test.Count, WatchClusterMembership: false,
            TrainEvaluationCount: 0);

    /// <summary>A probe plays a worker: it registers, is accepted, and reports ready.</summary>
    private TestProbe JoinedWorker(IActorRef coordinator, string name)
    {
        var probe = CreateTestProbe(name);
        probe.Send(coordinator, new TrainingProtocol.RegisterWorker(name, "test", "cpu", 1, TrainingProtocol.Version));
        var accepted = probe.ExpectMsg<TrainingProtocol.WorkerAccepted>();
        Assert.Equal(Spec, accepted.Spec with { HiddenSizes = Spec.HiddenSizes });
        probe.Send(coordinator, new TrainingProtocol.WorkerReady(name, 1000));
        return probe;
    }

    private static TrainingProtocol.ShareComputed Reply(TrainingProtocol.ComputeShare work, int parameterCount,
        string? runId = null, long? step = null, long? version = null, int? count = null) =>
        new(runId ?? work.RunId, step ?? work.Step, version ?? work.Parameters.Version, work.ShareIndex, count ?? work.SampleIds.Length,
            LossSum: work.SampleIds.Length, Enumerable.Repeat(1f, parameterCount).ToArray(), 0, 1, 1, 0);

    private (IActorRef Coordinator, TaskCompletionSource<RunResult> Done, List<StepRecord> Steps, float[] Initial) Start(TrainingConfig config,
        CoordinatorSettings settings, Action<StepRecord>? onStep = null)
    {
        int count = ModelFactory.LayoutOf(Model).TotalCount;
        var initial = new float[count];
        var done = new TaskCompletionSource<RunResult>();
        var steps = new List<StepRecord>();
        var run = new CoordinatorRun(() => new TrainingSession(config, Data.Train.Count, initial, SilentEvents("run-a")), null, settings, "", done,
            (record, _) => { steps.Add(record); onStep?.Invoke(record); });
        var coordinator = Sys.ActorOf(RunSupervisor.Props(run));
        return (coordinator, done, steps, initial);
    }

    [Fact]
    public void Sends_each_worker_its_share_at_the_current_parameter_version()
    {
        var (coordinator, _, _, _) = Start(OneStep(2), Settings(minWorkers: 2));
        var a = JoinedWorker(coordinator, "a");
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // one worker is below the minimum of two: nothing starts
        var b = JoinedWorker(coordinator, "b");
        var workA = a.ExpectMsg<TrainingProtocol.ComputeShare>();
        var workB = b.ExpectMsg<TrainingProtocol.ComputeShare>();
        Assert.Equal("run-a", workA.RunId);
        Assert.Equal(0, workA.Step);
        Assert.Equal(0, workA.Parameters.Version);
        Assert.Equal((4, 4), (workA.SampleIds.Length, workB.SampleIds.Length));
        Assert.Empty(workA.SampleIds.Intersect(workB.SampleIds));
    }

    [Fact]
    public async Task Stale_and_foreign_results_are_dropped_and_the_right_one_commits()
    {
        var (coordinator, done, steps, initial) = Start(OneStep(1), Settings(minWorkers: 1));
        var worker = JoinedWorker(coordinator, "w");
        var work = worker.ExpectMsg<TrainingProtocol.ComputeShare>();

        coordinator.Tell(Reply(work, initial.Length), CreateTestProbe().Ref); // right content, wrong sender
        coordinator.Tell(Reply(work, initial.Length, runId: "another-run"), worker.Ref);
        coordinator.Tell(Reply(work, initial.Length, step: work.Step + 7), worker.Ref);
        coordinator.Tell(Reply(work, initial.Length, version: work.Parameters.Version + 1), worker.Ref);
        // None of those may commit: the coordinator still waits, sends nothing new.
        worker.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Empty(steps);

        coordinator.Tell(Reply(work, initial.Length), worker.Ref);
        // The step commits; then the final evaluations go out at the new version.
        var validation = worker.ExpectMsg<TrainingProtocol.Evaluate>();
        Assert.Equal(DataSplit.Validation, validation.Split);
        Assert.Equal(1, validation.Parameters.Version);
        // Gradient sum 1 per entry over 8 samples → mean 1/8, times lr 0.5 → every parameter moved by −1/16.
        Assert.All(validation.Parameters.Values.ToArray(), v => Assert.Equal(-0.0625f, v));
        Assert.Single(steps);
        Assert.Equal(1.0, steps[0].Loss);

        coordinator.Tell(new TrainingProtocol.EvaluationDone("run-a", validation.RequestId, validation.Part, 1, 5.0, 3, validation.Rows.Length), worker.Ref);
        var test = worker.ExpectMsg<TrainingProtocol.Evaluate>();
        Assert.Equal(DataSplit.Test, test.Split);
        coordinator.Tell(new TrainingProtocol.EvaluationDone("run-a", test.RequestId, test.Part, 1, 3.0, 6, test.Rows.Length), worker.Ref);

        var result = await done.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(worker.ExpectMsg<TrainingProtocol.RunEnded>().Succeeded);
        Assert.Equal(1, result.Summary.Steps);
        Assert.Equal(0.3, result.Summary.ValidationAccuracy, 10);
        Assert.Equal(1.0, result.Summary.TestAccuracy, 10);
    }

    /// <summary>
    /// Malformed tensor transfers from anyone (a chunk of no transfer, a header with an impossible
    /// size) once threw inside the coordinator and, through Akka's default restart, hung the run.
    /// They are dropped; the step commits.
    /// </summary>
    [Fact]
    public async Task Malformed_transfers_are_dropped_and_the_run_goes_on()
    {
        var (coordinator, done, steps, initial) = Start(OneStep(1), Settings(minWorkers: 1));
        var worker = JoinedWorker(coordinator, "w");
        var work = worker.ExpectMsg<TrainingProtocol.ComputeShare>();
        var stranger = CreateTestProbe();
        coordinator.Tell(new BatchCluster.Cluster.Links.TensorChunk(999, 0, [1f, 2f]), stranger.Ref);
        coordinator.Tell(new BatchCluster.Cluster.Links.TensorTransferStart(5, Reply(work, 0), -7, 0), stranger.Ref);
        coordinator.Tell("a message of no protocol", stranger.Ref);
        coordinator.Tell(Reply(work, initial.Length), worker.Ref);
        var validation = worker.ExpectMsg<TrainingProtocol.Evaluate>();
        Assert.Single(steps);
        coordinator.Tell(new TrainingProtocol.EvaluationDone("run-a", validation.RequestId, validation.Part, 1, 5.0, 3, validation.Rows.Length), worker.Ref);
        var test = worker.ExpectMsg<TrainingProtocol.Evaluate>();
        coordinator.Tell(new TrainingProtocol.EvaluationDone("run-a", test.RequestId, test.Part, 1, 3.0, 6, test.Rows.Length), worker.Ref);
        Assert.Equal(1, (await done.Task.WaitAsync(TimeSpan.FromSeconds(10))).Summary.Steps);
    }

    /// <summary>A share of the wrong size is that worker's failure: never committed, re-planned onto another worker at once.</summary>
    [Fact]
    public void A_share_with_the_wrong_sample_count_is_refused_and_replanned()
    {
        var (a, workA) = ReplannedWhenTheFirstWorkerReplies((work, count) => Reply(work, count, count: work.SampleIds.Length - 1));
        a.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // a failed this step: nothing more for it in it
    }

    /// <summary>A one-step run with workers a and b joined, each holding its share of the first step.</summary>
    private (IActorRef Coordinator, List<StepRecord> Steps, int ParameterCount, TestProbe A, TestProbe B,
        TrainingProtocol.ComputeShare WorkA, TrainingProtocol.ComputeShare WorkB) TwoWorkersAtTheFirstStep()
    {
        var (coordinator, _, steps, initial) = Start(OneStep(2), Settings(minWorkers: 2));
        var a = JoinedWorker(coordinator, "a");
        var b = JoinedWorker(coordinator, "b");
        return (coordinator, steps, initial.Length, a, b, a.ExpectMsg<TrainingProtocol.ComputeShare>(), b.ExpectMsg<TrainingProtocol.ComputeShare>());
    }

    /// <summary>
    /// Two workers take the first step; the first replies as <paramref name="spoil"/> makes it, the second
    /// correctly. The first's result must be its failure: its ids go to the second, at the same version, and nothing commits.
    /// </summary>
    private (TestProbe A, TrainingProtocol.ComputeShare WorkA) ReplannedWhenTheFirstWorkerReplies(
        Func<TrainingProtocol.ComputeShare, int, TrainingProtocol.ShareComputed> spoil)
    {
        var (coordinator, steps, parameterCount, a, b, workA, workB) = TwoWorkersAtTheFirstStep();
        coordinator.Tell(Reply(workB, parameterCount), b.Ref);
        coordinator.Tell(spoil(workA, parameterCount), a.Ref);
        var moved = b.ExpectMsg<TrainingProtocol.ComputeShare>(); // a's ids, now b's
        Assert.Equal(workA.SampleIds.Order(), moved.SampleIds.Order());
        Assert.Equal(0, moved.Parameters.Version);
        Assert.Empty(steps);
        return (a, workA);
    }

    /// <summary>When every worker fails the same step, the run fails with the reason and the step (a decision, not a hang).</summary>
    [Fact]
    public async Task A_step_every_worker_fails_ends_the_run_with_the_reason()
    {
        var (coordinator, done, steps, _) = Start(OneStep(1), Settings(minWorkers: 1));
        var worker = JoinedWorker(coordinator, "w");
        var work = worker.ExpectMsg<TrainingProtocol.ComputeShare>();
        coordinator.Tell(new TrainingProtocol.ShareFailed(work.RunId, work.Step, work.ShareIndex, "input of another shape"), worker.Ref);
        var error = await Assert.ThrowsAsync<RunFailedException>(() => done.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("step 0 cannot be completed", error.Message);
        Assert.Contains("input of another shape", error.Message);
        Assert.Equal(-1, error.LastCommittedStep);
        Assert.False(worker.ExpectMsg<TrainingProtocol.RunEnded>().Succeeded);
        Assert.Empty(steps);
    }

    /// <summary>
    /// An exception inside the coordinator (here from its step callback, as a full disk would throw
    /// from a checkpoint write) is not restarted away: the run fails with the last committed step,
    /// and the workers are told the run is over instead of waiting forever.
    /// </summary>
    [Fact]
    public async Task An_exception_inside_the_coordinator_fails_the_run_and_tells_the_workers()
    {
        var (coordinator, done, steps, initial) = Start(OneStep(1) with { Steps = 3 }, Settings(minWorkers: 1),
            onStep: record => { if (record.Step == 1) throw new IOException("No space left on device"); });
        var worker = JoinedWorker(coordinator, "w");
        for (int i = 0; i < 2; i++)
        {
            var work = worker.ExpectMsg<TrainingProtocol.ComputeShare>();
            coordinator.Tell(Reply(work, initial.Length), worker.Ref);
        }
        var error = await Assert.ThrowsAsync<RunFailedException>(() => done.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("the coordinator failed: No space left on device", error.Message);
        Assert.Equal(1, error.LastCommittedStep);
        Assert.Null(error.Checkpoint);
        Assert.IsType<IOException>(error.InnerException);
        Assert.False(worker.ExpectMsg<TrainingProtocol.RunEnded>().Succeeded);
        Assert.Equal(2, steps.Count);
    }

    [Fact]
    public void A_real_worker_actor_registers_and_returns_the_replicas_gradient_sum()
    {
        TorchRuntime.Initialise(1);
        var worker = Sys.ActorOf(WorkerActor.Props(TestActor, new WorkerSettings("cpu", 1, _ => Data)));
        var registration = ExpectMsg<TrainingProtocol.RegisterWorker>();
        Assert.Equal(TrainingProtocol.Version, registration.ProtocolVersion);
        worker.Tell(new TrainingProtocol.WorkerAccepted("r", Spec));
        Assert.True(ExpectMsg<TrainingProtocol.WorkerReady>().SamplesPerSecond > 0);
        var parameters = ModelFactory.InitialParameters(Model, 4);
        var ids = new[] { 3, 1, 4, 1, 5, 9, 2, 6 };
        worker.Tell(new TrainingProtocol.ComputeShare("r", 0, 0, ids, 3, new TrainingProtocol.ParameterSnapshot(0, parameters)));
        var reply = ExpectMsg<TrainingProtocol.ShareComputed>();

        using var replica = new ModelReplica(Model);
        replica.LoadParameters(parameters);
        var expected = replica.ComputeGradientSum(Data.Train, ids, 3, new float[replica.ParameterCount]);
        Assert.Equal(8, reply.SampleCount);
        Assert.Equal(expected.GradientSum.ToArray(), reply.GradientSum.ToArray());
        Assert.Equal(expected.LossSum, reply.LossSum);
    }

    /// <summary>
    /// The audit sent a worker RunEnded (it exited) and work from a process that was not its
    /// coordinator. A worker now takes work and the end of the run only from the coordinator that
    /// accepted it: a stranger's messages change nothing, and are not answered.
    /// </summary>
    [Fact]
    public async Task A_worker_takes_work_and_the_end_of_the_run_only_from_its_coordinator()
    {
        TorchRuntime.Initialise(1);
        var coordinator = CreateTestProbe("coordinator");
        var stranger = CreateTestProbe("stranger");
        var ended = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var settings = new WorkerSettings("cpu", 1, _ => Data, RegisterAgainWhenCoordinatorStops: false);
        var worker = Sys.ActorOf(WorkerActor.Props(coordinator.Ref, settings, ended));
        coordinator.ExpectMsg<TrainingProtocol.RegisterWorker>();
        stranger.Send(worker, new TrainingProtocol.RunEnded("run-a", false)); // before acceptance: nobody may end it
        coordinator.Send(worker, new TrainingProtocol.WorkerAccepted("run-a", Spec));
        coordinator.FishForMessage(m => m is TrainingProtocol.WorkerReady);

        var parameters = new TrainingProtocol.ParameterSnapshot(0, new float[ModelFactory.LayoutOf(Model).TotalCount]);
        stranger.Send(worker, new TrainingProtocol.ComputeShare("run-a", 0, 0, [0, 1], 2, parameters));
        stranger.Send(worker, new TrainingProtocol.RunEnded("run-a", false));
        coordinator.Send(worker, new TrainingProtocol.ComputeShare("run-a", 0, 1, [2, 3], 2, parameters));
        var result = (TrainingProtocol.ShareComputed)coordinator.FishForMessage(m => m is TrainingProtocol.ShareComputed);
        Assert.Equal(1, result.ShareIndex);
        // The worker handles its mailbox in order: the stranger's messages came before the reply above.
        Assert.False(stranger.HasMessages);
        Assert.False(ended.Task.IsCompleted);

        coordinator.Send(worker, new TrainingProtocol.RunEnded("run-a", true));
        Assert.True(await ended.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>A result whose measurements cannot be true is that worker's failure: its share is re-planned, nothing of it is used.</summary>
    [Fact]
    public void A_result_with_impossible_measurements_is_replanned() =>
        ReplannedWhenTheFirstWorkerReplies((work, count) => Reply(work, count) with { ComputeMilliseconds = double.NaN });

    /// <summary>The audit reported fake evaluation results (more correct than counted): such a part is the worker's failure and moves on.</summary>
    [Fact]
    public void An_evaluation_claiming_more_correct_than_counted_is_replanned()
    {
        var (coordinator, _, parameterCount, a, b, workA, workB) = TwoWorkersAtTheFirstStep();
        coordinator.Tell(Reply(workA, parameterCount), a.Ref);
        coordinator.Tell(Reply(workB, parameterCount), b.Ref);
        // Each worker gets its part, then the audit rows every worker evaluates (a request of their own).
        var partA = a.ExpectMsg<TrainingProtocol.Evaluate>();
        var partB = b.ExpectMsg<TrainingProtocol.Evaluate>();
        Assert.Equal(partA.RequestId, partB.RequestId);
        coordinator.Tell(new TrainingProtocol.EvaluationDone("run-a", partA.RequestId, partA.Part, 1, 1.0, partA.Rows.Length + 5, partA.Rows.Length), a.Ref);
        var moved = b.FishForMessage<TrainingProtocol.Evaluate>(e => e.RequestId == partA.RequestId);
        Assert.Equal(partA.Rows.Order(), moved.Rows.Order());
    }
}

