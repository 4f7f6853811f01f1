using System.Collections.Concurrent;
using BatchCluster.Core.Reduction;

namespace BatchCluster.Cluster.Links;

/// <summary>
/// Writes a ring member's frames to its downstream neighbour on a thread of its own, so that the
/// member's engine never blocks on a send while its upstream neighbour waits for it to read (every
/// member sends and receives at once; two blocking directions on one thread would deadlock the
/// ring). Frames point into the engine's buffers instead of copying them: the engine promises not
/// to write a queued range again until <see cref="Drain"/> returns (docs/architecture.md, "The ring").
/// A failed write closes the link and is reported once through <c>onFailed</c>.
/// </summary>
public sealed class RingLinkWriter : IDisposable
{
    private readonly record struct Frame(FrameHeader Header, float[] Source, ModelRange Range);

    private readonly TensorStream _stream;
    private readonly Action<string> _onFailed;
    private readonly BlockingCollection<Frame> _queue = new();
    private readonly Thread _thread;
    private readonly object _gate = new();
    private int _pending;
    private string? _failure;
    private volatile bool _closed;

    public RingLinkWriter(TensorStream stream, Action<string> onFailed)
    {
        _stream = stream;
        _onFailed = onFailed;
        _thread = new Thread(WriteLoop) { IsBackground = true, Name = "ring link writer" };
        _thread.Start();
    }

    /// <summary>Queues <paramref name="range"/> of <paramref name="source"/> as one frame; it is read when written, so the range must not change until <see cref="Drain"/>.</summary>
    public void Enqueue(FrameHeader header, float[] source, ModelRange range)
    {
        lock (_gate)
        {
            if (_failure is not null) throw new IOException($"the link to the downstream neighbour broke: {_failure}");
            _pending++;
        }
        try
        {
            _queue.Add(new Frame(header, source, range));
        }
        catch (InvalidOperationException)
        {
            throw new IOException("the link to the downstream neighbour is closed");
        }
    }

    /// <summary>Blocks until every queued frame is written (its source ranges may change again).</summary>
    /// <exception cref="IOException">A write failed.</exception>
    public void Drain(CancellationToken cancellation)
    {
        lock (_gate)
        {
            while (_pending > 0 && _failure is null)
            {
                cancellation.ThrowIfCancellationRequested();
                Monitor.Wait(_gate, TimeSpan.FromMilliseconds(100));
            }
            if (_failure is not null) throw new IOException($"the link to the downstream neighbour broke: {_failure}");
        }
    }

    private void WriteLoop()
    {
        try
        {
            foreach (var frame in _queue.GetConsumingEnumerable())
            {
                _stream.Write(frame.Header, frame.Source.AsSpan(frame.Range.Offset, frame.Range.Length));
                lock (_gate)
                {
                    _pending--;
                    Monitor.PulseAll(_gate);
                }
            }
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                _failure = e.Message;
                Monitor.PulseAll(_gate);
            }
            _stream.Stream.Dispose();
            if (!_closed) _onFailed(e.Message); // a link closed on purpose is no failure
        }
    }

    /// <summary>Closes the link: queued frames are dropped, the writer thread ends.</summary>
    public void Dispose()
    {
        _closed = true;
        _queue.CompleteAdding();
        _stream.Stream.Dispose();
        lock (_gate)
        {
            _failure ??= "closed";
            Monitor.PulseAll(_gate);
        }
        _thread.Join(TimeSpan.FromSeconds(5));
    }
}
