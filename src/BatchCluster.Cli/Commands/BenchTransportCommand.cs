using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using BatchCluster.Cli.Options;
using BatchCluster.Cluster;
using BatchCluster.Cluster.Links;
using BatchCluster.Cluster.Protocol;
using BatchCluster.Core.Training;
using static BatchCluster.Core.Numerics.Statistics;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench transport</c>: tensors of 0.8, 4 and 16 MB sent to a second process on
/// loopback and back (a round trip, as parameters go out and a gradient sum comes back), through
/// (a) Akka.Remote with our serializer and chunking (<c>--tensor-transport akka</c>), (b) the data
/// plane as training uses it (frames encoded once per version, checksums, pooled buffers), and
/// (c) a raw TCP socket that only copies bytes. Rates count both directions. Each path runs for
/// about <c>--seconds</c> per size, three rounds in alternating order; medians are reported.
/// The peer is this tool again (<c>bench transport-peer</c>, not for people).
/// </summary>
public static class BenchTransportCommand
{
    private static readonly Option<string?> SizesMb = Opt.Text("sizes-mb", "tensor sizes in MB [default: 0.8,4,16]", "MB[,MB…]");
    private static readonly Option<double?> Seconds = Opt.Number("seconds", "time per path and size [default: 1]", 0.05, 60, helpName: "SECONDS");
    private static readonly Option<string> Precision = Opt.Choice("precision", "data-plane precision", "fp32", "fp32", "bf16");
    private static readonly Option<string?> Tls = Opt.Text("tls",
        "run the data plane over mutual TLS with the certificates in DIR (scripts/make-test-certs.sh DIR coordinator worker-1; password in BATCHCLUSTER_TLS_PASSWORD or DIR/password)", "DIR");
    private static readonly Argument<string[]> PeerArguments = new("peer") { Arity = ArgumentArity.ZeroOrMore };

    public static Command Create()
    {
        var command = new Command("transport", "tensors between two processes: Akka.Remote vs the data plane vs raw TCP") { SizesMb, Seconds, Precision, Tls };
        command.SetAction((parse, cancellation) => RunAsync(parse, cancellation));
        return command;
    }

    /// <summary>The peer process of <c>bench transport</c> (not for people).</summary>
    public static Command CreatePeer()
    {
        var command = new Command("transport-peer", "the peer of 'bench transport'") { PeerArguments };
        command.Hidden = true;
        command.SetAction(parse => RunPeerAsync(parse.GetValue(PeerArguments) ?? []));
        return command;
    }
    private static readonly string[] Paths = ["akka", "dataplane", "raw-tcp"];

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellation)
    {
        double[] sizesMb = (parse.GetValue(SizesMb) ?? "0.8,4,16").Split(',').Select(s =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0 && v <= 256 ? v
                : throw new UsageException($"--sizes-mb takes sizes in MB between 0 and 256, not '{s}'")).ToArray();
        double seconds = parse.GetValue(Seconds) ?? 1;
        var precision = parse.GetValue(Precision) == "bf16" ? TransferPrecision.Bf16 : TransferPrecision.Fp32;
        int[] counts = sizesMb.Select(mb => (int)(mb * 1e6 / sizeof(float))).ToArray();
        string? tlsDirectory = parse.GetValue(Tls) is string dir ? Path.GetFullPath(dir) : null;
        using var tls = tlsDirectory is null ? null : LoadTls(tlsDirectory, "coordinator");

        using var system = ActorSystem.Create("bench", AkkaConfig());
        var inbox = new BlockingQueue<TrainingProtocol.ShareComputed>();
        var receiver = system.ActorOf(Props.Create(() => new Receiver(inbox)), "receiver");
        var arrived = new BlockingQueue<GradientArrived>();
        var servers = counts.Select(n => new DataPlaneServer("127.0.0.1", 0, new DataPlaneRun(FrameHeader.TagOf("bench"), n, precision),
            arrived.Add, lost => Console.Error.WriteLine($"bench transport: data connection lost: {lost.Reason}"), tls)).ToList();
        var raw = new TcpListener(IPAddress.Loopback, 0);
        raw.Start();

        string akkaAddress = ((ExtendedActorSystem)system).Provider.DefaultAddress.ToString();
        string offers = string.Join(";", servers.Select((s, i) => $"{s.Port}:{Convert.ToHexString(s.Expect(0))}:{counts[i]}"));
        using var peer = Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList = { typeof(BenchTransportCommand).Assembly.Location, "bench", "transport-peer", akkaAddress, offers,
                ((IPEndPoint)raw.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture), precision.ToString(), tlsDirectory ?? "-" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        }) ?? throw new CommandFailedException("could not start the peer process");
        peer.OutputDataReceived += (_, _) => { };
        peer.ErrorDataReceived += (_, _) => { };
        peer.BeginOutputReadLine();
        peer.BeginErrorReadLine();
        try
        {
            var echo = (await inbox.TakeAsync(TimeSpan.FromSeconds(60), cancellation)).RunId; // the peer says hello with its echo actor's path
            var echoRef = await system.ActorSelection(echo).ResolveOne(TimeSpan.FromSeconds(10));
            using var rawPeer = await raw.AcceptTcpClientAsync(cancellation);
            rawPeer.NoDelay = true;
            while (servers.Any(s => !s.IsConnected(0))) await Task.Delay(10, cancellation);

            Console.Out.WriteLine($"bench transport: one process to another on loopback and back, {precision} on the data plane{(tls is null ? "" : " over mutual TLS")}, ~{seconds} s per path and size, median of 3 rounds; {Environment.ProcessorCount} cores");
            Console.Out.WriteLine();
            Console.Out.WriteLine("| tensor | path | round trips/s | GB/s (both directions) | Gbit/s | vs raw TCP |");
            Console.Out.WriteLine("| ---: | --- | ---: | ---: | ---: | ---: |");
            var json = new Dictionary<string, object>();
            for (int s = 0; s < counts.Length; s++)
            {
                var random = new Random(s);
                var values = new float[counts[s]];
                for (int i = 0; i < values.Length; i++) values[i] = (float)random.NextDouble() - 0.5f;
                var rates = Paths.ToDictionary(p => p, _ => new List<double>());
                long version = 0;
                for (int round = 0; round < 3; round++)
                {
                    var order = round % 2 == 0 ? Paths : Paths.Reverse().ToArray();
                    foreach (string path in order)
                    {
                        Func<Task> trip = path switch
                        {
                            "akka" => async () =>
                            {
                                TensorTransport.Tell(echoRef, new TrainingProtocol.ComputeShare("bench", 0, 0, [], 1,
                                    new TrainingProtocol.ParameterSnapshot(0, values)), receiver);
                                TensorBuffers.Return((await inbox.TakeAsync(TimeSpan.FromSeconds(60), cancellation)).GradientSum);
                            },
                            "dataplane" => async () =>
                            {
                                servers[s].SendParameters(0, ++version, values);
                                TensorBuffers.Return((await arrived.TakeAsync(TimeSpan.FromSeconds(60), cancellation)).Values);
                            },
                            _ => async () => await RawRoundTripAsync(rawPeer.GetStream(), values.Length * sizeof(float), cancellation),
                        };
                        rates[path].Add(await RoundTripsPerSecondAsync(trip, seconds));
                    }
                }
                long bytes = (long)counts[s] * FrameHeader.BytesPerValue(precision);
                double rawRate = Median(rates["raw-tcp"]) * 2 * counts[s] * sizeof(float);
                foreach (string path in Paths)
                {
                    double trips = Median(rates[path]);
                    double perTrip = 2.0 * (path == "dataplane" ? bytes : counts[s] * sizeof(float));
                    double gbs = trips * perTrip / 1e9;
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {sizesMb[s]} MB | {path} | {trips:F1} | {gbs:F3} | {gbs * 8:F2} | {trips * perTrip / rawRate:F3} |"));
                    if (Math.Abs(sizesMb[s] - 4) < 1e-9) json[$"{path.Replace("-", "_")}_gbps"] = Math.Round(gbs * 8, 3);
                }
            }
            Console.Out.WriteLine();
            if (json.TryGetValue("dataplane_gbps", out var d) && json.TryGetValue("raw_tcp_gbps", out var r))
                json["dataplane_vs_raw_tcp"] = Math.Round((double)d / (double)r, 3);
            json["unit"] = "Gbit/s, 4 MB tensors, both directions";
            Console.Out.WriteLine(JsonSerializer.Serialize(json));
            return 0;
        }
        finally
        {
            await system.Terminate(); // first, so that the peer's exit is no remoting error here
            if (!peer.HasExited) peer.Kill();
            foreach (var server in servers) server.Dispose();
            raw.Stop();
        }
    }

    private static async Task<double> RoundTripsPerSecondAsync(Func<Task> trip, double seconds)
    {
        for (int i = 0; i < 2; i++) await trip(); // warm-up
        var clock = Stopwatch.StartNew();
        int trips = 0;
        while (clock.Elapsed.TotalSeconds < seconds || trips < 3)
        {
            await trip();
            trips++;
        }
        return trips / clock.Elapsed.TotalSeconds;
    }

    private static readonly byte[] RawChunk = new byte[1 << 20];

    private static async Task RawRoundTripAsync(NetworkStream stream, int bytes, CancellationToken cancellation)
    {
        var send = Task.Run(async () =>
        {
            for (int sent = 0; sent < bytes; sent += RawChunk.Length)
                await stream.WriteAsync(RawChunk.AsMemory(0, Math.Min(RawChunk.Length, bytes - sent)), cancellation);
        }, cancellation);
        var buffer = new byte[RawChunk.Length];
        for (int received = 0; received < bytes;)
            received += await stream.ReadAsync(buffer.AsMemory(0, Math.Min(buffer.Length, bytes - received)), cancellation) is > 0 and var n ? n
                : throw new EndOfStreamException("the peer closed the raw connection");
        await send;
    }

    /// <summary>A node identity from a directory of scripts/make-test-certs.sh (its password from the variable, else DIR/password).</summary>
    private static Cluster.Security.ClusterTls LoadTls(string directory, string node)
    {
        string? password = Environment.GetEnvironmentVariable("BATCHCLUSTER_TLS_PASSWORD");
        if (string.IsNullOrEmpty(password) && File.Exists(Path.Combine(directory, "password"))) password = File.ReadAllText(Path.Combine(directory, "password")).Trim();
        try
        {
            return Cluster.Security.ClusterTls.Load(Path.Combine(directory, node + ".pfx"), password, Path.Combine(directory, "ca.crt"));
        }
        catch (Cluster.Security.TlsConfigurationException e)
        {
            throw new UsageException($"--tls {directory}: {e.Message} (make the certificates with scripts/make-test-certs.sh {directory} coordinator worker-1)");
        }
    }

    /// <summary>The peer: echoes every tensor back on the path it came by.</summary>
    public static async Task<int> RunPeerAsync(string[] args)
    {
        if (args.Length != 5) throw new UsageException("bench transport-peer is started by 'bench transport', not by hand");
        var precision = Enum.Parse<TransferPrecision>(args[3]);
        using var tls = args[4] == "-" ? null : LoadTls(args[4], "worker-1");
        using var system = ActorSystem.Create("bench", AkkaConfig());
        var echo = system.ActorOf(Props.Create(() => new Echo()), "echo");
        var clients = new List<DataPlaneClient>();
        foreach (string offer in args[1].Split(';'))
        {
            var parts = offer.Split(':');
            int count = int.Parse(parts[2], CultureInfo.InvariantCulture);
            DataPlaneClient? client = null;
            client = DataPlaneClient.Connect(new DataPlaneOffer("127.0.0.1", int.Parse(parts[0], CultureInfo.InvariantCulture), Convert.FromHexString(parts[1]), precision),
                new DataPlaneRun(FrameHeader.TagOf("bench"), count, precision),
                p =>
                {
                    client!.SendGradient(p.Version, p.Version, 0, p.Values);
                    TensorBuffers.Return(p.Values);
                },
                reason => Environment.Exit(0), tls);
            clients.Add(client);
        }
        using var raw = new TcpClient { NoDelay = true };
        await raw.ConnectAsync(IPAddress.Loopback, int.Parse(args[2], CultureInfo.InvariantCulture));
        // Hello: an empty result whose run id is the echo actor's address, so the measuring side can resolve it.
        system.ActorSelection($"{args[0]}/user/receiver").Tell(new TrainingProtocol.ShareComputed(
            echo.Path.ToStringWithAddress(((ExtendedActorSystem)system).Provider.DefaultAddress), 0, 0, 0, 0, 0, ReadOnlyMemory<float>.Empty, 0, 0, 0, 0), echo);
        var stream = raw.GetStream();
        var buffer = new byte[1 << 20];
        while (true)
        {
            int n = await stream.ReadAsync(buffer);
            if (n == 0) return 0;
            await stream.WriteAsync(buffer.AsMemory(0, n));
        }
    }

    private static Config AkkaConfig() =>
        ConfigurationFactory.ParseString("akka.actor.provider = remote\nakka.remote.dot-netty.tcp.port = 0\nakka.loglevel = WARNING")
            .WithFallback(ClusterConfigFiles.Load("cluster.hocon"))
            .WithFallback(ClusterConfigFiles.Load("common.hocon"));

    /// <summary>The measuring side's mailbox: reassembles chunked replies and hands them to the benchmark loop.</summary>
    private sealed class Receiver : ReceiveActor
    {
        public Receiver(BlockingQueue<TrainingProtocol.ShareComputed> inbox)
        {
            var reassembly = new TensorReassembly();
            var log = Context.GetLogger();
            Receive<TensorTransferStart>(start =>
            {
                reassembly.ExpectedLength = start.TotalLength; // the benchmark's own peer, sweeping sizes: trusted (a node never does this)
                reassembly.Deliver(start, Self, Sender, log);
            });
            Receive<TensorChunk>(chunk => reassembly.Deliver(chunk, Self, Sender, log));
            Receive<TrainingProtocol.ShareComputed>(inbox.Add);
        }
    }

    /// <summary>The peer's actor: parameters in, a gradient of the same size back, as a worker would.</summary>
    private sealed class Echo : ReceiveActor
    {
        public Echo()
        {
            var reassembly = new TensorReassembly();
            var log = Context.GetLogger();
            Receive<TensorTransferStart>(start =>
            {
                reassembly.ExpectedLength = start.TotalLength; // the benchmark's own peer, sweeping sizes: trusted (a node never does this)
                reassembly.Deliver(start, Self, Sender, log);
            });
            Receive<TensorChunk>(chunk => reassembly.Deliver(chunk, Self, Sender, log));
            Receive<TrainingProtocol.ComputeShare>(share =>
            {
                TensorTransport.Tell(Sender, new TrainingProtocol.ShareComputed("bench", 0, 0, 0, 1, 0, share.Parameters.Values, 0, 0, 0, 0), Self);
                TensorBuffers.Return(share.Parameters.Values);
            });
        }
    }

    private sealed class BlockingQueue<T>
    {
        private readonly System.Threading.Channels.Channel<T> _channel = System.Threading.Channels.Channel.CreateUnbounded<T>();

        public void Add(T item) => _channel.Writer.TryWrite(item);

        public async Task<T> TakeAsync(TimeSpan timeout, CancellationToken cancellation)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            limit.CancelAfter(timeout);
            try
            {
                return await _channel.Reader.ReadAsync(limit.Token);
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                throw new CommandFailedException($"bench transport: no reply from the peer within {timeout.TotalSeconds:F0} s");
            }
        }
    }
}
