using System.Text.Json;

namespace BatchCluster.EndToEnd.Tests;

/// <summary>--global-batch auto across processes (docs/adaptive-batch.md): the chosen batch follows the workers.</summary>
public sealed class AdaptiveBatchProcessTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);
    private readonly string _dir = Directory.CreateTempSubdirectory("adaptive-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Two worker processes start the run; a third, slowed 16 times (its per-pass cost too, like a slower machine), joins. With
    /// declared shares every step now waits for it: the step's time per sample rises ~10× and its per-share cost ~16×. The
    /// coordinator must fit the new layout (a decision naming three workers, whose compute at the pair's batch is that of the steps
    /// with the slow worker) and move the batch toward that fit's goodput optimum √(B_noise · (fixed + per-share) / per-sample).
    /// Which way that is depends on the coordinator's own fixed cost against a worker's per-pass cost (with f and i for them and s
    /// the slowdown, the optimum moves by √(1.5 (f/s + i)/(f + i)) before B_noise grows): it went down while a step's hand-offs
    /// cost ~3 ms (609 → 362, measured by hand), and with ~1.5 ms since the step's messages ride the data plane a CI run saw it go
    /// up (431 → 724). So the test checks that the move follows the fitted layout, not a direction fixed in advance. The run is
    /// stopped once that decision is logged.
    /// </summary>
    [Fact]
    public async Task A_slow_worker_joining_mid_run_moves_the_chosen_batch_by_the_three_worker_fit()
    {
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess("node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "2", "--min-workers", "2",
            "--global-batch", "auto", "--batch-range", "32:2048", "--adapt-every", "25", "--steps", "100000",
            "--eval-every", "0", "--train-eval-samples", "0", "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", "joined");
        var workers = Enumerable.Range(0, 2)
            .Select(_ => new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1")).ToList();
        try
        {
            await coordinator.WaitForLineAsync(l => l.Contains("2 workers ready"), Timeout); // the run starts on the pair
            workers.Add(new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1", "--testing-slowdown", "16"));
            await coordinator.WaitForLineAsync(l => l.Contains("3 workers ready"), Timeout);
            int ready = coordinator.StdOut.ToList().FindIndex(l => l.Contains("3 workers ready"));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // A change ("Global batch 609 → 362 …") fitted on three workers (the line ends "workers a,b,c"), not a kept decision
            // ("Global batch 609 kept …"), nor a change in the window of the join still fitted on the pair (the planner fits the layout
            // it has steps of; with steps of ~5 ms that window may hold too few of the three).
            static bool ChangeOnThree(string l) =>
                l.Contains("Global batch") && !l.Contains(" kept at step") && l[(l.LastIndexOf("workers ", StringComparison.Ordinal) + 8)..].Count(c => c == ',') == 2;
            while (!coordinator.StdOut.Skip(ready).Any(ChangeOnThree))
            {
                if (clock.Elapsed > Timeout) throw new TimeoutException("no batch change after the third worker joined");
                await Task.Delay(100); // polling the child's output
            }
            await coordinator.StopAsync(Timeout); // an interrupted run (RunInterrupted): what matters is its log so far

            var events = File.ReadAllLines(Path.Combine(_dir, "runs", "joined", "events.clef")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            string Type(JsonElement e) => e.TryGetProperty("EventType", out var t) ? t.GetString()! : "";
            int joinedAt = events.FindLastIndex(e => Type(e) == "WorkerJoined");
            Assert.Equal(3, events.Count(e => Type(e) == "WorkerJoined"));
            int decidedAt = events.FindIndex(joinedAt, e => Type(e) == "BatchSizeChanged" && e.GetProperty("Layout").GetString()!.Split(',').Length == 3);
            Assert.True(decidedAt > joinedAt, "no BatchSizeChanged fitted on the three workers after the third joined");
            var decision = events[decidedAt];
            int from = decision.GetProperty("OldBatch").GetInt32(), to = decision.GetProperty("NewBatch").GetInt32();
            // Compared within the same steps, never with the pair's steps of an earlier minute: beside other process tests on two
            // cores, how busy the machine is changes several-fold between minutes (a CI run saw the pair's compute at 8 × its
            // quiet figure), while within a step all three workers share the same machine.
            // The steps the fit was made from: the three workers' steps before the decision, less a new layout's first ones (the
            // slow process's first passes) and at most the model's window.
            var tripleSteps = events.Take(decidedAt).Skip(joinedAt)
                .Where(e => Type(e) == "StepCompleted" && e.GetProperty("Shares").GetArrayLength() == 3 && e.GetProperty("GlobalBatch").GetInt32() == from)
                .Skip(Core.BatchSizing.ThroughputModel.WarmUpSteps).TakeLast(Core.BatchSizing.ThroughputModel.Window).ToList();
            Assert.NotEmpty(tripleSteps);
            // The slow worker is slow in those steps: its share's speed is a small fraction of the others' (16 × slower by construction).
            foreach (var step in tripleSteps)
            {
                var speeds = step.GetProperty("ShareSamplesPerSecond").EnumerateArray().Select(s => s.GetDouble()).ToList();
                Assert.True(speeds.Min() < speeds.Max() / 4, $"step {step.GetProperty("Step")}: share speeds {string.Join(", ", speeds)}");
            }
            // The fit is that of these steps, the slow worker included: its compute at the batch they ran is near what they took (a fit
            // that left the slow worker out would predict the fast shares' compute, about a tenth of it; a quarter keeps 2.5× from that,
            // where half failed once here at 0.43: the test picks the steps at the old batch, the model's window can hold others).
            double tripleComputeMs = tripleSteps.Select(e => e.GetProperty("ComputeMs").GetDouble()).Order().ElementAt(tripleSteps.Count / 2);
            double predicted = decision.GetProperty("ComputeInterceptMs").GetDouble() + decision.GetProperty("ComputeMsPerSample").GetDouble() * from;
            Assert.True(predicted > 0.25 * tripleComputeMs,
                $"the three-worker fit predicts {predicted:G3} ms of compute at {from}; the three workers' steps there took {tripleComputeMs:G3}");
            // The move goes toward the optimum of the three-worker fit the decision logged (goodput M/(fixed + a + bM) · (B + M0)/(B + M)
            // peaks at √(B_noise (fixed + a) / b)).
            double optimum = Math.Sqrt(decision.GetProperty("BNoise").GetDouble()
                                       * (decision.GetProperty("FixedMs").GetDouble() + decision.GetProperty("ComputeInterceptMs").GetDouble())
                                       / decision.GetProperty("ComputeMsPerSample").GetDouble());
            Assert.True(to != from && Math.Sign(to - from) == Math.Sign(optimum - from),
                $"the batch went from {from} to {to} when the slow worker joined, but the three-worker fit's optimum is {optimum:F0}");
            Assert.True(decision.GetProperty("NewGoodput").GetDouble() >= 1.05 * decision.GetProperty("OldGoodput").GetDouble(),
                "a change must promise at least 5 % more goodput (the hysteresis)");
            Assert.All(events.Where(e => Type(e) == "StepCompleted"),
                e => Assert.Equal(e.GetProperty("GlobalBatch").GetInt32(), e.GetProperty("Shares").EnumerateArray().Sum(x => x.GetInt32())));
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

    /// <summary>
    /// A cluster of one worker process with AdaScale: its one share per step is computed in two halves whose squared norms travel
    /// back in the result (TrainingProtocol.HalfNorms, the data plane's message frame), so every step has a noise estimate and the
    /// rate its gain — the same halves, estimates, gains and parameters as the plain loop's (which cuts its batch the same way),
    /// up to float rounding. With --max-lr at 3.5 × --lr the gain (2.9–3.7 here without it) is capped where it would pass 3.5 and left
    /// alone elsewhere, in the worker process's run as in the plain loop.
    /// </summary>
    [Fact]
    public async Task One_worker_process_estimates_the_noise_from_its_shares_halves()
    {
        string[] Flags(string runId) =>
        [
            "--dataset", "synthetic", "--steps", "30", "--global-batch", "64", "--base-batch", "16", "--lr-scaling", "adascale",
            "--optimizer", "momentum", "--lr", "0.02", "--max-lr", "0.07", "--eval-every", "0", "--train-eval-samples", "0",
            "--runs-dir", Path.Combine(_dir, "runs"), "--run-id", runId, "--export-params", Path.Combine(_dir, runId + ".f32"),
        ];
        var reference = CliProcess.Run(["train", "--engine", "plain", .. Flags("plain")]);
        Assert.True(reference.ExitCode == 0, reference.StdErr);
        int port = NodeProcess.FreePort();
        using var coordinator = new NodeProcess(["node", "--role", "coordinator", "--port", port.ToString(), "--start-workers", "1", .. Flags("one")]);
        using var worker = new NodeProcess("node", "--role", "worker", "--seed-nodes", $"127.0.0.1:{port}", "--threads", "1");
        Assert.Equal(0, await coordinator.WaitForExitAsync(Timeout));

        List<JsonElement> Steps(string runId) => File.ReadAllLines(Path.Combine(_dir, "runs", runId, "events.clef"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("EventType", out var t) && t.GetString() == "StepCompleted").ToList();
        var one = Steps("one");
        Assert.Equal(30, one.Count);
        Assert.All(one, e => Assert.True(double.IsFinite(e.GetProperty("TraceSigmaEstimate").GetDouble()), $"step {e.GetProperty("Step")} has no noise estimate"));
        Assert.Contains(one, e => e.GetProperty("LrGain").GetDouble() is > 1.01 and < 3.5);
        Assert.Contains(one, e => e.GetProperty("LrGain").GetDouble() == 0.07 / 0.02);
        Assert.All(one, e => Assert.True(e.GetProperty("LrGain").GetDouble() <= 0.07 / 0.02, $"step {e.GetProperty("Step")}'s gain passes --max-lr"));
        // The same gains up to float rounding: the two processes' kernels run on different thread counts (measured ~1e-8 apart;
        // a gain without the halves' estimate is 1, and halves cut elsewhere give gains that differ in the second digit).
        var plainGains = Steps("plain").Select(e => e.GetProperty("LrGain").GetDouble()).ToList();
        Assert.Equal(plainGains.Count, one.Count);
        for (int i = 0; i < one.Count; i++) Assert.Equal(plainGains[i], one[i].GetProperty("LrGain").GetDouble(), 1e-5);
        double worst = CliProcess.MaxAbsDifference(Path.Combine(_dir, "plain.f32"), Path.Combine(_dir, "one.f32"));
        Assert.True(worst <= 1e-4, $"the one-worker cluster differs from the plain loop by {worst:E2}");
    }
}
