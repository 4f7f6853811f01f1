using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using BatchCluster.Cli.Options;
using BatchCluster.Core.Data;
using BatchCluster.Core.Models;
using BatchCluster.Core.Optimizers;
using BatchCluster.Core.Probing;
using BatchCluster.Core.Training;
using Serilog.Core;

namespace BatchCluster.Cli.Commands;

/// <summary>
/// <c>batchcluster bench noise</c>: the noise scales at points of a real training run, measured directly (docs/adaptive-batch.md,
/// "What the estimator gets wrong"). The plain loop trains the MLP on Fashion-MNIST with the adaptive experiment's recipe
/// (momentum 0.9 or plain SGD, the rate at the run's batch, a linear warm-up of one epoch); after each of the given steps, with
/// the parameters of that step: |G|² over the training set, tr Σ and tr(HΣ) from disjoint small batches, GᵀHG, the run's own
/// estimator (shares of a global batch) for comparison, and — over the full gradients of the W − 1 steps that follow — how much
/// of the gradient persists: |mean of G_t|² against the mean of |G_t|². The Hessian-vector products are central differences of the gradient over a
/// held-out part of the training set (the last --curvature-samples images), which the other figures never touch.
/// </summary>
public static class BenchNoiseCommand
{
    private static readonly Option<int[]?> AtSteps = Opt.IntList("at-steps", "measure after these steps of training [default: 0,50,100,200,400]", 0, 1_000_000, "S[,S…]");
    private static readonly Option<int?> GlobalBatch = Opt.Int("global-batch", "the training run's batch, and the estimator's [default: 256]", 8, 8192, "B");
    private static readonly Option<int?> Shares = Opt.Int("shares", "shares the estimator cuts each global batch into [default: 4]", 2, 64);
    private static readonly Option<double?> LearningRate = Opt.Number("lr", "the training run's rate at its batch [default: 0.05]", 0, minExclusive: true);
    private static readonly Option<double?> Momentum = Opt.Number("momentum", "the training run's momentum; 0: plain SGD [default: 0.9]", 0, 0.999, helpName: "μ");
    private static readonly Option<int?> WarmupSteps = Opt.Int("warmup-steps", "linear warm-up of the rate [default: one epoch]", 0);
    private static readonly Option<int?> BatchSize = Opt.Int("batch-size", "b: samples per deviation batch for tr Σ and tr(HΣ) [default: 32]", 2, 4096, "b");
    private static readonly Option<int?> Batches = Opt.Int("batches", "K: deviation batches per point [default: 48]", 2, 100_000, "K");
    private static readonly Option<int?> CurvatureSamples = Opt.Int("curvature-samples", "held-out training images the Hessian is taken over [default: 4096]", 64, 50_000);
    private static readonly Option<double?> Step = Opt.Number("fd-step", "h: the central difference's step along each unit direction [default: 0.01]", 0, 1, minExclusive: true, helpName: "H");
    private static readonly Option<int[]?> Windows = Opt.IntList("windows", "W: also the full gradient at the W − 1 steps after each point, and how much of it persists over them (0: none) [default: 10,20]", 0, 1000, "W[,W…]");
    private static readonly Option<long?> Seed = Opt.Long("seed", "initial weights, data order and the batches drawn [default: 1]", 0);

    public static Command Create()
    {
        var command = new Command("noise", "B_simple and B_noise = tr(HΣ)/GᵀHG at points of a real training run, against the run's estimator")
        {
            AtSteps, GlobalBatch, Shares, LearningRate, Momentum, WarmupSteps, BatchSize, Batches, CurvatureSamples, Step, Windows, Seed,
        };
        command.SetAction(r => Run(r));
        return command;
    }

    private static int Run(ParseResult r)
    {
        int[] atSteps = (r.GetValue(AtSteps) ?? [0, 50, 100, 200, 400]).Distinct().Order().ToArray();
        int batch = r.GetValue(GlobalBatch) ?? 256, shares = r.GetValue(Shares) ?? 4, b = r.GetValue(BatchSize) ?? 32;
        int k = r.GetValue(Batches) ?? 48, held = r.GetValue(CurvatureSamples) ?? 4096;
        double lr = r.GetValue(LearningRate) ?? 0.05, h = r.GetValue(Step) ?? 0.01, momentum = r.GetValue(Momentum) ?? 0.9;
        long seed = r.GetValue(Seed) ?? 1;
        int[] windows = (r.GetValue(Windows) ?? [10, 20]).Where(w => w > 1).Distinct().Order().ToArray();
        int longest = windows.Length > 0 ? windows[^1] : 1;
        if (batch % shares != 0) throw new UsageException($"--global-batch {batch} does not split into --shares {shares} equal shares: use a multiple of {shares}");

        Core.Native.TorchRuntime.Initialise(Environment.ProcessorCount);
        var data = DataSource.Load("fashion-mnist", FashionMnist.DefaultDirectory, FashionMnist.DefaultValidationSize, seed);
        int trainCount = data.Train.Count;
        if (held > trainCount / 2) throw new UsageException($"--curvature-samples {held} is over half the {trainCount} training images: use at most {trainCount / 2}");
        int[] population = Enumerable.Range(0, trainCount - held).ToArray();
        int[] curvatureSet = Enumerable.Range(trainCount - held, held).ToArray();
        if ((long)b * k > population.Length) throw new UsageException($"--batches {k} of --batch-size {b} need {(long)b * k} images; the population has {population.Length}");

        int[] kept = atSteps.SelectMany(s => Enumerable.Range(s, longest)).Distinct().Order().ToArray();
        var parametersAt = TrainAndKeep(data, batch, lr, momentum, r.GetValue(WarmupSteps) ?? (trainCount + batch - 1) / batch, seed, kept);
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bench noise: mlp, fashion-mnist, trained at B {batch} ({(momentum > 0 ? $"momentum {momentum}" : "SGD")}, lr {lr}); G over {population.Length} images, tr Σ and tr(HΣ) from {k} batches of {b}, H over {held} held-out images (central differences, h {h}); the estimator: {Math.Min(100, population.Length / batch)} batches of {batch} in {shares} shares"));
        string windowHeads = string.Concat(windows.Select(w => $" mean of ‖G_t‖² over {w} steps | ‖mean of G_t‖² | tr Σ ÷ that |"));
        Console.Out.WriteLine($"| after step | ‖G‖² | tr Σ (± se) | B_simple | B_simple, the run's estimator | GᵀHG/‖G‖² | tr(HΣ)/tr Σ | B_noise = tr(HΣ)/GᵀHG (± se) | B_noise ÷ B_simple |{windowHeads}");
        Console.Out.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + string.Concat(windows.Select(_ => " ---: | ---: | ---: |")));
        var points = new List<Dictionary<string, object?>>();
        using var replica = new ModelReplica(ModelSpec.Mlp());
        foreach (int step in atSteps)
        {
            float[] parameters = parametersAt[step];
            replica.LoadParameters(parameters);
            var measured = NoiseScaleProbe.Measure(population, b, k, seed, replica.ParameterCount,
                (ids, into) => NoiseScaleProbe.MeanGradient(replica, data.Train, ids, into),
                v => NoiseScaleProbe.DirectionalCurvature(replica, data.Train, curvatureSet, parameters, v, h));
            var (estG2, estTrace) = NoiseScaleProbe.SharesEstimate(population, batch, shares, Math.Min(100, population.Length / batch), seed,
                replica.ParameterCount, (ids, into) => replica.ComputeGradientSum(data.Train, ids, ids.Length, into));
            double estimator = estTrace / estG2;
            // B_noise's standard error from tr(HΣ)'s alone: GᵀHG is one product along a direction known to high precision.
            double bNoiseError = measured.TraceHSigmaStandardError / measured.GradientCurvature;
            // Where the loss curves down along G (early in training it can), tr(HΣ)/GᵀHG is no noise scale: say so instead of a negative one.
            string bNoiseCells = measured.GradientCurvature > 0
                ? string.Create(CultureInfo.InvariantCulture, $"{measured.BNoise:F0} (± {bNoiseError:F0}) | {measured.BNoise / measured.BSimple:F2}")
                : "none: GᵀHG ≤ 0 | –";
            // The full gradients of the steps after this one, for how much of the gradient persists over W steps.
            var following = new List<float[]>();
            for (int t = step; t < step + longest; t++)
            {
                replica.LoadParameters(parametersAt[t]);
                var g = new float[replica.ParameterCount];
                NoiseScaleProbe.MeanGradient(replica, data.Train, population, g);
                following.Add(g);
            }
            var persistence = windows.Select(w => NoiseScaleProbe.Persistence(following.GetRange(0, w))).ToArray();
            string windowCells = string.Concat(persistence.Select(p => string.Create(CultureInfo.InvariantCulture,
                $" {p.MeanOfSquares:G4} | {p.SquareOfMean:G4} | {measured.TraceSigma / p.SquareOfMean:F0} |")));
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {step} | {measured.GradSquared:G4} | {measured.TraceSigma:G4} (± {measured.TraceSigmaStandardError:G2}) | {measured.BSimple:F0} | {estimator:F0} | {measured.CurvatureOfGradient:G4} | {measured.CurvatureOfNoise:G4} | {bNoiseCells} |{windowCells}"));
            var point = new Dictionary<string, object?>
            {
                ["step"] = step, ["grad_squared"] = measured.GradSquared, ["trace_sigma"] = measured.TraceSigma,
                ["b_simple"] = Math.Round(measured.BSimple, 2), ["b_simple_estimator"] = Math.Round(estimator, 2),
                ["curvature_of_gradient"] = measured.CurvatureOfGradient, ["curvature_of_noise"] = measured.CurvatureOfNoise,
                ["gradient_curvature"] = measured.GradientCurvature, ["trace_h_sigma"] = measured.TraceHSigma,
                ["b_noise"] = measured.GradientCurvature > 0 ? Math.Round(measured.BNoise, 2) : null, // none where GᵀHG ≤ 0
                ["b_noise_se"] = measured.GradientCurvature > 0 ? Math.Round(bNoiseError, 2) : null,
            };
            for (int i = 0; i < windows.Length; i++)
            {
                point[$"mean_grad_squared_w{windows[i]}"] = persistence[i].MeanOfSquares;
                point[$"squared_mean_grad_w{windows[i]}"] = persistence[i].SquareOfMean;
                point[$"b_persistent_w{windows[i]}"] = Math.Round(measured.TraceSigma / persistence[i].SquareOfMean, 2);
            }
            points.Add(point);
        }
        Console.Out.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object> { ["global_batch"] = batch, ["lr"] = lr, ["momentum"] = momentum, ["points"] = points }));
        return 0;
    }

    /// <summary>Trains the plain loop to the last of <paramref name="atSteps"/> (sorted) and keeps the parameters after each of them (0: the initial ones).</summary>
    private static Dictionary<int, float[]> TrainAndKeep(DataSplits data, int batch, double lr, double momentum, int warmupSteps, long seed, int[] atSteps)
    {
        var initial = ModelFactory.InitialParameters(ModelSpec.Mlp(), seed);
        var kept = new Dictionary<int, float[]> { [0] = (float[])initial.Clone() };
        int last = atSteps[^1];
        if (last == 0) return kept;
        var config = new TrainingConfig
        {
            Model = ModelSpec.Mlp(), GlobalBatch = batch, BaseBatch = batch, Steps = last, LearningRate = lr, WarmupSteps = warmupSteps,
            Optimizer = momentum > 0 ? new OptimizerSettings(OptimizerKind.Momentum, momentum) : new OptimizerSettings(OptimizerKind.Sgd), Seed = seed, Engine = Engine.Plain, Workers = 1,
            EvalEvery = 0, TrainEvalSamples = 0,
        };
        var wanted = atSteps.ToHashSet();
        PlainTrainer.Run(config, data, initial, new RunEvents(Logger.None, "bench"), "", (step, session) =>
        {
            int after = checked((int)session.NextStep); // steps applied so far
            if (wanted.Contains(after)) kept[after] = session.Parameters.ToArray();
        });
        return kept;
    }
}
