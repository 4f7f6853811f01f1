using System.Globalization;

namespace BatchCluster.GpuCheck;

/// <summary>
/// The check's flags (a handful, parsed by hand: the tool is published without the CLI's dependencies).
/// Defaults are the GPU check's; scripts/gpu-check.sh --dry-run makes them small enough for ILGPU's CPU accelerator.
/// </summary>
/// <param name="TrainSamples">Train on the first this many images (0: all).</param>
/// <param name="EvalSamples">Validate and test on the first this many images of each split (0: all).</param>
public sealed record CheckOptions(string Device, string DataDirectory, double Epochs, int TrainSamples, int EvalSamples, int ShareSamples, int Repeats, int[] BatchSizes)
{
    public static readonly int[] AroundPowersOfTwo =
        [31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097];

    public const string Usage =
        "usage: batchcluster-gpu-check [--device cuda|cuda:N|ilgpu-cpu] [--data-dir DIR] [--epochs E] [--train-samples N] [--eval-samples N] [--share-samples N] [--repeats R] [--batch-sizes B,B,…]";

    /// <exception cref="ArgumentException">A flag it does not know, or a value that is not a positive number.</exception>
    public static CheckOptions Parse(string[] args)
    {
        var options = new CheckOptions("cuda", "data", 2, 0, 0, 512, 30, AroundPowersOfTwo);
        for (int i = 0; i < args.Length; i++)
        {
            string flag = args[i];
            string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{flag} needs a value; {Usage}");
            options = flag switch
            {
                "--device" => options with { Device = value },
                "--data-dir" => options with { DataDirectory = value },
                "--epochs" => options with { Epochs = Positive(flag, value) },
                "--train-samples" => options with { TrainSamples = (int)Positive(flag, value) },
                "--eval-samples" => options with { EvalSamples = (int)Positive(flag, value) },
                "--share-samples" => options with { ShareSamples = (int)Positive(flag, value) },
                "--repeats" => options with { Repeats = (int)Positive(flag, value) },
                "--batch-sizes" => options with { BatchSizes = value.Split(',').Select(v => (int)Positive(flag, v)).ToArray() },
                _ => throw new ArgumentException($"unknown flag {flag}; {Usage}"),
            };
        }
        return options;
    }

    private static double Positive(string flag, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) && number > 0
            ? number
            : throw new ArgumentException($"{flag} must be a positive number, not '{value}'");
}
