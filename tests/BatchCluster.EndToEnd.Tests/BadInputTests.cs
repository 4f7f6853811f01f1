namespace BatchCluster.EndToEnd.Tests;

/// <summary>Bad input: exit code 2, one clear sentence naming what was wrong, no stack trace, nothing written.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly string _runs = Directory.CreateTempSubdirectory("bad-input-runs-").FullName;

    public void Dispose() => Directory.Delete(_runs, recursive: true);

    [Theory]
    [InlineData("--lr-scaling must be one of none|linear|sqrt|adascale, not 'cubic'", "--lr-scaling", "cubic")]
    [InlineData("--global-batch takes a whole number of samples of at least 1, or 'auto' (the run chooses it), not '0'", "--global-batch", "0")]
    [InlineData("--batch-range takes MIN:MAX with 1 ≤ MIN ≤ MAX (e.g. 32:4096), not '64'", "--global-batch", "auto", "--batch-range", "64")]
    [InlineData("--batch-range applies to --global-batch auto only", "--batch-range", "32:64")]
    [InlineData("--noise-window applies where the run estimates the gradient noise: --global-batch auto or --lr-scaling adascale", "--noise-window", "5")]
    [InlineData("--noise-window must be", "--global-batch", "auto", "--noise-window", "-1")]
    [InlineData("--max-lr caps AdaScale's gain, so it applies with --lr-scaling adascale (the default of --global-batch auto); under another rule give the rate itself with --lr", "--lr-scaling", "linear", "--max-lr", "0.4")]
    [InlineData("--max-lr 0.05 is below --lr 0.1: the ceiling must be at least the base rate", "--global-batch", "auto", "--max-lr", "0.05")]
    [InlineData("--batch-schedule: its steps must rise, but 3 follows 5 in '5:64,3:128'", "--batch-schedule", "5:64,3:128")]
    [InlineData("give either --global-batch auto or --batch-schedule", "--global-batch", "auto", "--batch-schedule", "0:64")]
    [InlineData("--lr-scaling adascale is derived for SGD (with or without momentum), not adam", "--lr-scaling", "adascale", "--optimizer", "adam")]
    [InlineData("--bn-batch applies to --model cnn-bn (the model with batch norm), not 'mlp'", "--bn-batch", "16")]
    [InlineData("--global-batch 100 is not a whole number of ghost batches of --bn-batch 16: use a multiple of 16", "--model", "cnn-bn", "--bn-batch", "16", "--global-batch", "100")]
    [InlineData("--micro-batch 24 is not a whole number of ghost batches of --bn-batch 16", "--model", "cnn-bn", "--bn-batch", "16", "--micro-batch", "24")]
    [InlineData("--batch-schedule's batch 100 is not a whole number of ghost batches of --bn-batch 16", "--model", "cnn-bn", "--bn-batch", "16", "--batch-schedule", "0:64,5:100")]
    [InlineData("--batch-range 32:100 has an end that is not a whole number of ghost batches of --bn-batch 16", "--model", "cnn-bn", "--bn-batch", "16", "--global-batch", "auto", "--batch-range", "32:100")]
    [InlineData("--bn-batch must be a whole number from 2", "--model", "cnn-bn", "--bn-batch", "1")]
    [InlineData("--workers 40 is more than the smallest global batch of the run, 32", "--global-batch", "auto", "--workers", "40")]
    [InlineData("--lr must be a number greater than 0", "--lr", "-0.1")]
    [InlineData("--metrics-host needs --metrics-port P", "--metrics-host", "0.0.0.0")]
    [InlineData("--metrics-port must be a whole number from 1 to 65535, not '0'", "--metrics-port", "0")]
    [InlineData("give either --steps or --epochs, not both", "--steps", "3", "--epochs", "1")]
    [InlineData("unknown flag --bogus", "--bogus", "1")]
    [InlineData("--engine must be one of actors|plain, not 'gpu'", "--engine", "gpu")]
    [InlineData("--shuffle must be one of true|false, not 'maybe'", "--shuffle", "maybe")]
    [InlineData("--optimizer must be one of sgd|momentum|adam, not 'lbfgs'", "--optimizer", "lbfgs")]
    [InlineData("--model must be one of mlp|cnn|cnn-bn, not 'resnet'", "--model", "resnet")]
    [InlineData("--workers 9 is more than --global-batch 8", "--workers", "9", "--global-batch", "8")]
    [InlineData("--nesterov applies to --optimizer momentum only", "--nesterov", "true")]
    [InlineData("--run-id may hold only letters", "--run-id", "../escape")]
    [InlineData("flag --steps needs a value", "--steps")]
    [InlineData("apt-get install dataset-fashion-mnist", "--data-dir", "/nonexistent/fashion")]
    [InlineData("--global-batch 999999 is larger than the 6000 training samples", "--dataset", "synthetic", "--global-batch", "999999", "--workers", "1")]
    [InlineData("--split must be one of declared|capacity, not 'equal'", "--split", "equal")]
    [InlineData("--transfer-precision must be one of fp32|bf16, not 'fp8'", "--transfer-precision", "fp8")]
    [InlineData("--transfer-precision applies to workers in other processes", "--transfer-precision", "bf16")]
    [InlineData("--reduce ring reduces around worker processes (node --role coordinator, scripts/run-cluster.sh, scripts/run-hosts.sh); the workers of 'train' are one process and meet in memory", "--reduce", "ring")]
    [InlineData("--reduce must be one of star|ring, not 'tree'", "--reduce", "tree")]
    [InlineData("--ring-chunk applies to --reduce ring only", "--ring-chunk", "32")]
    [InlineData("--lr must be a number greater than 0 and at most", "--lr", "1e300")]
    [InlineData("--max-bad-steps must be a whole number from 1", "--max-bad-steps", "0")]
    [InlineData("--run-id may hold only letters, digits, '.', '_' and '-', and not only dots", "--run-id", ".")]
    [InlineData("--run-id may hold only letters, digits, '.', '_' and '-', and not only dots", "--run-id", "..")]
    [InlineData("--hidden must be a comma-separated list of whole numbers from 1 to 65536", "--hidden", "2000000000")]
    [InlineData("--micro-batch 512 is larger than --global-batch 128", "--micro-batch", "512", "--global-batch", "128")]
    [InlineData("--device must be cpu, ilgpu-cpu, cuda or cuda:N, not 'tpu'", "--dataset", "synthetic", "--device", "tpu")]
    [InlineData("--device cuda:x: the CUDA device number must be a whole number from 0, e.g. cuda:0", "--dataset", "synthetic", "--device", "cuda:x")]
    [InlineData("--device ilgpu-cpu runs the MLP only (--model mlp); 'cnn' needs --device cpu", "--dataset", "synthetic", "--device", "ilgpu-cpu", "--model", "cnn")]
    public void Bad_train_flags_are_refused_clearly(string expected, params string[] flags)
    {
        var outcome = CliProcess.Run(["train", "--runs-dir", _runs, .. flags]);
        AssertRefused(outcome, expected);
        Assert.Empty(Directory.GetFileSystemEntries(_runs)); // nothing was written
    }

    /// <summary>A machine without a CUDA device (CI's): the run is refused before anything starts, naming what was looked for.</summary>
    [Fact]
    public void Cuda_where_there_is_none_is_refused_in_one_sentence()
    {
        if (File.Exists("/dev/nvidia0")) return; // a GPU machine opens it (scripts/gpu-check.sh covers that)
        AssertRefused(CliProcess.Run(["train", "--runs-dir", _runs, "--dataset", "synthetic", "--device", "cuda"]),
            "--device cuda: ILGPU found no CUDA device (it looks for the NVIDIA driver's libcuda.so and the devices it lists); use --device cpu or ilgpu-cpu here");
        Assert.Empty(Directory.GetFileSystemEntries(_runs));
    }

    [Theory]
    [InlineData("--transfer-precision bf16 needs the data plane", "--role", "coordinator", "--tensor-transport", "akka", "--transfer-precision", "bf16")]
    [InlineData("--tensor-transport must be one of dataplane|akka, not 'udp'", "--role", "coordinator", "--tensor-transport", "udp")]
    [InlineData("--local-workers must be a whole number from 0", "--role", "coordinator", "--local-workers", "-1")]
    [InlineData("--testing-slowdown must be a number", "--role", "worker", "--seed-nodes", "127.0.0.1:4053", "--testing-slowdown", "0.5")]
    [InlineData("--reduce ring needs the data plane; drop --tensor-transport akka", "--role", "coordinator", "--reduce", "ring", "--tensor-transport", "akka")]
    [InlineData("--reduce ring takes workers in other processes only; drop --local-workers and start them as worker nodes (node --role worker)",
        "--role", "coordinator", "--reduce", "ring", "--local-workers", "1")]
    [InlineData("--testing-ring-fault takes kill|stop@reduce|gather@STEP, e.g. kill@reduce@10, not 'kill@10'",
        "--role", "worker", "--seed-nodes", "127.0.0.1:4053", "--testing-ring-fault", "kill@10")]
    public void Bad_node_flags_are_refused_clearly(string expected, params string[] flags)
    {
        string[] runsDir = flags.Contains("coordinator") ? ["--runs-dir", _runs] : []; // a worker writes no runs
        AssertRefused(CliProcess.Run(["node", .. runsDir, .. flags]), expected);
        Assert.Empty(Directory.GetFileSystemEntries(_runs));
    }

    /// <summary>bench noise checks what it can before it trains (the split) and what needs the data right after loading it.</summary>
    [Theory]
    [InlineData("--global-batch 250 does not split into --shares 4 equal shares: use a multiple of 4", "--global-batch", "250")]
    [InlineData("--batches 2000 of --batch-size 32 need 64000 images; the population has 50904", "--batches", "2000")]
    [InlineData("--curvature-samples 40000 is over half the 55000 training images: use at most 27500", "--curvature-samples", "40000")]
    public void Bad_bench_noise_flags_are_refused_clearly(string expected, params string[] flags) =>
        AssertRefused(CliProcess.Run(["bench", "noise", .. flags]), expected);

    /// <summary>A metrics port another process holds: refused before the run writes anything, the port named.</summary>
    [Fact]
    public void A_metrics_port_in_use_is_refused_in_one_sentence()
    {
        var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, NodeProcess.FreePort());
        holder.Start();
        try
        {
            int port = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
            AssertRefused(CliProcess.Run(["train", "--runs-dir", _runs, "--dataset", "synthetic", "--metrics-port", port.ToString()]),
                $"--metrics-port {port} cannot listen on 127.0.0.1");
            Assert.Empty(Directory.GetFileSystemEntries(_runs));
        }
        finally
        {
            holder.Stop();
        }
    }

    [Fact]
    public void An_unknown_command_is_refused()
    {
        AssertRefused(CliProcess.Run("frobnicate"), "unknown command 'frobnicate'");
    }

    [Fact]
    public void Corrupt_data_files_are_refused_with_the_file_named()
    {
        string dir = Directory.CreateTempSubdirectory("corrupt-data-").FullName;
        try
        {
            foreach (var name in new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
                File.WriteAllBytes(Path.Combine(dir, name), [0, 0, 0x08, 0x03, 0, 0, 0, 1]);
            var outcome = CliProcess.Run("train", "--runs-dir", _runs, "--data-dir", dir, "--steps", "1");
            AssertRefused(outcome, Path.Combine(dir, "train-images-idx3-ubyte") + ": 8 bytes is too short for an IDX images header");
            Assert.Empty(Directory.GetFileSystemEntries(_runs));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// The audit's diverging run (lr far too high) ended "completed", exit 0, with NaN parameters and NaN
    /// checkpoints. Now every non-finite step is skipped and logged, the third in a row stops the run
    /// with exit 1 and a hint, and the checkpoints left behind hold finite parameters.
    /// </summary>
    [Fact]
    public void A_diverging_run_stops_with_a_hint_and_finite_checkpoints()
    {
        string checkpoints = Path.Combine(_runs, "checkpoints");
        var outcome = CliProcess.Run("train", "--runs-dir", _runs, "--run-id", "diverge", "--lr", "1e30", "--steps", "40", "--workers", "2",
            "--global-batch", "64", "--eval-every", "0", "--train-eval-samples", "0", "--checkpoint-every", "1", "--checkpoint-dir", checkpoints);
        Assert.Equal(1, outcome.ExitCode);
        Assert.Contains("3 steps in a row", outcome.StdErr);
        Assert.Contains("lower --lr or set --clip-grad-norm", outcome.StdErr);
        Assert.DoesNotContain("   at ", outcome.StdErr);
        var lines = File.ReadAllLines(Path.Combine(_runs, "diverge", "events.clef"));
        Assert.Equal(3, lines.Count(l => l.Contains("\"EventType\":\"NonFiniteGradient\"")));
        Assert.Contains("\"EventType\":\"RunFailed\"", lines[^1]);
        var files = Directory.GetFiles(checkpoints, "*.bcck");
        Assert.NotEmpty(files);
        Assert.All(files, f => Assert.All(Core.Checkpoints.CheckpointStore.Read(f).Parameters, p => Assert.True(float.IsFinite(p))));
    }

    /// <summary>
    /// Output paths the audit found failing late (after training: the result lost) or with a stack
    /// trace: each is refused before anything runs or is written, in one sentence.
    /// </summary>
    [Fact]
    public void Output_paths_that_cannot_be_written_are_refused_before_training()
    {
        string file = Path.Combine(_runs, "a-file");
        File.WriteAllText(file, "");
        string[] common = ["--dataset", "synthetic", "--steps", "1"];
        AssertRefused(CliProcess.Run(["train", "--runs-dir", file, .. common]), $"--runs-dir {file} is a file, not a directory");
        AssertRefused(CliProcess.Run(["train", "--runs-dir", Path.Combine(file, "below"), .. common]), "is a file, so no directory can be made below it");
        AssertRefused(CliProcess.Run(["train", "--runs-dir", "/proc/batchcluster-runs", .. common]), "--runs-dir /proc/batchcluster-runs is not writable");
        AssertRefused(CliProcess.Run(["train", "--runs-dir", _runs, "--tensorboard", file, .. common]), $"--tensorboard {file} is a file");
        AssertRefused(CliProcess.Run(["train", "--runs-dir", _runs, "--export-params", _runs, .. common]), $"--export-params {_runs} is a directory");
        AssertRefused(CliProcess.Run(["train", "--runs-dir", _runs, "--trace-steps", _runs, .. common]), $"--trace-steps {_runs} is a directory; name a file inside it (e.g. {Path.Combine(_runs, "trace.json")})");
        AssertRefused(CliProcess.Run("analyze", _runs, "--out", file), $"--out {file} is a file, not a directory");
        AssertRefused(CliProcess.Run("probe", "--dataset", "synthetic", "--out", file), $"--out {file} is a file, not a directory");
        Assert.Equal([file], Directory.GetFileSystemEntries(_runs)); // nothing else was written
    }

    /// <summary>Flags are declared once (System.CommandLine): a mistyped one gets the nearest known ones; every command has --help; shells can complete.</summary>
    [Fact]
    public void A_mistyped_flag_gets_a_suggestion_and_every_command_has_help()
    {
        AssertRefused(CliProcess.Run("train", "--runs-dir", _runs, "--stepz", "3"), "unknown flag --stepz for 'train'; did you mean --steps?");
        AssertRefused(CliProcess.Run("node", "--role", "worker", "--seed-nodes", "127.0.0.1:1", "--steps", "3"), "--steps does not apply to --role worker");
        foreach (string[] command in new[] { new[] { "train" }, ["node"], ["sweep"], ["probe"], ["analyze"], ["bench", "overhead"], ["bench", "transport"], ["bench", "scale"], ["chaos"], ["soak"] })
        {
            var help = CliProcess.Run([.. command, "--help"]);
            Assert.Equal(0, help.ExitCode);
            Assert.Contains($"batchcluster {string.Join(' ', command)} ", help.StdOut);
            Assert.Contains("--help", help.StdOut);
        }
        // The shell asks with the command line and the cursor's position (as dotnet-suggest does).
        Assert.Equal(["--shuffle"], CliProcess.Run("[suggest:12]", "train --shuf").StdOutLines);
        Assert.Contains("momentum", CliProcess.Run("[suggest:19]", "train --optimizer m").StdOutLines);
        Assert.Empty(Directory.GetFileSystemEntries(_runs));
    }

    /// <summary>The audit's silent case: a micro-batch larger than every share changes nothing, and now says so.</summary>
    [Fact]
    public void A_micro_batch_larger_than_every_share_is_warned_about()
    {
        var outcome = CliProcess.Run("train", "--runs-dir", _runs, "--dataset", "synthetic", "--global-batch", "128", "--workers", "4",
            "--micro-batch", "64", "--steps", "2", "--eval-every", "0", "--train-eval-samples", "0");
        Assert.Equal(0, outcome.ExitCode);
        Assert.Contains("warning: --micro-batch 64 is larger than every share (32 samples at most with 4 workers", outcome.StdErr);
    }

    internal static void AssertRefused(CliProcess.Outcome outcome, string expected)
    {
        Assert.Equal(2, outcome.ExitCode);
        string error = outcome.StdErr.Trim();
        Assert.StartsWith("batchcluster: ", error);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("\n", error);      // one sentence
        Assert.DoesNotContain("   at ", error);  // no stack trace
    }
}
