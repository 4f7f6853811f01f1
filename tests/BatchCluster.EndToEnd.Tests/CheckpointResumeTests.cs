using System.Security.Cryptography;
using System.Text.Json;
using BatchCluster.Analysis.Logs;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>Kill the coordinator's process mid-run, restart it with --resume: the run ends where an uninterrupted one does.</summary>
public sealed class CheckpointResumeTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);
    private readonly string _dir = Directory.CreateTempSubdirectory("resume-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>3,000 steps of ~1 ms: long enough that the run is still going when the test, having read its 30 % line, kills it.</summary>
    private const int KilledRunSteps = 3000;

    private string[] Flags(string runId, string checkpoints, string export, params string[] more) =>
        FlagsWith(runId, checkpoints, export, steps: KilledRunSteps, lr: "0.05", more);

    private string[] FlagsWith(string runId, string checkpoints, string export, int steps, string lr, params string[] more) =>
    [
        "train", "--dataset", "synthetic", "--workers", "2", "--threads", "1", "--global-batch", "64", "--steps", steps.ToString(),
        "--optimizer", "momentum", "--lr", lr, "--eval-every", "0", "--checkpoint-every", "25",
        "--checkpoint-dir", checkpoints, "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId, "--export-params", export, .. more,
    ];


    [Fact]
    public async Task A_killed_run_resumed_from_its_checkpoint_ends_like_an_uninterrupted_one()
    {
        string checkpoints = Path.Combine(_dir, "checkpoints");
        var uninterrupted = CliProcess.Run(Flags("whole", Path.Combine(_dir, "other-checkpoints"), Path.Combine(_dir, "whole.f32")));
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.StdErr);

        using (var doomed = new NodeProcess(Flags("killed", checkpoints, Path.Combine(_dir, "killed.f32"))))
        {
            await doomed.WaitForLineAsync(l => l.StartsWith("progress: step") && (l.Contains("(30%)") || l.Contains("(40%)")), Timeout);
            doomed.Kill();
            await doomed.WaitForExitAsync(Timeout);
        }
        Assert.False(File.Exists(Path.Combine(_dir, "killed.f32")));
        Assert.NotEmpty(Directory.GetFiles(checkpoints, "*.bcck"));

        var resumed = CliProcess.Run(Flags("resumed", checkpoints, Path.Combine(_dir, "resumed.f32"), "--resume"));
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        Assert.Equal(KilledRunSteps, JsonDocument.Parse(resumed.LastLine).RootElement.GetProperty("steps").GetInt64());
        string log = File.ReadAllText(Path.Combine(_dir, "runs", "resumed", "events.clef"));
        Assert.Contains("\"EventType\":\"ResumedFromCheckpoint\"", log);

        double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "whole.f32"), Path.Combine(_dir, "resumed.f32"));
        Assert.True(worst <= 1e-4, $"resumed run differs by {worst:E2}");

        // For analysis the killed run and its resumption are one run: every step once, as the uninterrupted run took it.
        var logs = new[] { "whole", "killed", "resumed" }.Select(id => EventLogReader.Read(Path.Combine(_dir, "runs", id, "events.clef"))).ToList();
        var runs = RunStitcher.Stitch(logs);
        Assert.Equal(["killed", "whole"], runs.Select(r => r.RunId).Order());
        var stitched = runs.Single(r => r.RunId == "killed");
        var whole = runs.Single(r => r.RunId == "whole");
        Assert.Equal(["killed", "resumed"], stitched.Segments.Select(s => s.RunId));
        Assert.Equal(RunStatus.Completed, stitched.Status);
        Assert.Equal(whole.Steps.Select(s => s.Step), stitched.Steps.Select(s => s.Step));
        double lossGap = whole.Steps.Zip(stitched.Steps, (a, b) => Math.Abs(a.Loss - b.Loss)).Max();
        Assert.True(lossGap <= LossBound, $"a stitched step's loss differs from the uninterrupted run's by {lossGap:E2}");
    }

    /// <summary>
    /// The same batches at the same parameters: measured bitwise equal (0) on this machine; bounded like the
    /// parameters (1e-4), which still catches a step logged twice or taken from the wrong process (losses here are ~0.1–2).
    /// </summary>
    private const double LossBound = 1e-4;

    [Fact]
    public void Mismatched_or_corrupt_checkpoints_are_refused_and_left_untouched()
    {
        string checkpoints = Path.Combine(_dir, "checkpoints");
        var first = CliProcess.Run(FlagsWith("first", checkpoints, Path.Combine(_dir, "first.f32"), steps: 50, lr: "0.05"));
        Assert.True(first.ExitCode == 0, first.StdErr);
        string Hashes() => string.Join(',', Directory.GetFiles(checkpoints).Order().Select(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))));
        string before = Hashes();

        var mismatched = CliProcess.Run(FlagsWith("second", checkpoints, Path.Combine(_dir, "second.f32"), steps: 50, lr: "0.1", "--resume"));
        BadInputTests.AssertRefused(mismatched, "checkpoint(s) of another configuration but none of this run's");
        Assert.Equal(before, Hashes());

        // The same configuration started afresh into the same directory would later be resumed from the wrong run's files.
        var again = CliProcess.Run(FlagsWith("again", checkpoints, Path.Combine(_dir, "again.f32"), steps: 50, lr: "0.05"));
        BadInputTests.AssertRefused(again, "already holds 2 checkpoint(s) of this configuration");
        Assert.Equal(before, Hashes());

        foreach (string file in Directory.GetFiles(checkpoints))
        {
            var bytes = File.ReadAllBytes(file);
            bytes[bytes.Length / 2] ^= 0xff;
            File.WriteAllBytes(file, bytes);
        }
        string corrupted = Hashes();
        var corrupt = CliProcess.Run(Flags("third", checkpoints, Path.Combine(_dir, "third.f32"), "--resume"));
        BadInputTests.AssertRefused(corrupt, "no intact checkpoint of this configuration in");
        Assert.Contains("checksum mismatch", corrupt.StdErr);
        Assert.Equal(corrupted, Hashes());
        Assert.False(Directory.Exists(Path.Combine(_dir, "runs", "third")));
    }
}
