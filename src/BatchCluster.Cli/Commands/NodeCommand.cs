using System.CommandLine;
using BatchCluster.Cli.Options;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Security;
using BatchCluster.Core.Checkpoints;
using BatchCluster.Core.Data;
using BatchCluster.Core.Native;
using BatchCluster.Core.Training;
using Serilog;
using TorchSharp;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster node</c>: one node of a multi-node cluster. A coordinator node hosts the
/// coordinator singleton, runs the configured training once enough workers are ready and prints
/// the summary line; a worker node joins, registers, works until the run ends, then exits.
/// Host, port and seeds come from flags, else BATCHCLUSTER_HOST, BATCHCLUSTER_PORT, BATCHCLUSTER_SEEDS.
/// </summary>
public static class NodeCommand
{
    /// <summary>The flags of both roles, each declared once; the coordinator also takes every 'train' flag except --workers and --engine.</summary>
    private sealed class NodeOptions
    {
        public Option<string?> Role { get; } = Opt.Text("role", "coordinator|worker (required)", "coordinator|worker");
        public Option<string?> Host { get; } = Opt.Text("host", "address to bind and advertise [default: 127.0.0.1, or BATCHCLUSTER_HOST]", "H");
        public Option<int?> Port { get; } = Opt.Int("port", "TCP port [default: coordinator 4053, worker 0 = any; or BATCHCLUSTER_PORT]", 0, 65535, "P");
        // --seed is the training seed of 'train' (the coordinator's); the nodes to join are --seed-nodes
        // in both roles, so one name never means two things.
        public Option<string?> SeedNodes { get; } = Opt.Text("seed-nodes",
            "nodes to join (or BATCHCLUSTER_SEEDS): a worker's coordinator, required; for a coordinator an existing cluster, e.g. for --standby", "HOST:PORT[,…]");
        public Option<double?> JoinTimeout { get; } = Opt.Number("join-timeout", "give up joining after this long [default: 30]", 0, minExclusive: true, helpName: "SECONDS");
        public Option<string?> TlsCert { get; } = Opt.Text("tls-cert",
            "this node's certificate and key (or BATCHCLUSTER_TLS_CERT; password in BATCHCLUSTER_TLS_PASSWORD): with --tls-ca, mutual TLS on both channels (docs/security.md)", "FILE.pfx");
        public Option<string?> TlsCa { get; } = Opt.Text("tls-ca",
            "the cluster's authority certificate, the only one trusted (or BATCHCLUSTER_TLS_CA); 'batchcluster certs' makes one", "FILE");
        public Option<bool> Insecure { get; } = Opt.Switch("insecure",
            "listen beyond loopback without TLS (a trusted, closed network only): anyone who reaches the port can join, read the model, send gradients and down nodes");
        // coordinator
        public Option<int?> StartWorkers { get; } = Opt.Int("start-workers", "(coordinator) ready workers to wait for before the first step [default: --min-workers]", 1, 10_000);
        public Option<int?> MinWorkers { get; } = Opt.Int("min-workers",
            "(coordinator) the floor: below it the run pauses at the next step boundary and resumes when enough workers are back [default: 1]", 1, 10_000);
        public Option<int?> LocalWorkers { get; } = Opt.Int("local-workers",
            "(coordinator) also run K worker actors in this process (their tensors never touch the wire) [default: 0]", 0, 256, "K");
        public Option<string> TensorTransport { get; } = Opt.Choice("tensor-transport",
            "(coordinator) tensors to and from worker nodes over the data plane, or inside Akka messages (slow; to compare)", "dataplane", "dataplane", "akka");
        public Option<int?> DataPort { get; } = Opt.Int("data-port", "(coordinator) the data plane's TCP port [default: 0 = any free port]", 0, 65535, "P");
        public Option<bool> Standby { get; } = Opt.Switch("standby",
            "(coordinator) a second coordinator node (same flags, its own --port, --seed-nodes the first): takes over from the newest checkpoint if the first dies");
        // worker
        public Option<double?> TestingSlowdown { get; } = Opt.Number("testing-slowdown",
            "(worker) FOR TESTS AND BENCHMARKS: run at 1/F of this worker's speed (F ≥ 1)", 1, helpName: "F");
        public Option<string?> TestingRingFault { get; } = Opt.Text("testing-ring-fault",
            "(worker) FOR TESTS: in the ring reduction of step S, kill (SIGKILL) or stop (SIGSTOP) this process mid reduce-scatter or mid all-gather",
            "kill|stop@reduce|gather@S");
        public Option<string?> TestingMisbehave { get; } = Opt.Text("testing-misbehave",
            "(worker) FOR TESTS AND THE CHAOS RUN: act as a bad member would — NaN gradients, never answer, lie about speed, fake evaluations, gradients 1e6 too large, a lied gradient norm or half-share norm, or answers larger than any node's frame limit",
            "nan|silent|speed-lie|fake-eval|huge|norm-lie|half-norm-lie|oversized-frames");
        public TrainOptions Train { get; } = new(withEngine: false);
        public MetricsOptions Metrics { get; } = new();

        public Option[] CoordinatorOnly => [StartWorkers, MinWorkers, LocalWorkers, TensorTransport, DataPort, Standby];
        public Option[] WorkerOnly => [TestingSlowdown, TestingRingFault, TestingMisbehave];

        public IEnumerable<Option> All => new Option[] { Role, Host, Port, SeedNodes, JoinTimeout, TlsCert, TlsCa, Insecure }
            .Concat(CoordinatorOnly).Concat(WorkerOnly).Concat(Metrics.All).Concat(Train.All);
    }

    public static Command Create()
    {
        var options = new NodeOptions();
        var command = new Command("node", """
            one node of a multi-node cluster. A coordinator node hosts the coordinator and takes every 'train' flag
            except --workers and --engine (its --threads are libtorch threads, default cores); a worker node takes
            --seed-nodes, --threads (default all cores), --data-dir, --device. SIGTERM/SIGINT: a worker tells the
            coordinator (its share moves at once), leaves and exits 0; the coordinator checkpoints (when on), logs
            RunInterrupted, leaves and exits 143/130. With --checkpoint-every a failed coordinator is rebuilt from the
            newest checkpoint (at most 3 times).
            """);
        foreach (var option in options.All) command.Options.Add(option);
        // Which flags a role takes is checked while parsing, so it is reported before any value of a flag the role does not take.
        command.Validators.Add(result =>
        {
            if (RoleProblem(options, result) is { } problem) result.AddError(problem);
        });
        command.SetAction((r, cancellation) => RunAsync(options, r, cancellation));
        return command;
    }

    private static string? RoleProblem(NodeOptions options, System.CommandLine.Parsing.CommandResult result)
    {
        bool Given(Option option) => result.GetResult(option) is { Implicit: false };
        string role = result.GetResult(options.Role)?.Tokens.LastOrDefault()?.Value ?? "";
        if (role is not (ClusterBootstrap.CoordinatorRole or ClusterBootstrap.WorkerRole))
            return "node needs --role coordinator or --role worker";
        if (role == ClusterBootstrap.WorkerRole && Given(options.Train.Seed))
            return "a worker's nodes to join are --seed-nodes HOST:PORT; --seed is the training seed, which only the coordinator takes";
        var others = role == ClusterBootstrap.CoordinatorRole
            ? options.WorkerOnly
            : options.CoordinatorOnly.Concat(options.Train.All.Where(o => o != options.Train.Threads && o != options.Train.DataDir && o != options.Train.Device)).ToArray();
        return others.FirstOrDefault(Given) is { } misplaced ? $"{misplaced.Name} does not apply to --role {role} (see 'batchcluster node --help')" : null;
    }

    private static async Task<int> RunAsync(NodeOptions options, ParseResult r, CancellationToken cancellation)
    {
        using var metrics = options.Metrics.Start(r, r.GetValue(options.Role)!);
        return r.GetValue(options.Role) == ClusterBootstrap.CoordinatorRole
            ? await RunCoordinatorAsync(options, r, cancellation)
            : await RunWorkerAsync(options, r, cancellation);
    }

    private sealed record Endpoint(string Host, int Port, IReadOnlyList<NodeAddress> Seeds, TimeSpan JoinTimeout, ClusterTls? Tls);

    private static Endpoint ReadEndpoint(NodeOptions options, ParseResult r, int defaultPort)
    {
        const string seedFlag = "seed-nodes";
        string host = r.GetValue(options.Host) ?? Environment.GetEnvironmentVariable("BATCHCLUSTER_HOST") ?? "127.0.0.1";
        if (!ClusterBootstrap.IsHostName(host))
            throw new UsageException($"--host '{host}' is not a host name or IP address (e.g. 127.0.0.1, 10.0.0.5 or node1.example)");
        int port = r.GetValue(options.Port) ?? EnvironmentPort() ?? defaultPort;
        string seedText = r.GetValue(options.SeedNodes) ?? Environment.GetEnvironmentVariable("BATCHCLUSTER_SEEDS") ?? "";
        var seeds = new List<NodeAddress>();
        foreach (string seed in seedText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try { seeds.Add(NodeAddress.Parse(seed)); }
            catch (FormatException e) { throw new UsageException($"--{seedFlag}: {e.Message}"); }
            if (!ClusterBootstrap.IsHostName(seeds[^1].Host)) throw new UsageException($"--{seedFlag}: '{seeds[^1].Host}' is not a host name or IP address");
        }
        var timeout = TimeSpan.FromSeconds(r.GetValue(options.JoinTimeout) ?? 30);
        var tls = ReadTls(options, r);
        if (tls is null && !ClusterBootstrap.IsLoopback(host))
        {
            // Secure by default (docs/security.md): without TLS Akka takes "down this node" from anyone who reaches the port.
            const string whatAnyoneCanDo = "any process that reaches it can join the cluster, read the model, send it gradients and down its nodes";
            if (!r.GetValue(options.Insecure))
                throw new UsageException($"--host {host} listens beyond loopback without TLS, where {whatAnyoneCanDo}; give --tls-cert and --tls-ca "
                                         + "('batchcluster certs init DIR' and 'certs add DIR NODE…' make them, docs/security.md), or --insecure on a closed network you trust");
            Console.Error.WriteLine($"batchcluster: warning: --insecure: listening on {host} without TLS; {whatAnyoneCanDo} (docs/security.md)");
        }
        return new Endpoint(host, port, seeds, timeout, tls);
    }

    private static int? EnvironmentPort()
    {
        string? text = Environment.GetEnvironmentVariable("BATCHCLUSTER_PORT");
        if (string.IsNullOrEmpty(text)) return null;
        if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int port) || port > 65535)
            throw new UsageException($"BATCHCLUSTER_PORT must be a whole number from 0 to 65535, not '{text}'; fix or unset it");
        return port;
    }

    /// <summary>The node's TLS identity from --tls-cert/--tls-ca (or their variables), or null when neither is given.</summary>
    private static ClusterTls? ReadTls(NodeOptions options, ParseResult r)
    {
        string? certificate = r.GetValue(options.TlsCert) ?? NonEmpty(Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_CERT"));
        string? authority = r.GetValue(options.TlsCa) ?? NonEmpty(Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_CA"));
        if (certificate is null && authority is null) return null;
        if (certificate is null || authority is null)
            throw new UsageException("--tls-cert and --tls-ca go together (or BATCHCLUSTER_TLS_CERT and BATCHCLUSTER_TLS_CA): this node's certificate and the authority it trusts");
        try
        {
            return ClusterTls.Load(certificate, Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_PASSWORD"), authority);
        }
        catch (TlsConfigurationException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static string? NonEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;

    /// <summary>Starts the node's actor system: it listens from here on (before anything is written for the run).</summary>
    private static Akka.Actor.ActorSystem StartNode(string role, Endpoint endpoint, Misbehaviour misbehaviour = Misbehaviour.None)
    {
        try
        {
            // A bad member that sends oversized frames raises its own limit, so that the frames leave it and reach the coordinator.
            var overrides = misbehaviour == Misbehaviour.OversizedFrames
                ? Akka.Configuration.ConfigurationFactory.ParseString("akka.remote.dot-netty.tcp.maximum-frame-size = 64 MiB") : null;
            return ClusterBootstrap.Start(role, endpoint.Host, endpoint.Port, endpoint.Tls, overrides);
        }
        catch (NodeBindException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static async Task<Akka.Actor.ActorSystem> JoinAsync(Akka.Actor.ActorSystem system, Endpoint endpoint, CancellationToken cancellation)
    {
        bool joined;
        try
        {
            joined = await ClusterBootstrap.JoinAsync(system, endpoint.Seeds, endpoint.JoinTimeout, cancellation);
        }
        catch (OperationCanceledException)
        {
            await system.Terminate();
            throw;
        }
        if (joined) return system;
        await system.Terminate();
        throw new CommandFailedException(endpoint.Seeds.Count == 0
            ? $"could not form a cluster at {endpoint.Host}:{endpoint.Port} within {endpoint.JoinTimeout.TotalSeconds:F0} s"
            : $"no seed node answered at {string.Join(", ", endpoint.Seeds)} within {endpoint.JoinTimeout.TotalSeconds:F0} s; is the coordinator running there"
              + (endpoint.Tls is null ? "? (--seed-nodes, --join-timeout)" : ", with TLS and certificates of the same authority? (--seed-nodes, --tls-cert, --tls-ca)"));
    }

    private static async Task<int> RunCoordinatorAsync(NodeOptions options, ParseResult r, CancellationToken cancellation)
    {
        var endpoint = ReadEndpoint(options, r, defaultPort: 4053);
        int minWorkers = r.GetValue(options.MinWorkers) ?? 1;
        int startWorkers = r.GetValue(options.StartWorkers) ?? minWorkers;
        if (startWorkers < minWorkers)
            throw new UsageException($"--start-workers {startWorkers} is below --min-workers {minWorkers}: the run would pause before its first step; start with at least {minWorkers}");
        var config = options.Train.ToConfig(r) with { Workers = startWorkers, Engine = Engine.Actors };
        int localWorkers = r.GetValue(options.LocalWorkers) ?? 0;
        bool useDataPlane = r.GetValue(options.TensorTransport) == "dataplane";
        int dataPort = r.GetValue(options.DataPort) ?? 0;
        if (!useDataPlane && config.TransferPrecision != TransferPrecision.Fp32)
            throw new UsageException("--transfer-precision bf16 needs the data plane; drop --tensor-transport akka");
        if (config.Reduce == ReduceTopology.Ring && !useDataPlane)
            throw new UsageException("--reduce ring needs the data plane; drop --tensor-transport akka");
        if (config.Reduce == ReduceTopology.Ring && localWorkers > 0)
            throw new UsageException("--reduce ring takes workers in other processes only; drop --local-workers and start them as worker nodes (node --role worker)");
        bool standby = r.GetValue(options.Standby);
        if (standby && endpoint.Seeds.Count == 0)
            throw new UsageException("--standby needs --seed-nodes HOST:PORT of the running coordinator node");
        if (standby && config.CheckpointEvery == 0)
            throw new UsageException("--standby needs --checkpoint-every K (the same checkpoints as the running coordinator) to resume from");
        var host = RunHost.Prepare(config, refuseExistingCheckpoints: !standby);
        // Listen before the run's directory exists: a port in use costs nothing (not even the run id).
        var node = StartNode(ClusterBootstrap.CoordinatorRole, endpoint);
        bool joinStarted = false;
        try
        {
            return await host.RunAsync("cluster", startWorkers, async (events, onStep) =>
            {
                joinStarted = true;
                if (endpoint.Tls is { } tls) Log.Information("Node identity: {Tls}", tls.Describe());
                var system = await JoinAsync(node, endpoint, cancellation);
                try
                {
                    Log.Information("Coordinator node up at {Address}; waiting for {StartWorkers} workers", Akka.Cluster.Cluster.Get(system).SelfAddress, startWorkers);
                    int trainSamples = host.Data.Train.Count;
                    // Built when the singleton starts on this node: at once on the first coordinator node,
                    // only after a take-over on a standby node, which then resumes from the newest checkpoint.
                    TrainingSession FirstSession() =>
                        standby && CheckpointStore.Of(config).Files().Count > 0
                            ? TrainingSession.FromNewestCheckpoint(config, trainSamples, host.Initial, events)
                            : new TrainingSession(config, trainSamples, host.Initial, events, host.ResumeFrom);
                    var completion = new TaskCompletionSource<RunResult>(TaskCreationOptions.RunContinuationsAsynchronously);
                    var settings = new CoordinatorSettings(startWorkers, minWorkers, TimeSpan.FromSeconds(config.StepDeadlineSeconds), RunSpecs.Of(config),
                        host.Data.Validation.Count, host.Data.Test.Count, WatchClusterMembership: true, config.TrainEvaluationCount(trainSamples),
                        useDataPlane, dataPort, endpoint.Tls);
                    var run = new CoordinatorRun(FirstSession,
                        config.CheckpointEvery > 0 ? () => TrainingSession.FromNewestCheckpoint(config, trainSamples, host.Initial, events) : null,
                        settings, host.LogPath, completion, onStep);
                    var endedElsewhere = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                    system.ActorOf(RunWatch.Props(endedElsewhere), CoordinatorActor.RunWatchName);
                    ClusterBootstrap.StartCoordinatorSingleton(system, RunSupervisor.Props(run));
                    if (localWorkers > 0)
                    {
                        // Beside the coordinator: same process, so their tensors are shared arrays (no copy, no wire).
                        var proxy = ClusterBootstrap.CoordinatorProxy(system);
                        var localSettings = new WorkerSettings(Gpu.ComputeBackends.NameOf(config.Device), config.EffectiveThreads, _ => host.Data,
                            CreateReplica: Gpu.ComputeBackends.ReplicasFor(config.Device));
                        for (int i = 0; i < localWorkers; i++) system.ActorOf(WorkerActor.Props(proxy, localSettings), $"local-worker-{i}");
                    }
                    var stopRequested = Task.Delay(Timeout.Infinite, cancellation);
                    var first = await Task.WhenAny(completion.Task, endedElsewhere.Task, stopRequested);
                    if (first == endedElsewhere.Task) throw new RunEndedElsewhereException();
                    if (first == stopRequested)
                    {
                        // Where the coordinator runs, it checkpoints and ends the run at once; a standby has nothing to save.
                        system.ActorSelection(ClusterBootstrap.CoordinatorSingletonPath).Tell(new CoordinatorActor.Interrupt("stop requested"), Akka.Actor.ActorRefs.NoSender);
                        if (await Task.WhenAny(completion.Task, Task.Delay(TimeSpan.FromSeconds(5))) != completion.Task)
                            throw new OperationCanceledException("the standby coordinator node stopped", cancellation);
                    }
                    return await completion.Task;
                }
                finally
                {
                    await ClusterBootstrap.LeaveAsync(system);
                }
            });
        }
        finally
        {
            if (!joinStarted) await node.Terminate(); // the run never started (its log could not be opened)
        }
    }

    /// <summary>
    /// --testing-ring-fault kill|stop@reduce|gather@STEP: the ring member's test hook that signals this
    /// very process at that point (SIGKILL: a crash; SIGSTOP: a machine that stops answering).
    /// </summary>
    private static Action<long, string>? RingFault(string? text)
    {
        if (text is null) return null;
        var parts = text.Split('@');
        if (parts.Length != 3 || parts[0] is not ("kill" or "stop") || parts[1] is not ("reduce" or "gather")
            || !long.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long step))
            throw new UsageException($"--testing-ring-fault takes kill|stop@reduce|gather@STEP, e.g. kill@reduce@10, not '{text}'");
        int signal = parts[0] == "kill" ? Processes.ChildProcess.SigKill : Processes.ChildProcess.SigStop;
        string phase = parts[1];
        return (at, where) =>
        {
            if (at == step && where == phase) Processes.ChildProcess.SignalProcess(Environment.ProcessId, signal);
        };
    }

    private static Misbehaviour MisbehaviourOf(string? text) => text switch
    {
        null => Misbehaviour.None,
        "nan" => Misbehaviour.NanGradients,
        "silent" => Misbehaviour.Silent,
        "speed-lie" => Misbehaviour.SpeedLie,
        "fake-eval" => Misbehaviour.FakeEvaluation,
        "huge" => Misbehaviour.HugeGradients,
        "norm-lie" => Misbehaviour.NormLie,
        "half-norm-lie" => Misbehaviour.HalfNormLie,
        "oversized-frames" => Misbehaviour.OversizedFrames,
        _ => throw new UsageException($"--testing-misbehave takes nan, silent, speed-lie, fake-eval, huge, norm-lie, half-norm-lie or oversized-frames, not '{text}'"),
    };

    private static async Task<int> RunWorkerAsync(NodeOptions options, ParseResult r, CancellationToken cancellation)
    {
        var endpoint = ReadEndpoint(options, r, defaultPort: 0);
        if (endpoint.Seeds.Count == 0)
            throw new UsageException("a worker node needs --seed-nodes HOST:PORT (the coordinator's address), or BATCHCLUSTER_SEEDS");
        string device = r.GetValue(options.Train.Device) ?? "cpu";
        int threads = r.GetValue(options.Train.Threads) ?? Environment.ProcessorCount;
        string dataDirectory = r.GetValue(options.Train.DataDir) ?? FashionMnist.DefaultDirectory;
        double slowdown = r.GetValue(options.TestingSlowdown) ?? 1;
        var ringFault = RingFault(r.GetValue(options.TestingRingFault));
        var misbehaviour = MisbehaviourOf(r.GetValue(options.TestingMisbehave));
        TorchRuntime.Initialise(threads);
        string deviceName = Options.DeviceOption.Check(device, null);

        using var logger = new LoggerConfiguration().MinimumLevel.Information()
            .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}").CreateLogger();
        Log.Logger = logger;
        try
        {
            var settings = new WorkerSettings(deviceName, threads, spec => DataSource.Load(spec.Dataset, dataDirectory, spec.ValidationSize, spec.Seed),
                TestingSlowdown: slowdown, Tls: endpoint.Tls, CreateReplica: Gpu.ComputeBackends.ReplicasFor(device), TestingRingHook: ringFault,
                TestingMisbehaviour: misbehaviour);
            if (misbehaviour != Misbehaviour.None) Log.Warning("Testing option --testing-misbehave: this worker acts as a bad member ({Misbehaviour})", misbehaviour);
            if (endpoint.Tls is { } tls) Log.Information("Node identity: {Tls}", tls.Describe());
            if (slowdown > 1) Log.Warning("Testing option --testing-slowdown {Slowdown}: this worker runs at 1/{Slowdown} of its speed", slowdown, slowdown);
            var stopRequested = Task.Delay(Timeout.Infinite, cancellation);
            while (true)
            {
                Akka.Actor.ActorSystem system;
                try
                {
                    system = await JoinAsync(StartNode(ClusterBootstrap.WorkerRole, endpoint, misbehaviour), endpoint, cancellation);
                }
                catch (OperationCanceledException)
                {
                    Log.Information("Stop requested while joining; exiting");
                    return 0;
                }
                Log.Information("Worker node up at {Address} ({Device}, {Threads} threads); registering with the coordinator",
                    Akka.Cluster.Cluster.Get(system).SelfAddress, device, threads);
                var runEnded = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                var coordinatorLost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                system.ActorOf(CoordinatorPresence.Props(coordinatorLost), "coordinator-presence");
                var worker = system.ActorOf(WorkerActor.Props(ClusterBootstrap.CoordinatorProxy(system), settings, runEnded), "worker");
                var first = await Task.WhenAny(stopRequested, runEnded.Task, coordinatorLost.Task, system.WhenTerminated);
                if (first == stopRequested)
                {
                    // SIGTERM/SIGINT: say so (the coordinator re-plans this worker's share at once), then leave.
                    Log.Information("Stop requested; telling the coordinator and leaving the cluster");
                    worker.Tell(WorkerActor.Leave.Instance, Akka.Actor.ActorRefs.NoSender);
                    await ClusterBootstrap.LeaveAsync(system);
                    return 0;
                }
                if (first == runEnded.Task)
                {
                    bool succeeded;
                    try
                    {
                        succeeded = await runEnded.Task;
                    }
                    catch (InvalidOperationException e)
                    {
                        await ClusterBootstrap.LeaveAsync(system);
                        throw new CommandFailedException(e.Message);
                    }
                    Log.Information("The run ended ({Outcome}); leaving the cluster", succeeded ? "completed" : "failed");
                    await ClusterBootstrap.LeaveAsync(system);
                    return succeeded ? 0 : 1;
                }
                // The coordinator is gone (or this node was downed): start afresh and join the seeds
                // again, so a coordinator restarted with --resume finds this worker.
                Log.Warning("The cluster lost its coordinator; rejoining through {Seeds}", string.Join(", ", endpoint.Seeds));
                await system.Terminate();
            }
        }
        finally
        {
            Log.Logger = Serilog.Core.Logger.None;
        }
    }
}
