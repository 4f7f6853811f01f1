using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using BatchCluster.Cli.Options;
using BatchCluster.Cli.Processes;
using BatchCluster.Cluster.Nodes;
using BatchCluster.Cluster.Protocol;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench flood</c>: a process that never joined the cluster sends a coordinator node
/// registrations as fast as Akka.Remote carries them (no TLS: anyone on the network can). It measures
/// what the flood costs the coordinator process: its resident memory and the bytes of log it writes
/// (console and event log), before the flood and once the coordinator has read the last message.
/// docs/robustness.md, "Floods": the goal is under 20 MB and under 1 MB for 200,000 registrations.
/// </summary>
public static class BenchFloodCommand
{
    private static readonly Option<int?> Messages = Opt.Int("messages", "registrations to send [default: 200000]", 1, helpName: "N");

    public static Command Create()
    {
        var command = new Command("flood", "a non-member floods a coordinator node with registrations: its memory and log growth") { Messages };
        command.SetAction((r, cancellation) => RunAsync(r.GetValue(Messages) ?? 200_000, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(int messages, CancellationToken cancellation)
    {
        string dir = Directory.CreateTempSubdirectory("batchcluster-flood-").FullName;
        int port = LoopbackPorts.Free();
        // A coordinator that waits for a worker that never comes: it only has the flood to handle.
        using var coordinator = new ChildProcess([
            "node", "--role", "coordinator", "--port", port.ToString(CultureInfo.InvariantCulture), "--start-workers", "1",
            "--dataset", "synthetic", "--steps", "1", "--runs-dir", dir, "--run-id", "flood"]);
        var peer = NonMemberPeer.Start();
        try
        {
            await coordinator.WaitForLineAsync(l => l.Contains("Coordinator node up"), TimeSpan.FromMinutes(3), cancellation);
            var target = await NonMemberPeer.ResolveOnceStartedAsync(peer,
                $"akka.tcp://{ClusterBootstrap.SystemName}@127.0.0.1:{port}{ClusterBootstrap.CoordinatorSingletonPath}", TimeSpan.FromMinutes(1));
            await Task.Delay(TimeSpan.FromSeconds(3), cancellation); // let start-up settle before the first measurement
            long residentBefore = coordinator.ResidentBytes() ?? 0;
            long logBefore = LogBytes(coordinator, dir);

            var sender = peer.ActorOf(Props.Empty, "worker");
            var registration = new TrainingProtocol.RegisterWorker("flood", "nowhere", "cpu", 1, TrainingProtocol.Version);
            // Two floods: what the first leaves is the cost (buffers, heap grown for the burst); a second that adds much
            // more would be a leak (memory kept per message).
            var rounds = new List<(double Seconds, double ResidentMb, long LogBytes)>();
            for (int round = 0; round < 2; round++)
            {
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < messages; i++) target.Tell(registration, sender);
                // Messages from one sender to one actor arrive in order: once this is answered, every registration was read.
                await target.Ask<ActorIdentity>(new Identify("flood-done"), TimeSpan.FromMinutes(5), cancellation);
                double seconds = clock.Elapsed.TotalSeconds;
                await Task.Delay(TimeSpan.FromSeconds(5), cancellation); // the attacker has gone quiet; the log's last lines reach the console
                rounds.Add((seconds, ((coordinator.ResidentBytes() ?? 0) - residentBefore) / (1024.0 * 1024.0), LogBytes(coordinator, dir) - logBefore));
            }
            double residentMb = rounds[0].ResidentMb;
            long logBytes = rounds[0].LogBytes;
            bool met = residentMb < 20 && logBytes < 1024 * 1024;
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"flood: {messages} registrations from a non-member in {rounds[0].Seconds:F1} s; coordinator resident {residentMb:+0.0;-0.0;+0.0} MB, log +{logBytes} bytes 5 s after (goal: under 20 MB and 1 MB: {(met ? "met" : "NOT met")}); after a second flood: {rounds[1].ResidentMb:+0.0;-0.0;+0.0} MB, +{rounds[1].LogBytes} bytes in all"));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{{\"flood_messages\": {messages}, \"flood_rss_growth_mb\": {residentMb:F1}, \"flood_log_growth_bytes\": {logBytes}, \"flood_seconds\": {rounds[0].Seconds:F1}, \"flood_rss_growth_mb_after_two\": {rounds[1].ResidentMb:F1}}}"));
            return 0;
        }
        finally
        {
            await peer.Terminate();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>What the coordinator has logged so far: its console lines and its event log.</summary>
    private static long LogBytes(ChildProcess coordinator, string dir)
    {
        long console = coordinator.Output.Sum(l => (long)l.Length + 1);
        string events = Path.Combine(dir, "flood", "events.clef");
        return console + (File.Exists(events) ? new FileInfo(events).Length : 0);
    }
}
