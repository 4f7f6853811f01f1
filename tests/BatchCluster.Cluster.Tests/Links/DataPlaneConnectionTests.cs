using System.Collections.Concurrent;
using System.Net.Sockets;
using BatchCluster.Cluster.Links;
using BatchCluster.Core.Training;

namespace BatchCluster.Cluster.Tests.Links;

/// <summary>
/// The data plane over real loopback TCP: large tensors arrive intact and in order both ways; a
/// connection without the right token, with a wrong size or a corrupted payload, or one whose peer
/// stops reading, is closed and reported as lost (for the coordinator, a worker failure).
/// </summary>
public sealed class DataPlaneConnectionTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private const int WorkerKey = 3;
    private readonly BlockingCollection<GradientArrived> _gradients = new();
    private readonly BlockingCollection<DataConnectionLost> _lost = new();
    private readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        foreach (var d in _owned) d.Dispose();
    }

    private DataPlaneServer Server(int count, TransferPrecision precision = TransferPrecision.Fp32)
    {
        var server = new DataPlaneServer("127.0.0.1", 0, new DataPlaneRun(FrameHeader.TagOf("run"), count, precision), _gradients.Add, _lost.Add);
        _owned.Add(server);
        return server;
    }

    private DataPlaneClient Client(DataPlaneServer server, int count, BlockingCollection<ParametersArrived> parameters, TransferPrecision precision = TransferPrecision.Fp32,
        byte[]? token = null, BlockingCollection<string>? lost = null)
    {
        var offer = new DataPlaneOffer(server.Host, server.Port, token ?? server.Expect(WorkerKey), precision);
        var client = DataPlaneClient.Connect(offer, new DataPlaneRun(FrameHeader.TagOf("run"), count, precision), parameters.Add, r => lost?.Add(r));
        _owned.Add(client);
        return client;
    }

    private static float[] Tensor(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
    }

    [Fact]
    public void Large_tensors_arrive_intact_and_in_order_both_ways()
    {
        const int count = 4_000_000; // 16 MB
        var server = Server(count);
        var parameters = new BlockingCollection<ParametersArrived>();
        var client = Client(server, count, parameters);
        Assert.True(server.IsConnected(WorkerKey));

        var sent = Enumerable.Range(1, 3).Select(v => Tensor(count, v)).ToArray();
        for (int v = 1; v <= 3; v++) Assert.Equal(ParameterSend.Queued, server.SendParameters(WorkerKey, v, sent[v - 1]));
        Assert.Equal(ParameterSend.AlreadySent, server.SendParameters(WorkerKey, 3, sent[2])); // each version once per connection
        for (int v = 1; v <= 3; v++)
        {
            Assert.True(parameters.TryTake(out var arrived, Wait));
            Assert.Equal(v, arrived.Version);
            Assert.Equal(sent[v - 1], arrived.Values);
            TensorBuffers.Return(arrived.Values);
        }

        for (int slot = 0; slot < 3; slot++) client.SendGradient(step: 9, version: 9, slot, sent[slot]);
        for (int slot = 0; slot < 3; slot++)
        {
            Assert.True(_gradients.TryTake(out var gradient, Wait));
            Assert.Equal((WorkerKey, 9L, 9L, slot), (gradient.WorkerKey, gradient.Header.Step, gradient.Header.Version, gradient.Header.Slot));
            Assert.Equal(sent[slot], gradient.Values);
            TensorBuffers.Return(gradient.Values);
        }
        Assert.Empty(_lost);
    }

    [Fact]
    public void Bf16_halves_the_bytes_and_keeps_eight_significant_bits()
    {
        const int count = 100_000;
        var server = Server(count, TransferPrecision.Bf16);
        var parameters = new BlockingCollection<ParametersArrived>();
        Client(server, count, parameters, TransferPrecision.Bf16);
        var values = Tensor(count, 1);
        server.SendParameters(WorkerKey, 1, values);
        Assert.True(parameters.TryTake(out var arrived, Wait));
        for (int i = 0; i < count; i++) Assert.True(Math.Abs(arrived.Values[i] - values[i]) <= Math.Abs(values[i]) * Math.Pow(2, -8));
        Assert.Equal(count * 2, new FrameHeader(FrameKind.Parameters, TransferPrecision.Bf16, 0, 0, 0, 0, count, 0).PayloadBytes);
    }

    [Fact]
    public void A_connection_without_an_expected_token_is_closed_and_gets_nothing()
    {
        var server = Server(10);
        server.Expect(WorkerKey);
        var e = Assert.Throws<IOException>(() => Client(server, 10, new BlockingCollection<ParametersArrived>(), token: new byte[FrameHeader.TokenBytes]));
        Assert.Contains("did not accept this worker's token", e.Message);
        Assert.False(server.IsConnected(WorkerKey));
        Assert.Equal(ParameterSend.NoConnection, server.SendParameters(WorkerKey, 1, new float[10]));
        // A forgotten worker's token expires with it.
        var token = server.Expect(WorkerKey);
        server.Forget(WorkerKey);
        Assert.Throws<IOException>(() => Client(server, 10, new BlockingCollection<ParametersArrived>(), token: token));
    }

    /// <summary>An authenticated peer that misbehaves: the raw bytes after a valid Hello.</summary>
    private static NetworkStream Authenticated(DataPlaneServer server)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(server.Host, server.Port);
        var stream = new NetworkStream(socket, ownsSocket: true);
        stream.Write(FrameHeader.Hello(TransferPrecision.Fp32, server.Expect(WorkerKey)));
        stream.ReadExactly(new byte[FrameHeader.Size]); // HelloAccepted
        return stream;
    }

    [Fact]
    public void A_declared_size_other_than_the_models_is_a_lost_worker_and_nothing_is_allocated_for_it()
    {
        var server = Server(1000);
        using var peer = Authenticated(server);
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameKind.GradientSum, TransferPrecision.Fp32, FrameHeader.TagOf("run"), 1, 1, 0, 250_000_000, 0).Write(header);
        peer.Write(header);
        Assert.True(_lost.TryTake(out var lost, Wait));
        Assert.Equal(WorkerKey, lost.WorkerKey);
        Assert.Contains("250000000 values declared where the model has 1000", lost.Reason);
        Assert.False(server.IsConnected(WorkerKey));
    }

    [Fact]
    public void A_corrupted_payload_fails_its_checksum_and_is_never_delivered()
    {
        var server = Server(1000);
        using var peer = Authenticated(server);
        var values = Tensor(1000, 3);
        var payload = new byte[4000];
        FramePayload.Encode(values, TransferPrecision.Fp32, payload);
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameKind.GradientSum, TransferPrecision.Fp32, FrameHeader.TagOf("run"), 1, 1, 0, 1000, FramePayload.Checksum(payload)).Write(header);
        payload[1234] ^= 0x10; // one bit flipped on the way
        peer.Write(header);
        peer.Write(payload);
        Assert.True(_lost.TryTake(out var lost, Wait));
        Assert.Contains("fails its checksum", lost.Reason);
        Assert.Empty(_gradients);
    }

    [Fact]
    public void A_peer_that_stops_reading_is_dropped_as_stalled_without_blocking_the_sender()
    {
        const int count = 4_000_000; // 16 MB a frame: the socket buffers hold far less than the queue limit
        var server = Server(count);
        using var peer = Authenticated(server); // never reads
        var values = new float[count];
        var results = new List<ParameterSend>(); // six whole models: past the limit of four unsent
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int v = 1; v <= 6; v++) results.Add(server.SendParameters(WorkerKey, v, values));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"sending took {clock.Elapsed}: the caller must never wait for the peer");
        Assert.True(results.Contains(ParameterSend.NoConnection), string.Join(", ", results));
        Assert.True(_lost.TryTake(out var lost, Wait), "no loss reported: " + string.Join(", ", results));
        Assert.Contains("stalled", lost.Reason);
    }

    [Fact]
    public void Messages_travel_right_behind_their_tensors_both_ways()
    {
        const int count = 1000;
        var atWorker = new BlockingCollection<object>(); // parameters and requests, in the order they arrive
        var atCoordinator = new BlockingCollection<object>();
        var run = new DataPlaneRun(FrameHeader.TagOf("run"), count, TransferPrecision.Fp32);
        var server = new DataPlaneServer("127.0.0.1", 0, run, atCoordinator.Add, _lost.Add, onMessage: atCoordinator.Add);
        _owned.Add(server);
        var client = DataPlaneClient.Connect(new DataPlaneOffer(server.Host, server.Port, server.Expect(WorkerKey), TransferPrecision.Fp32), run,
            atWorker.Add, _ => { }, onMessage: atWorker.Add);
        _owned.Add(client);

        var values = Tensor(count, 1);
        var share = new Protocol.TrainingProtocol.ComputeShare("run", 5, 1, [3, 4], 2, new Protocol.TrainingProtocol.ParameterSnapshot(5, ReadOnlyMemory<float>.Empty));
        Assert.Equal(ParameterSend.Queued, server.SendParameters(WorkerKey, 5, values));
        Assert.True(server.SendMessage(WorkerKey, share));
        Assert.True(atWorker.TryTake(out var first, Wait));
        Assert.Equal(values, Assert.IsType<ParametersArrived>(first).Values);
        Assert.True(atWorker.TryTake(out var second, Wait));
        Assert.Equal([3, 4], Assert.IsType<Protocol.TrainingProtocol.ComputeShare>(second).SampleIds);

        client.SendGradient(5, 5, 1, values);
        client.SendMessage(new Protocol.TrainingProtocol.ShareComputed("run", 5, 5, 1, 2, 0.5, ReadOnlyMemory<float>.Empty, 1, 1, 1, 0));
        Assert.True(atCoordinator.TryTake(out var gradient, Wait));
        Assert.Equal(values, Assert.IsType<GradientArrived>(gradient).Values);
        Assert.True(atCoordinator.TryTake(out var result, Wait));
        var arrived = Assert.IsType<MessageArrived>(result);
        Assert.Equal(WorkerKey, arrived.WorkerKey); // whose connection it came on: the sender the coordinator credits
        Assert.Equal(1, Assert.IsType<Protocol.TrainingProtocol.ShareComputed>(arrived.Message).ShareIndex);
        Assert.Empty(_lost);
    }

    [Theory]
    [InlineData(true, false, "a 'cs' message frame where only 'sc' may come")]
    [InlineData(true, true, "the payload of a message frame fails its checksum")]
    [InlineData(false, false, "a Message frame where a GradientSum or ShardNorm or ReducedShard frame was due")]
    public void A_worker_that_sends_a_message_the_coordinator_does_not_take_loses_its_connection(bool messagesOn, bool corrupted, string reason)
    {
        var messages = new BlockingCollection<MessageArrived>();
        var run = new DataPlaneRun(FrameHeader.TagOf("run"), 10, TransferPrecision.Fp32);
        var server = new DataPlaneServer("127.0.0.1", 0, run, _gradients.Add, _lost.Add, onMessage: messagesOn ? messages.Add : null);
        _owned.Add(server);
        using var peer = Authenticated(server);
        var frame = MessageFrames.Frame(run, new Protocol.TrainingProtocol.ComputeShare("run", 1, 0, [1], 1,
            new Protocol.TrainingProtocol.ParameterSnapshot(1, ReadOnlyMemory<float>.Empty)));
        if (corrupted) frame[^1] ^= 0x01;
        peer.Write(frame);
        Assert.True(_lost.TryTake(out var lost, Wait));
        Assert.Contains(reason, lost.Reason);
        Assert.Empty(messages);
    }

    [Fact]
    public void A_connection_the_coordinator_closes_is_reported_to_the_worker()
    {
        var server = Server(10);
        var lost = new BlockingCollection<string>();
        Client(server, 10, new BlockingCollection<ParametersArrived>(), lost: lost);
        server.Forget(WorkerKey);
        Assert.True(lost.TryTake(out var reason, Wait));
        Assert.Contains("closed the data connection", reason);
        Assert.Empty(_lost); // closed on purpose: not reported as a lost worker
    }
}
