using BatchCluster.Analysis.Logs;
using BatchCluster.Analysis.Summary;

namespace BatchCluster.EndToEnd.Tests.Analysis;

/// <summary>
/// Resumed runs are one run: logs written as CLEF lines (what the CLI writes, cut to the properties
/// the reader needs), read, and stitched by the checkpoint the second one resumed from.
/// </summary>
public sealed class RunStitcherTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 8, 0, 0, TimeSpan.Zero);

    /// <summary>A log: RunStarted at <paramref name="start"/>, optionally a resume, steps one second apart with a validation after each 10th, checkpoints every 10.</summary>
    private static RunLog Log(string runId, DateTimeOffset start, long fromStep, long toStep, string? resumedFrom = null, bool completes = false)
    {
        var lines = new List<string>
        {
            $$"""{"@t":"{{start:O}}","EventType":"RunStarted","RunId":"{{runId}}","SchemaVersion":7,"Engine":"actors","Workers":2,"Model":"mlp(8)","GlobalBatch":32,"StepsPerEpoch":10,"TotalSteps":{{toStep}},"Config":{"Seed":1} }""",
        };
        if (resumedFrom is not null)
            lines.Add($$"""{"@t":"{{start.AddSeconds(0.5):O}}","EventType":"ResumedFromCheckpoint","Step":{{fromStep}},"CheckpointPath":"{{resumedFrom}}"}""");
        var at = start.AddSeconds(1);
        for (long step = fromStep; step < toStep; step++)
        {
            at = at.AddSeconds(1);
            lines.Add($$"""{"@t":"{{at:O}}","EventType":"StepCompleted","Step":{{step}},"Epoch":0,"Loss":{{1.0 / (step + 1)}},"LearningRate":0.1,"GradNorm":1,"StepMs":1000,"ComputeMs":500,"TransferMs":100,"UpdateMs":100,"WaitMs":300,"SamplesPerSecond":32}""");
            if ((step + 1) % 10 == 0)
            {
                lines.Add($$"""{"@t":"{{at:O}}","EventType":"EvalCompleted","Step":{{step + 1}},"Epoch":1,"Split":"validation","Loss":0.5,"Accuracy":{{0.5 + step / 1000.0}}}""");
                lines.Add($$"""{"@t":"{{at:O}}","EventType":"CheckpointWritten","Step":{{step + 1}},"CheckpointPath":"ckpt/checkpoint-abc-{{step + 1:D8}}.bcck"}""");
            }
        }
        if (completes)
            lines.Add($$"""{"@t":"{{at:O}}","EventType":"RunCompleted","Steps":{{toStep}},"ValAccuracy":0.6,"TestAccuracy":0.59,"SamplesPerSecond":32,"WallSeconds":1}""");
        return EventLogReader.Read(new StringReader(string.Join('\n', lines)), $"/runs/{runId}/events.clef");
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_of_another_log_becomes_one_run_without_the_steps_it_went_back_over()
    {
        // Killed after step 24 (last checkpoint before step 20); an hour later resumed from that checkpoint to step 40.
        var killed = Log("first", T0, 0, 25);
        var resumed = Log("second", T0.AddHours(1), 20, 40, resumedFrom: "/elsewhere/ckpt/checkpoint-abc-00000020.bcck", completes: true);
        var unrelated = Log("other", T0, 0, 30);

        var runs = RunStitcher.Stitch([resumed, killed, unrelated]);

        Assert.Equal(2, runs.Count);
        var run = runs.Single(r => r.RunId == "first");
        Assert.Equal(Enumerable.Range(0, 40).Select(i => (long)i), run.Steps.Select(s => s.Step));
        Assert.Equal(T0.AddHours(1).AddSeconds(2), run.Steps.Single(s => s.Step == 20).At); // the continuation's step 20, not the dropped one
        Assert.Equal([10L, 20, 30, 40], run.Validations.Select(v => v.Step));
        Assert.Equal(RunStatus.Completed, run.Status);
        Assert.Equal(["first", "second"], run.Segments.Select(s => s.RunId));

        // Training time leaves out the hour between the processes: steps 0–19 (20 s from the first step's start), then 20 more.
        var row = RunRow.From(run, targetAccuracy: 0.525);
        Assert.Equal(2, row.Segments);
        Assert.Equal(40, row.Steps);
        Assert.Equal(30, row.StepsToTarget); // 0.5 + 29/1000 ≥ 0.525 first at step 30
        double firstSegment = 25; // the first step started 1 s after the first process, whose last event came at 26 s
        double intoSecond = 11; // the validation after step 29, logged 11 s after the second process started
        Assert.Equal(firstSegment + intoSecond, row.SecondsToTarget, 6);
        Assert.Equal(32, row.SamplesPerSecond, 6); // over all 40 steps, not the continuation's RunCompleted alone
    }

    [Fact]
    public void A_log_resumed_from_a_checkpoint_no_log_wrote_stays_a_run_of_its_own()
    {
        var orphan = Log("orphan", T0.AddHours(1), 20, 40, resumedFrom: "ckpt/checkpoint-zzz-00000020.bcck");
        var other = Log("other", T0, 0, 25);
        var runs = RunStitcher.Stitch([orphan, other]);
        Assert.Equal(["orphan", "other"], runs.Select(r => r.RunId).Order());
        Assert.Equal(20, runs.Single(r => r.RunId == "orphan").Steps.Count);
    }

    [Fact]
    public void Two_resumes_from_one_checkpoint_continue_the_run_once_and_a_chain_stitches_in_order()
    {
        var first = Log("first", T0, 0, 25);
        var second = Log("second", T0.AddHours(1), 20, 35, resumedFrom: "ckpt/checkpoint-abc-00000020.bcck");
        var branch = Log("branch", T0.AddHours(2), 20, 28, resumedFrom: "ckpt/checkpoint-abc-00000020.bcck"); // wrote no later checkpoint
        var third = Log("third", T0.AddHours(3), 30, 50, resumedFrom: "ckpt/checkpoint-abc-00000030.bcck", completes: true);

        var runs = RunStitcher.Stitch([third, branch, second, first]);

        var whole = runs.Single(r => r.RunId == "first");
        Assert.Equal(["first", "second", "third"], whole.Segments.Select(s => s.RunId));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), whole.Steps.Select(s => s.Step));
        Assert.Single(runs, r => r.RunId == "branch"); // resumed later from the same checkpoint: its own run
        Assert.Equal(2, runs.Count);
    }
}
