using System.Diagnostics;
using System.Text.Json;

namespace BatchCluster.Core.Diagnostics;

/// <summary>What a span of a step's timeline was doing (<see cref="StepTrace"/>).</summary>
public enum StepPhase : byte
{
    /// <summary>The coordinator sends a step's shares (the parameter snapshot and one request per share).</summary>
    SendShares,
    /// <summary>A worker loads the request's parameters into its replica.</summary>
    LoadParameters,
    /// <summary>A worker computes a share's gradient sum (forward, backward, the copy out and its norm).</summary>
    Compute,
    /// <summary>A worker sends the result (and, across processes, its tensor).</summary>
    Reply,
    /// <summary>The coordinator adds an arrived gradient sum to the step's running sum.</summary>
    Fold,
    /// <summary>The coordinator's commit: the average, the optimizer and the step's record.</summary>
    Commit,
    /// <summary>Inside the commit: the step's record (noise scale, the StepCompleted event).</summary>
    Record,
}

/// <summary>
/// An opt-in timeline of steps (<c>train --trace-steps FILE</c>): each phase of a step as a span on the thread that ran
/// it, written as Chrome trace JSON for ui.perfetto.dev or chrome://tracing. It is how docs/performance.md found what a
/// step of 4 local workers spent where. Off, a span costs one read of a static field; on, a span is two timestamps
/// stored into preallocated arrays (no allocation, no lock): spans past the capacity are counted, not kept.
/// One recording at a time per process.
/// </summary>
public static class StepTrace
{
    internal sealed class Recording(int capacity)
    {
        public readonly long[] Starts = new long[capacity];
        public readonly long[] Ends = new long[capacity];
        public readonly long[] Steps = new long[capacity];
        public readonly int[] Threads = new int[capacity];
        public readonly StepPhase[] Phases = new StepPhase[capacity];
        public readonly System.Collections.Concurrent.ConcurrentDictionary<int, string> ThreadNames = new();
        public readonly long Origin = Stopwatch.GetTimestamp();
        public int Count;
    }

    private static volatile Recording? _recording;

    public static bool Enabled => _recording is not null;

    /// <summary>Starts recording up to <paramref name="capacity"/> spans (the default holds ~100,000 steps of 4 workers).</summary>
    public static void Start(int capacity = 2_000_000)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), $"capacity {capacity} must be positive");
        if (_recording is not null) throw new InvalidOperationException("a step trace is already being recorded in this process");
        _recording = new Recording(capacity);
    }

    /// <summary>A span of <paramref name="phase"/> of <paramref name="step"/> from now until the returned value is disposed.</summary>
    public static Span Time(StepPhase phase, long step) =>
        _recording is { } recording ? new Span(recording, phase, step, Stopwatch.GetTimestamp()) : default;

    public readonly struct Span : IDisposable
    {
        private readonly Recording? _recording;
        private readonly StepPhase _phase;
        private readonly long _step;
        private readonly long _start;

        internal Span(Recording recording, StepPhase phase, long step, long start)
        {
            _recording = recording;
            _phase = phase;
            _step = step;
            _start = start;
        }

        public void Dispose()
        {
            if (_recording is not { } recording) return;
            long end = Stopwatch.GetTimestamp();
            int at = Interlocked.Increment(ref recording.Count) - 1;
            if (at >= recording.Starts.Length) return; // full: counted in Count, not kept
            int thread = Environment.CurrentManagedThreadId;
            recording.Starts[at] = _start;
            recording.Ends[at] = end;
            recording.Steps[at] = _step;
            recording.Threads[at] = thread;
            recording.Phases[at] = _phase;
            if (!recording.ThreadNames.ContainsKey(thread))
                recording.ThreadNames.TryAdd(thread, Thread.CurrentThread.Name is { Length: > 0 } name ? name : $"thread {thread}");
        }
    }

    /// <summary>Stops recording and writes what was recorded to <paramref name="path"/>; returns the spans written and dropped.</summary>
    /// <remarks>Call it once the traced work is over: a span still open then is not written. The recording stops even when
    /// the file cannot be written (the exception says why).</remarks>
    public static (int Written, int Dropped) StopAndWrite(string path)
    {
        var recording = _recording ?? throw new InvalidOperationException("no step trace is being recorded");
        _recording = null;
        int count = Math.Min(Volatile.Read(ref recording.Count), recording.Starts.Length);
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream);
        json.WriteStartObject();
        json.WriteString("displayTimeUnit", "ms");
        json.WriteStartArray("traceEvents");
        foreach (var (thread, name) in recording.ThreadNames)
        {
            json.WriteStartObject();
            json.WriteString("name", "thread_name");
            json.WriteString("ph", "M");
            json.WriteNumber("pid", 1);
            json.WriteNumber("tid", thread);
            json.WriteStartObject("args");
            json.WriteString("name", name);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        for (int i = 0; i < count; i++)
        {
            json.WriteStartObject();
            json.WriteString("name", Name(recording.Phases[i]));
            json.WriteString("cat", "step");
            json.WriteString("ph", "X");
            json.WriteNumber("ts", Math.Round(Microseconds(recording.Starts[i] - recording.Origin), 1));
            json.WriteNumber("dur", Math.Round(Microseconds(recording.Ends[i] - recording.Starts[i]), 1));
            json.WriteNumber("pid", 1);
            json.WriteNumber("tid", recording.Threads[i]);
            json.WriteStartObject("args");
            json.WriteNumber("step", recording.Steps[i]);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
        return (count, Math.Max(0, recording.Count - count));
    }

    /// <summary>The span's name in the trace (also what analysis of a trace matches on).</summary>
    public static string Name(StepPhase phase) => phase switch
    {
        StepPhase.SendShares => "send shares",
        StepPhase.LoadParameters => "load parameters",
        StepPhase.Compute => "compute",
        StepPhase.Reply => "reply",
        StepPhase.Fold => "fold",
        StepPhase.Commit => "commit",
        StepPhase.Record => "record",
        _ => phase.ToString(),
    };

    private static double Microseconds(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
}
