using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary><c>train --trace-steps</c>: every phase of every step, on the threads that ran it, for the local cluster and the plain loop.</summary>
public sealed class StepTraceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("step-trace-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static List<(string Name, long Step, int Thread, double Start, double End)> Spans(string path)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        return json.RootElement.GetProperty("traceEvents").EnumerateArray()
            .Where(e => e.GetProperty("ph").GetString() == "X")
            .Select(e => (e.GetProperty("name").GetString()!, e.GetProperty("args").GetProperty("step").GetInt64(), e.GetProperty("tid").GetInt32(),
                e.GetProperty("ts").GetDouble(), e.GetProperty("ts").GetDouble() + e.GetProperty("dur").GetDouble()))
            .ToList();
    }

    [Fact]
    public void A_local_cluster_and_the_plain_loop_trace_every_phase_of_every_step()
    {
        const int steps = 12;
        string cluster = Path.Combine(_dir, "cluster.json"), plain = Path.Combine(_dir, "plain.json");
        string[] common = ["--dataset", "synthetic", "--runs-dir", Path.Combine(_dir, "runs"), "--steps", $"{steps}", "--global-batch", "64",
            "--eval-every", "0", "--train-eval-samples", "0"];
        var run = CliProcess.Run(["train", .. common, "--workers", "4", "--trace-steps", cluster]);
        Assert.True(run.ExitCode == 0, run.StdErr);
        Assert.Contains($"step trace: ", run.StdErr);
        var spans = Spans(cluster);

        int Count(string name) => spans.Count(s => s.Name == name);
        Assert.Equal(steps, Count("send shares"));
        Assert.Equal(steps, Count("commit"));
        Assert.Equal(steps, Count("record"));
        foreach (string perShare in (string[])["load parameters", "compute", "reply"])
            Assert.Equal(Enumerable.Repeat(4, steps), spans.Where(s => s.Name == perShare).GroupBy(s => s.Step).OrderBy(g => g.Key).Select(g => g.Count()));
        Assert.InRange(Count("fold"), 1, 4 * steps);
        Assert.Equal(Enumerable.Range(0, steps).Select(i => (long)i), spans.Where(s => s.Name == "commit").Select(s => s.Step).Order());
        // A step's record is inside its commit, on the same thread (0.1 µs: the trace's rounding).
        Assert.All(spans.Where(s => s.Name == "record"), record => Assert.Contains(spans, commit => commit.Name == "commit" && commit.Step == record.Step
            && commit.Thread == record.Thread && commit.Start <= record.Start + 0.1 && record.End <= commit.End + 0.1));
        // Each step's shares are computed after it was sent and before it was committed.
        foreach (var compute in spans.Where(s => s.Name == "compute"))
        {
            var send = spans.Single(s => s.Name == "send shares" && s.Step == compute.Step);
            var commit = spans.Single(s => s.Name == "commit" && s.Step == compute.Step);
            Assert.True(send.Start <= compute.Start && compute.End <= commit.Start + 0.1, $"step {compute.Step}: compute outside its step");
        }

        run = CliProcess.Run(["train", .. common, "--engine", "plain", "--trace-steps", plain]);
        Assert.True(run.ExitCode == 0, run.StdErr);
        spans = Spans(plain);
        Assert.Equal(steps, Count("compute"));
        Assert.Equal(steps, Count("load parameters"));
        Assert.Equal(steps, Count("commit"));
        Assert.Equal(0, Count("send shares"));
    }
}
