using BatchCluster.Cluster.Protocol;
using BatchCluster.Cluster.Links;

namespace BatchCluster.Cluster.Tests.Links;

/// <summary>
/// The audit's memory exhaustion: three transfer headers declaring 250M floats took a coordinator
/// from 0.3 to 4.4 GB. A declaration is now checked against the run's size before anything is
/// allocated, a sender has one transfer in flight, and unfinished transfers expire.
/// </summary>
public sealed class TensorReassemblyTests
{
    private const int Size = 200_000; // like the MLP's 203,530 parameters: four chunks
    private static int ChunksFor(int n) => (n + TensorTransport.ChunkFloats - 1) / TensorTransport.ChunkFloats;

    private static TensorTransferStart Start(long id, int total, int? chunks = null) =>
        new(id, new TrainingProtocol.ShareComputed("r", 1, 1, 0, 8, 1, ReadOnlyMemory<float>.Empty, 0, 0, 0, 0), total, chunks ?? ChunksFor(total));

    private static IEnumerable<TensorChunk> Chunks(long id, int total, float value = 1f)
    {
        for (int i = 0, offset = 0; offset < total; i++, offset += TensorTransport.ChunkFloats)
            yield return new TensorChunk(id, i, Enumerable.Repeat(value, Math.Min(TensorTransport.ChunkFloats, total - offset)).ToArray());
    }

    [Theory]
    [InlineData(250_000_000)]
    [InlineData(Size + 1)]
    [InlineData(Size - 1)]
    [InlineData(-5)]
    [InlineData(0)]
    public void A_declared_size_other_than_the_runs_is_refused_before_allocating(int declared)
    {
        var reassembly = new TensorReassembly { ExpectedLength = Size };
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidOperationException>(() => reassembly.Begin("peer", Start(1, declared, chunks: 4)));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "allocated for a refused declaration");
        Assert.Equal(0, reassembly.InFlight);
        Assert.Contains("declares", e.Message);
    }

    [Fact]
    public void Before_the_run_is_known_every_transfer_is_refused()
    {
        var reassembly = new TensorReassembly();
        Assert.Throws<InvalidOperationException>(() => reassembly.Begin("peer", Start(1, Size)));
        Assert.Equal(0, reassembly.InFlight);
    }

    [Fact]
    public void A_wrong_chunk_count_is_refused()
    {
        var reassembly = new TensorReassembly { ExpectedLength = Size };
        Assert.Throws<InvalidOperationException>(() => reassembly.Begin("peer", Start(1, Size, chunks: 1_000_000)));
    }

    [Fact]
    public void A_sender_has_one_transfer_in_flight_and_the_newest_wins()
    {
        var reassembly = new TensorReassembly { ExpectedLength = Size };
        for (long id = 1; id <= 1000; id++) reassembly.Begin("peer", Start(id, Size));
        Assert.Equal(1, reassembly.InFlight);
        Assert.Throws<InvalidOperationException>(() => reassembly.Add("peer", Chunks(999, Size).First())); // replaced
        ITensorMessage? done = null;
        foreach (var chunk in Chunks(1000, Size, 2f)) done = reassembly.Add("peer", chunk);
        Assert.NotNull(done);
        Assert.All(done!.Tensor.ToArray(), v => Assert.Equal(2f, v));
        Assert.Equal(0, reassembly.InFlight);
    }

    [Fact]
    public void Unfinished_transfers_expire()
    {
        var now = TimeSpan.Zero;
        var reassembly = new TensorReassembly(() => now) { ExpectedLength = Size };
        reassembly.Begin("a", Start(1, Size));
        reassembly.Add("a", Chunks(1, Size).First());
        now += TensorReassembly.Timeout + TimeSpan.FromSeconds(1);
        reassembly.Begin("b", Start(2, Size)); // any start sweeps
        Assert.Equal(1, reassembly.InFlight);
        Assert.Throws<InvalidOperationException>(() => reassembly.Add("a", Chunks(1, Size).Skip(1).First()));
    }

    [Fact]
    public void Random_sequences_of_starts_and_chunks_never_crash_and_stay_bounded()
    {
        var random = new Random(20261128);
        var reassembly = new TensorReassembly { ExpectedLength = Size };
        string[] senders = ["a", "b", "c"];
        int completed = 0;
        var next = senders.ToDictionary(x => x, _ => (Id: 0L, Index: 0)); // what an honest sender would send next
        var good = Chunks(0, Size).Select(c => c.Values.Length).ToArray();
        for (int i = 0; i < 20_000; i++)
        {
            string sender = senders[random.Next(senders.Length)];
            try
            {
                int action = random.Next(10);
                if (action < 2)
                {
                    long id = random.Next(4);
                    bool honest = random.Next(2) == 0;
                    next[sender] = (id, 0);
                    reassembly.Begin(sender, Start(id, honest ? Size : random.Next(), honest ? null : random.Next(-2, 9)));
                }
                else if (action < 8)
                {
                    var (id, index) = next[sender];
                    int length = index < good.Length ? good[index] : 7;
                    if (random.Next(8) == 0) length = random.Next(0, 2 * TensorTransport.ChunkFloats); // a lie about one chunk
                    next[sender] = (id, index + 1);
                    if (reassembly.Add(sender, new TensorChunk(id, index, new float[length])) is not null) completed++;
                }
                else
                {
                    reassembly.Add(sender, new TensorChunk(random.Next(4), random.Next(5), new float[random.Next(0, 2 * TensorTransport.ChunkFloats)]));
                }
            }
            catch (InvalidOperationException)
            {
                // refused: the only allowed failure
            }
            Assert.True(reassembly.InFlight <= senders.Length);
        }
        Assert.True(completed > 0, "no transfer ever completed: the fuzz did not reach the end of a transfer");
    }
}
