using Akka.Actor;
using BatchCluster.Cluster.Actors;
using BatchCluster.Cluster.Local;

namespace BatchCluster.Cluster.Tests.Local;

/// <summary>Which threads the local cluster's workers compute on (LocalCluster.AkkaConfigFor).</summary>
public sealed class LocalClusterThreadsTests
{
    private static string DispatcherType(int workers, string device, int cores) =>
        LocalCluster.AkkaConfigFor(workers, device, cores).GetString(WorkerActor.DispatcherId + ".type");

    [Fact]
    public void More_cpu_workers_than_cores_share_one_thread_per_core()
    {
        var config = LocalCluster.AkkaConfigFor(workers: 4, device: "cpu", cores: 2);
        Assert.Equal("ForkJoinDispatcher", config.GetString(WorkerActor.DispatcherId + ".type"));
        Assert.Equal(2, config.GetInt(WorkerActor.DispatcherId + ".dedicated-thread-pool.thread-count"));
        Assert.Equal(1, config.GetInt(WorkerActor.DispatcherId + ".throughput"));
    }

    [Fact]
    public void Otherwise_each_worker_keeps_a_thread_of_its_own()
    {
        Assert.Equal("PinnedDispatcher", DispatcherType(workers: 2, device: "cpu", cores: 2));
        Assert.Equal("PinnedDispatcher", DispatcherType(workers: 4, device: "cpu", cores: 16));
        Assert.Equal("PinnedDispatcher", DispatcherType(workers: 4, device: "ilgpu-cpu", cores: 2)); // a device's context stays on its thread
    }

    [Fact]
    public async Task Four_workers_on_a_two_core_pool_run_on_two_threads()
    {
        // The pool as the local cluster builds it, in an actor system of its own: every message of the four workers runs on one of
        // its two threads (a fifth thread would mean the config did not apply).
        using var system = ActorSystem.Create("threads", LocalCluster.AkkaConfigFor(workers: 4, device: "cpu", cores: 2));
        var probes = Enumerable.Range(0, 4).Select(i => system.ActorOf(Props.Create(() => new ThreadReporter()).WithDispatcher(WorkerActor.DispatcherId), $"w{i}")).ToList();
        var threads = new HashSet<int>();
        for (int round = 0; round < 50; round++)
            foreach (int id in await Task.WhenAll(probes.Select(p => p.Ask<int>("which thread?", TimeSpan.FromSeconds(10)))))
                threads.Add(id);
        Assert.InRange(threads.Count, 1, 2);
        await system.Terminate();
    }

    private sealed class ThreadReporter : ReceiveActor
    {
        public ThreadReporter() => Receive<string>(_ => Sender.Tell(Environment.CurrentManagedThreadId));
    }
}
