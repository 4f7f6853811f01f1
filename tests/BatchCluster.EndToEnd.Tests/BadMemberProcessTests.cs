using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>
/// Bad members across real processes (docs/robustness.md): worker processes that answer with NaN
/// gradients, never answer at all, lie about their speed, or fake their evaluations, beside an honest
/// one. None stops, stalls or steers the run: the silent one costs one deadline per chance and the NaN
/// one nothing, both are quarantined, then expelled; the speed liar's claim is ignored for what the
/// coordinator measures; the evaluation faker is caught on the audit rows and the evaluation redone
/// without it; every step is carried exactly and the accuracies are the plain loop's.
/// </summary>
public sealed class BadMemberProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("bad-member-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// 300 steps: each bad member's second chance comes 50 ms after its quarantine, and the run must outlast it
    /// (a step over the data plane takes a few ms); at lr 0.02 rounding stays far below 1e-4 over 300 steps (the chaos run's setting).
    /// </summary>
    private string[] TrainFlags(string runId, int steps = 300) =>
    [
        "--dataset", "synthetic", "--steps", steps.ToString(), "--global-batch", "64", "--lr", "0.02",
        "--eval-every", "0", "--train-eval-samples", "0", "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId,
        "--export-params", Path.Combine(_dir, runId + ".f32"),
    ];

    [Fact]
    public async Task NaN_silent_speed_lying_and_evaluation_faking_workers_neither_stop_stall_nor_steer_the_run()
    {
        var reference = CliProcess.Run(["train", "--engine", "plain", .. TrainFlags("reference")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess(["node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "5",
            "--min-workers", "1", "--step-deadline", "2", "--quarantine-seconds", "0.05", "--quarantine-limit", "1", "--split", "capacity",
            .. TrainFlags("bad")]);
        string[] behaviours = ["", "speed-lie", "nan", "silent", "fake-eval"];
        var workers = behaviours.Select(b => new NodeProcess(
        [
            "node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "60",
            .. b.Length > 0 ? new[] { "--testing-misbehave", b } : [],
        ])).ToList();
        try
        {
            int exit = await coordinator.WaitForExitAsync(Timeout);
            Assert.True(exit == 0, string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut)));
            var events = File.ReadAllLines(Path.Combine(_dir, "runs", "bad", "events.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";
            var steps = events.Where(e => Type(e) == "StepCompleted").ToList();
            Assert.Equal(Enumerable.Range(0, 300), steps.Select(e => e.GetProperty("Step").GetInt32()));
            Assert.All(steps, e => Assert.Equal(64, e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
            Assert.DoesNotContain(events, e => Type(e) == "NonFiniteGradient");
            var quarantined = events.Where(e => Type(e) == "WorkerQuarantined").Select(e => e.GetProperty("Reason").GetString()!).ToList();
            Assert.Contains(quarantined, r => r.Contains("non-finite"));
            Assert.Contains(quarantined, r => r.Contains("missed 1 step deadline"));
            var expelled = events.Where(e => Type(e) == "WorkerLeft").Select(e => e.GetProperty("Reason").GetString()!).Where(r => r.StartsWith("expelled")).ToList();
            // The NaN and the silent worker are expelled during the steps. The evaluation faker is caught on the validation's audit
            // rows (its one quarantine) and, if its 50 ms are over before the test evaluation starts (a busy machine), caught again
            // there and expelled too: a bad member either way, and never anyone else.
            Assert.Single(expelled, r => r.Contains("non-finite"));
            Assert.Single(expelled, r => r.Contains("missed 1 step deadline"));
            int fakerExpelled = expelled.Count(r => r.Contains("audit rows said"));
            Assert.InRange(fakerExpelled, 0, 1);
            Assert.True(expelled.Count == 2 + fakerExpelled, string.Join("\n", expelled));
            // The silent worker had two chances (its first plan, and once after its quarantine): two deadlines, no more.
            Assert.InRange(events.Count(e => Type(e) == "StallReport"), 1, 2);
            Assert.Equal(3, steps[^1].GetProperty("Shares").GetArrayLength()); // the honest, the speed liar, the evaluation faker
            // The liar claimed 10⁹ samples/s; it draws no more than the honest worker (the same code on the same machine), give or take noise.
            Assert.Single(events, e => Type(e) == "SpeedClaimIgnored");
            string liar = events.Single(e => Type(e) == "WorkerJoined" && e.GetProperty("MeasuredSamplesPerSecond").GetDouble() >= 1e8).GetProperty("WorkerId").GetString()!;
            foreach (var step in steps.TakeLast(10))
            {
                var shares = step.GetProperty("Shares").EnumerateArray().Select(x => x.GetInt32()).ToArray();
                var by = step.GetProperty("ShareWorkers").EnumerateArray().Select(x => x.GetString()!).ToArray();
                int drawn = shares.Where((_, k) => by[k] == liar).Sum();
                Assert.True(drawn <= 44, $"the speed liar computed {drawn} of 64 samples (shares {string.Join(",", shares)})");
            }

            // The final evaluations: the faker said "all correct" on the audit rows, where the two others did not.
            var faker = events.Where(e => Type(e) == "WorkerQuarantined").Select(e => e.GetProperty("Reason").GetString()!).ToList();
            Assert.Contains(faker, r => r.Contains("audit rows said"));
            var completed = events.Single(e => Type(e) == "RunCompleted");
            var referenceCompleted = File.ReadAllLines(Path.Combine(_dir, "runs", "reference", "events.clef"))
                .Select(l => JsonDocument.Parse(l).RootElement).Single(e => Type(e) == "RunCompleted");
            foreach (string accuracy in new[] { "ValAccuracy", "TestAccuracy" })
                Assert.InRange(completed.GetProperty(accuracy).GetDouble(), referenceCompleted.GetProperty(accuracy).GetDouble() - 0.003, referenceCompleted.GetProperty(accuracy).GetDouble() + 0.003); // 3 rows of 1,000: a near-tie may flip

            double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, "bad.f32"));
            Assert.True(worst <= 1e-4, $"the run with two bad members differs from the plain loop by {worst:E2}");
            Assert.Equal(0, await workers[0].WaitForExitAsync(Timeout));
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    /// <summary>
    /// A worker that keeps breaking its own link: four times a second it sends the coordinator a message above every
    /// node's 4 MiB frame limit, so the coordinator's transport drops the connection each time and the two find each
    /// other unreachable while the honest worker reaches both. Left to the split-brain resolver, its rule for such
    /// "indirectly connected" nodes downed the coordinator too (2 of 3 tries, and 3 of 4 before the retry gate was
    /// shortened; docs/robustness.md "Broken links"). Now the coordinator's node downs the bad member once its connection has
    /// dropped 3 times within 10 s (about a second after its first oversized frame) or after 4 s unreachable, before any
    /// resolver decides: the run ends as the plain loop's, and the coordinator is never downed.
    /// (The race it guards against was lost only some of the time: the repeated tries are in docs/robustness.md.)
    /// </summary>
    [Fact]
    public async Task A_member_that_breaks_its_link_with_oversized_frames_is_downed_and_the_coordinator_is_not()
    {
        // The honest worker slowed so that the run outlasts the downing (≈ 9 s after the first oversized frame) and the time
        // a resolver would have taken to down the coordinator (asserted below); 200 steps took ~30 s alone on 2 cores.
        string[] Flags(string runId) => TrainFlags(runId, steps: 200);
        var reference = CliProcess.Run(["train", "--engine", "plain", .. Flags("reference")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);
        int port = NodeProcess.FreePort();
        const string runId = "broken-link";
        using var coordinator = new NodeProcess(["node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "2",
            "--min-workers", "1", "--step-deadline", "2", .. Flags(runId)]);
        string[] Worker(params string[] more) => ["node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--join-timeout", "60", .. more];
        using var honest = new NodeProcess(Worker("--testing-slowdown", "120"));
        using var bad = new NodeProcess(Worker("--testing-misbehave", "oversized-frames"));
        int exit = await coordinator.WaitForExitAsync(Timeout);
        string output = string.Join('\n', coordinator.StdErr.Concat(coordinator.StdOut));
        Assert.True(exit == 0, output);
        Assert.Contains("while the rest of the cluster answers: downing it", output);
        Assert.Contains("dropped (", output); // the connection drops are counted (the rule's faster trigger)
        Assert.DoesNotContain("this member has been downed", output);
        Assert.DoesNotContain("including myself", output);

        var events = File.ReadAllLines(Path.Combine(_dir, "runs", runId, "events.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var steps = events.Where(e => e.TryGetProperty("EventType", out var t) && t.GetString() == "StepCompleted").ToList();
        // The decision is in the run's record, not only on the console: the bad member's node downed — again each time it
        // joins afresh and breaks its link again (it may join again, as a new member), never the honest worker's.
        var downed = events.Where(e => e.TryGetProperty("EventType", out var t) && t.GetString() == "WorkerNodeDowned").ToList();
        Assert.NotEmpty(downed);
        Assert.Single(downed.Select(e => e.GetProperty("NodeAddress").GetString()).Distinct());
        Assert.All(downed, e => Assert.Matches("^(unreachable for 4 s|its connection dropped 3 times within 10 s)$", e.GetProperty("Reason").GetString()));
        Assert.StartsWith("akka.tcp://batchcluster@127.0.0.1:", downed[0].GetProperty("NodeAddress").GetString());
        Assert.Equal(Enumerable.Range(0, 200), steps.Select(e => e.GetProperty("Step").GetInt32()));
        // Not vacuous: the run went on well past the bad member's first broken link — its 4 s unreachable, the downing, and
        // the resolver's 8 s stable-after in which the coordinator would have been downed.
        DateTimeOffset At(JsonElement e) => e.GetProperty("@t").GetDateTimeOffset();
        var firstDrop = events.First(e => e.TryGetProperty("EventType", out var t) && t.GetString() == "WorkerLeft");
        double after = (At(steps[^1]) - At(firstDrop)).TotalSeconds;
        Assert.True(after >= 20, $"the run ended {after:F1} s after the first broken link; it must outlast the downing and the resolver's wait (raise the steps)");
        double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "reference.f32"), Path.Combine(_dir, runId + ".f32"));
        Assert.True(worst <= 1e-4, $"the run with a link-breaking member differs from the plain loop by {worst:E2}");
        Assert.Equal(0, await honest.WaitForExitAsync(Timeout));
    }
}
