using System.Diagnostics;
using System.Globalization;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Probing;
using BatchCluster.Core.Training;
using BatchCluster.Gpu;
using BatchCluster.GpuCheck;
using Serilog.Core;

// The GPU check (scripts/gpu-check.sh): is the ILGPU backend right on this device, does it train, and do powers of two run faster here?
CheckOptions options;
try
{
    options = CheckOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"gpu-check: {e.Message}");
    return 2;
}
var model = ModelSpec.Mlp(256);
string deviceName;
DataSplits data;
try
{
    deviceName = ComputeBackends.Check(options.Device, model);
    data = FashionMnist.Load(options.DataDirectory);
}
catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException)
{
    Console.Error.WriteLine($"gpu-check: {e.Message}");
    return 2;
}
var invariant = CultureInfo.InvariantCulture;
Console.WriteLine($"gpu-check: {model} on {deviceName}; Fashion-MNIST from {options.DataDirectory}");
var summary = new List<(string Check, bool Passed, string Figures)>();

// 1. The same share on the device and on ILGPU's CPU accelerator (the backend CI checks against TorchSharp).
{
    var parameters = ManagedInit.Mlp(model, seed: 1);
    var ids = Enumerable.Range(0, options.ShareSamples).Select(i => (i * 7919) % data.Train.Count).ToArray();
    int microBatch = Math.Max(1, options.ShareSamples / 4);
    using var cpu = IlgpuDevice.Open("ilgpu-cpu");
    using var reference = new IlgpuMlpReplica(model, cpu);
    // On the CPU accelerator itself (a dry run), the candidate runs the tiled GEMM a GPU runs.
    using var candidate = options.Device == "ilgpu-cpu"
        ? new IlgpuMlpReplica(model, IlgpuDevice.Open("ilgpu-cpu"), ownsDevice: true, tile: 4)
        : new IlgpuMlpReplica(model, IlgpuDevice.Open(options.Device), ownsDevice: true);
    float[] expected = new float[reference.ParameterCount], actual = new float[candidate.ParameterCount];
    reference.LoadParameters(parameters);
    candidate.LoadParameters(parameters);
    var expectedShare = reference.ComputeGradientSum(data.Train, ids, microBatch, expected);
    var actualShare = candidate.ComputeGradientSum(data.Train, ids, microBatch, actual);
    double scale = expected.Max(v => Math.Abs(v));
    double gradient = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() / scale;
    double loss = Math.Abs(expectedShare.LossSum - actualShare.LossSum) / Math.Abs(expectedShare.LossSum);
    var rows = Enumerable.Range(0, Math.Min(4 * options.ShareSamples, data.Validation.Count)).ToArray(); // 2,000 by default
    var expectedEval = reference.Evaluate(data.Validation, rows, 500);
    var actualEval = candidate.Evaluate(data.Validation, rows, 500);
    bool passed = gradient <= 1e-5 && loss <= 1e-5 && Math.Abs(expectedEval.Correct - actualEval.Correct) <= 1;
    summary.Add(("exactness vs ILGPU's CPU accelerator (gradient and loss ≤ 1e-5 relative)", passed, string.Create(invariant,
        $"share of {ids.Length}: gradient {gradient:0.00e+00}, loss {loss:0.00e+00}; {rows.Length} validation images: {actualEval.Correct} vs {expectedEval.Correct} correct")));
}

// 2. Training on the device: the plain loop, SGD with momentum, as on the CPU.
{
    var train = options.TrainSamples > 0 && options.TrainSamples < data.Train.Count ? data.Train.Slice("train", 0, options.TrainSamples) : data.Train;
    var validation = options.EvalSamples > 0 && options.EvalSamples < data.Validation.Count ? data.Validation.Slice("validation", 0, options.EvalSamples) : data.Validation;
    var test = options.EvalSamples > 0 && options.EvalSamples < data.Test.Count ? data.Test.Slice("test", 0, options.EvalSamples) : data.Test;
    var config = new TrainingConfig
    {
        Dataset = "fashion-mnist", Model = model, GlobalBatch = 128, Epochs = options.Epochs, LearningRate = 0.05,
        Optimizer = new BatchCluster.Core.Optimizers.OptimizerSettings(BatchCluster.Core.Optimizers.OptimizerKind.Momentum), Engine = Engine.Plain,
        Device = options.Device, TrainEvalSamples = Math.Min(validation.Count, train.Count), Seed = 1,
    };
    var clock = Stopwatch.StartNew();
    var result = PlainTrainer.Run(config, new DataSplits(train, validation, test), ManagedInit.Mlp(model, seed: 1), new RunEvents(Logger.None, "gpu-check"), "",
        createReplica: ComputeBackends.ReplicasFor(options.Device));
    bool full = options.TrainSamples == 0 && options.EvalSamples == 0 && options.Epochs >= 2;
    // TorchSharp on the CPU, same settings (torch's initialisation): 0.857 validation after 2 epochs (docs/gpus.md).
    bool passed = !full || result.Summary.ValidationAccuracy >= 0.83;
    summary.Add(($"training {options.Epochs.ToString(invariant)} epochs of {train.Count} images (validation ≥ 0.83 after 2 full epochs)", passed, string.Create(invariant,
        $"validation {result.Summary.ValidationAccuracy:F4}, test {result.Summary.TestAccuracy:F4}, {result.Summary.SamplesPerSecond:F0} samples/s, {clock.Elapsed.TotalSeconds:F1} s")));
}

// 3. Step time per batch size around powers of two.
{
    var sizes = options.BatchSizes.Where(b => b <= data.Train.Count).ToArray();
    var results = BatchSizeProbe.Measure(model, data.Train, sizes, options.Repeats, createReplica: ComputeBackends.ReplicasFor(options.Device),
        parameters: ManagedInit.Mlp(model, seed: 1));
    Console.WriteLine();
    Console.WriteLine("| batch | median ms | p10 – p90 ms | samples/s |");
    Console.WriteLine("| ---: | ---: | ---: | ---: |");
    foreach (var r in results)
        Console.WriteLine(string.Create(invariant, $"| {r.BatchSize} | {r.MedianMs:F3} | {r.P10Ms:F3} – {r.P90Ms:F3} | {r.SamplesPerSecond:F0} |"));
    var effects = PowerOfTwoEffect.From(results);
    summary.Add(("do powers of two run faster? (median step vs the mean of ±1; negative: faster)", true,
        effects.Count == 0 ? "no power of two with both neighbours measured"
            : string.Join(", ", effects.Select(e => string.Create(invariant, $"{e.BatchSize}: {100 * e.RelativeStepTime:+0.0;-0.0;+0.0} %")))));
}

Console.WriteLine();
Console.WriteLine($"| check on {deviceName} | result | figures |");
Console.WriteLine("| --- | --- | --- |");
foreach (var (check, passed, figures) in summary) Console.WriteLine($"| {check} | {(passed ? "pass" : "FAIL")} | {figures} |");
return summary.All(s => s.Passed) ? 0 : 1;
