using System.Text.Json;
using BatchCluster.Core.Diagnostics;

namespace BatchCluster.Core.Tests.Diagnostics;

/// <summary>Runs alone (<see cref="ProcessWideCollection"/>): a trace records the spans of every thread of the process.</summary>
[Collection(ProcessWideCollection.Name)]
public sealed class StepTraceTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"step-trace-{Guid.NewGuid():N}.json");

    public void Dispose()
    {
        if (StepTrace.Enabled) StepTrace.StopAndWrite(_path); // a failed test must not leave the next one a recording
        File.Delete(_path);
    }

    private List<JsonElement> Read()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(_path));
        return json.RootElement.GetProperty("traceEvents").EnumerateArray().Select(e => e.Clone()).ToList();
    }

    [Fact]
    public void Spans_of_several_threads_are_written_as_chrome_trace_events_with_their_step_and_thread()
    {
        StepTrace.Start();
        int mainThread = Environment.CurrentManagedThreadId;
        using (StepTrace.Time(StepPhase.Commit, 7))
        using (StepTrace.Time(StepPhase.Record, 7)) { }
        var worker = new Thread(() =>
        {
            using (StepTrace.Time(StepPhase.Compute, 7)) Thread.SpinWait(1000);
        }) { Name = "a worker" };
        worker.Start();
        worker.Join();
        var (written, dropped) = StepTrace.StopAndWrite(_path);

        Assert.Equal((3, 0), (written, dropped));
        Assert.False(StepTrace.Enabled);
        var events = Read();
        var spans = events.Where(e => e.GetProperty("ph").GetString() == "X").ToList();
        Assert.Equal(["record", "commit", "compute"], spans.Select(s => s.GetProperty("name").GetString())); // in the order they ended
        Assert.All(spans, s =>
        {
            Assert.Equal(7, s.GetProperty("args").GetProperty("step").GetInt64());
            Assert.True(s.GetProperty("dur").GetDouble() >= 0);
            Assert.True(s.GetProperty("ts").GetDouble() >= 0);
        });
        var record = spans[0];
        var commit = spans[1];
        Assert.Equal(mainThread, commit.GetProperty("tid").GetInt32());
        Assert.True(commit.GetProperty("ts").GetDouble() <= record.GetProperty("ts").GetDouble()); // nested: it started first
        int workerThread = spans[2].GetProperty("tid").GetInt32();
        Assert.NotEqual(mainThread, workerThread);
        var names = events.Where(e => e.GetProperty("ph").GetString() == "M")
            .ToDictionary(e => e.GetProperty("tid").GetInt32(), e => e.GetProperty("args").GetProperty("name").GetString());
        Assert.Equal("a worker", names[workerThread]);
        Assert.True(names.ContainsKey(mainThread));
    }

    [Fact]
    public void Spans_past_the_capacity_are_counted_not_kept_and_none_are_taken_while_off()
    {
        using (StepTrace.Time(StepPhase.Fold, 1)) { } // off: nothing to record into
        StepTrace.Start(capacity: 2);
        Assert.Throws<InvalidOperationException>(() => StepTrace.Start());
        for (int step = 0; step < 5; step++)
            using (StepTrace.Time(StepPhase.Fold, step)) { }
        var (written, dropped) = StepTrace.StopAndWrite(_path);

        Assert.Equal((2, 3), (written, dropped));
        var steps = Read().Where(e => e.GetProperty("ph").GetString() == "X").Select(e => e.GetProperty("args").GetProperty("step").GetInt64());
        Assert.Equal([0L, 1L], steps); // the first ones
        Assert.Throws<InvalidOperationException>(() => StepTrace.StopAndWrite(_path));
    }

    [Fact]
    public void A_trace_that_cannot_be_written_still_stops_the_recording()
    {
        StepTrace.Start();
        using (StepTrace.Time(StepPhase.Compute, 0)) { }
        string gone = Path.Combine(Path.GetTempPath(), $"step-trace-missing-{Guid.NewGuid():N}", "trace.json");
        Assert.Throws<DirectoryNotFoundException>(() => StepTrace.StopAndWrite(gone));
        Assert.False(StepTrace.Enabled);
        StepTrace.Start(); // a new recording may begin
        Assert.Equal((0, 0), StepTrace.StopAndWrite(_path));
    }
}
