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
    private static readonly string[] NodeFlags = ["role", "host", "port", "join-timeout", "tls-cert", "tls-ca"];
    // --seed is the training seed of 'train' (the coordinator's); the nodes to join are --seed-nodes
    // in both roles, so one name never means two things.
    private static readonly string[] WorkerFlags = ["seed-nodes", "threads", "device", "data-dir", "testing-slowdown"];
    private static readonly string[] CoordinatorFlags = ["seed-nodes", "min-workers", "start-workers", "standby", "local-workers", "tensor-transport", "data-port"];

    public const string Help = """
        batchcluster node --role coordinator|worker [flags]
          --host H                 address to bind and advertise (default 127.0.0.1, or BATCHCLUSTER_HOST)
          --port P                 TCP port (coordinator default 4053, worker default 0 = any; or BATCHCLUSTER_PORT)
          --seed-nodes HOST:PORT[,…]  nodes to join (or BATCHCLUSTER_SEEDS): a worker's coordinator, required; for a
                                   coordinator an existing cluster, e.g. for --standby (--seed is the training seed)
          --join-timeout SECONDS   give up joining after this long (default 30)
          --tls-cert FILE.pfx      this node's certificate and private key (or BATCHCLUSTER_TLS_CERT; its password in
                                   BATCHCLUSTER_TLS_PASSWORD): with --tls-ca, both channels (Akka and the data plane) run
                                   over TLS and only nodes with a certificate of that authority get in (docs/security.md)
          --tls-ca FILE            the cluster's authority certificate, the only one trusted (or BATCHCLUSTER_TLS_CA);
                                   scripts/make-test-certs.sh DIR makes an authority and node certificates
        coordinator:  every 'train' flag except --workers and --engine, and
                      --start-workers N        ready workers to wait for before the first step (default: --min-workers)
                      --min-workers N          the floor: below it the run pauses at the next step boundary and
                                               resumes when enough workers are back (default 1)
                      --local-workers K        also run K worker actors in this process (their tensors never touch
                                               the wire; they count towards --start-workers; default 0)
                      --tensor-transport dataplane|akka   tensors to and from worker nodes over the data plane, one TCP
                                               connection per worker (default), or inside Akka messages (slow; to compare)
                      --data-port P            the data plane's TCP port (default 0 = any free port)
                      --standby                a second coordinator node (same flags, its own --port, --seed-nodes the first);
                                               if the first dies, the coordinator moves here and resumes from the newest checkpoint
                      with --checkpoint-every, a coordinator that fails is rebuilt from the newest checkpoint (at most 3 times)
        SIGTERM/SIGINT: a worker tells the coordinator (its share is re-planned at once), leaves and exits 0;
                        the coordinator checkpoints (when on), logs RunInterrupted, leaves and exits 143/130
        worker:       --threads T (default all cores), --device cpu|cuda (default cpu), --data-dir DIR
                      --testing-slowdown F     FOR TESTS AND BENCHMARKS: run at 1/F of this worker's speed (F ≥ 1)
        """;

    public static async Task<int> RunAsync(string[] args, CancellationToken cancellation)
    {
        string role = args.SkipWhile(a => a != "--role").Skip(1).FirstOrDefault() ?? "";
        if (role is not (ClusterBootstrap.CoordinatorRole or ClusterBootstrap.WorkerRole))
            throw new UsageException("node needs --role coordinator or --role worker");
        return role == ClusterBootstrap.CoordinatorRole
            ? await RunCoordinatorAsync(args, cancellation)
            : await RunWorkerAsync(args, cancellation);
    }

    private sealed record Endpoint(string Host, int Port, IReadOnlyList<NodeAddress> Seeds, TimeSpan JoinTimeout, ClusterTls? Tls);

    private static Endpoint ReadEndpoint(FlagSet flags, int defaultPort, string seedFlag)
    {
        string host = flags.String("host") ?? Environment.GetEnvironmentVariable("BATCHCLUSTER_HOST") ?? "127.0.0.1";
        if (!ClusterBootstrap.IsHostName(host))
            throw new UsageException($"--host '{host}' is not a host name or IP address (e.g. 127.0.0.1, 10.0.0.5 or node1.example)");
        int port = flags.Int("port", 0, 65535) ?? EnvironmentPort() ?? defaultPort;
        string seedText = flags.String(seedFlag) ?? Environment.GetEnvironmentVariable("BATCHCLUSTER_SEEDS") ?? "";
        var seeds = new List<NodeAddress>();
        foreach (string seed in seedText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            try { seeds.Add(NodeAddress.Parse(seed)); }
            catch (FormatException e) { throw new UsageException($"--{seedFlag}: {e.Message}"); }
            if (!ClusterBootstrap.IsHostName(seeds[^1].Host)) throw new UsageException($"--{seedFlag}: '{seeds[^1].Host}' is not a host name or IP address");
        }
        var timeout = TimeSpan.FromSeconds(flags.Double("join-timeout", 0, minExclusive: true) ?? 30);
        var tls = ReadTls(flags);
        if (tls is null && !IsLoopback(host))
            Console.Error.WriteLine($"batchcluster: warning: listening on {host} without TLS: any process that reaches this port can join the cluster, "
                                    + "read the model and send it gradients; give --tls-cert and --tls-ca (docs/security.md)");
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

    private static bool IsLoopback(string host) =>
        host == "localhost" || (System.Net.IPAddress.TryParse(host, out var address) && System.Net.IPAddress.IsLoopback(address));

    /// <summary>The node's TLS identity from --tls-cert/--tls-ca (or their variables), or null when neither is given.</summary>
    private static ClusterTls? ReadTls(FlagSet flags)
    {
        string? certificate = flags.String("tls-cert") ?? NonEmpty(Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_CERT"));
        string? authority = flags.String("tls-ca") ?? NonEmpty(Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_CA"));
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
    private static Akka.Actor.ActorSystem StartNode(string role, Endpoint endpoint)
    {
        try
        {
            return ClusterBootstrap.Start(role, endpoint.Host, endpoint.Port, endpoint.Tls);
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

    private static async Task<int> RunCoordinatorAsync(string[] args, CancellationToken cancellation)
    {
        var allowed = NodeFlags.Concat(CoordinatorFlags).Concat(TrainOptions.Flags.Except(["workers", "engine"])).ToArray();
        var flags = new FlagSet(args, allowed, "node --role coordinator");
        var endpoint = ReadEndpoint(flags, defaultPort: 4053, seedFlag: "seed-nodes");
        int minWorkers = flags.Int("min-workers", 1, 10_000) ?? 1;
        int startWorkers = flags.Int("start-workers", 1, 10_000) ?? minWorkers;
        if (startWorkers < minWorkers)
            throw new UsageException($"--start-workers {startWorkers} is below --min-workers {minWorkers}: the run would pause before its first step; start with at least {minWorkers}");
        var config = TrainOptions.Parse(flags) with { Workers = startWorkers, Engine = Engine.Actors };
        int localWorkers = flags.Int("local-workers", 0, 256) ?? 0;
        bool useDataPlane = flags.Choice("tensor-transport", "dataplane", "dataplane", "akka") == "dataplane";
        int dataPort = flags.Int("data-port", 0, 65535) ?? 0;
        if (!useDataPlane && config.TransferPrecision != TransferPrecision.Fp32)
            throw new UsageException("--transfer-precision bf16 needs the data plane; drop --tensor-transport akka");
        bool standby = flags.Has("standby");
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
                        var localSettings = new WorkerSettings("cpu", config.EffectiveThreads, _ => host.Data);
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

    private static async Task<int> RunWorkerAsync(string[] args, CancellationToken cancellation)
    {
        if (args.Any(a => a == "--seed" || a.StartsWith("--seed=", StringComparison.Ordinal)))
            throw new UsageException("a worker's nodes to join are --seed-nodes HOST:PORT; --seed is the training seed, which only the coordinator takes");
        var flags = new FlagSet(args, NodeFlags.Concat(WorkerFlags).ToArray(), "node --role worker");
        var endpoint = ReadEndpoint(flags, defaultPort: 0, seedFlag: "seed-nodes");
        if (endpoint.Seeds.Count == 0)
            throw new UsageException("a worker node needs --seed-nodes HOST:PORT (the coordinator's address), or BATCHCLUSTER_SEEDS");
        string device = flags.Choice("device", "cpu", "cpu", "cuda");
        int threads = flags.Int("threads", 1, 256) ?? Environment.ProcessorCount;
        string dataDirectory = flags.String("data-dir", FashionMnist.DefaultDirectory);
        double slowdown = flags.Double("testing-slowdown", 1) ?? 1;
        TorchRuntime.Initialise(threads);
        if (device == "cuda" && !torch.cuda.is_available())
            throw new UsageException("--device cuda: this build uses TorchSharp-cpu and finds no CUDA device here; use --device cpu");

        using var logger = new LoggerConfiguration().MinimumLevel.Information()
            .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {Message:lj}{NewLine}{Exception}").CreateLogger();
        Log.Logger = logger;
        try
        {
            var settings = new WorkerSettings(device, threads, spec => DataSource.Load(spec.Dataset, dataDirectory, spec.ValidationSize, spec.Seed),
                TestingSlowdown: slowdown, Tls: endpoint.Tls);
            if (endpoint.Tls is { } tls) Log.Information("Node identity: {Tls}", tls.Describe());
            if (slowdown > 1) Log.Warning("Testing option --testing-slowdown {Slowdown}: this worker runs at 1/{Slowdown} of its speed", slowdown, slowdown);
            var stopRequested = Task.Delay(Timeout.Infinite, cancellation);
            while (true)
            {
                Akka.Actor.ActorSystem system;
                try
                {
                    system = await JoinAsync(StartNode(ClusterBootstrap.WorkerRole, endpoint), endpoint, cancellation);
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
