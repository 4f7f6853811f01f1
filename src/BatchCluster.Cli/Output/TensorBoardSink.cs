using System.Threading.Channels;
using BatchCluster.Core.Training;
using Serilog.Core;
using Serilog.Events;
using TorchSharp;

namespace BatchCluster.Cli.Output;

/// <summary>
/// TensorBoard scalars (--tensorboard DIR) from the run's own events, so TensorBoard shows exactly
/// what the event log holds: StepCompleted's loss, learning rate, gradient norm, time split,
/// throughput, bytes, memory and B_simple, and EvalCompleted's loss/accuracy per split and the
/// generalization gap (tags: step/…, time/…, throughput/…, transfer/…, memory/…, noise_scale/…,
/// eval_train/…, eval_validation/…, eval_test/…). TorchSharp's SummaryWriter opens and closes its file for every scalar, so
/// the writing happens on a background task: a step never waits for TensorBoard.
/// </summary>
public sealed class TensorBoardSink : ILogEventSink, IDisposable
{
    private readonly Channel<(string Tag, float Value, int Step)> _queue =
        Channel.CreateUnbounded<(string, float, int)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writer;

    private static readonly (string Property, string Tag)[] StepScalars =
    [
        ("Loss", "step/loss"), ("LearningRate", "step/learning_rate"), ("GradNorm", "step/grad_norm"),
        ("StepMs", "time/step_ms"), ("ComputeMs", "time/compute_ms"), ("TransferMs", "time/transfer_ms"),
        ("UpdateMs", "time/update_ms"), ("WaitMs", "time/wait_ms"), ("SamplesPerSecond", "throughput/samples_per_s"),
        ("BytesMoved", "transfer/bytes_moved"), ("PeakMemoryMb", "memory/peak_mb"), ("BSimple", "noise_scale/b_simple"),
    ];

    /// <param name="directory">The run's TensorBoard directory (one per run, so runs compare side by side).</param>
    public TensorBoardSink(string directory)
    {
        var writer = torch.utils.tensorboard.SummaryWriter(directory);
        _writer = Task.Run(async () =>
        {
            await foreach (var (tag, value, step) in _queue.Reader.ReadAllAsync())
                // Wall time in Unix seconds (TensorBoard's unit; the default would write 0).
                writer.add_scalar(tag, value, step, walltime: DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        });
    }

    public void Emit(LogEvent logEvent)
    {
        if (!logEvent.Properties.TryGetValue(RunEvents.EventTypeProperty, out var type) || type is not ScalarValue { Value: string eventType }) return;
        if (Number(logEvent, "Step") is not double stepValue) return;
        int step = (int)stepValue;
        if (eventType == "StepCompleted")
        {
            // TensorBoard's step axis is "updates applied", like EvalCompleted's Step: step k is logged at k + 1.
            foreach (var (property, tag) in StepScalars)
                Enqueue(tag, Number(logEvent, property), step + 1);
        }
        else if (eventType == "EvalCompleted" && logEvent.Properties.TryGetValue("Split", out var split) && split is ScalarValue { Value: string name })
        {
            // eval_train is the fixed training subset in eval mode, not the batch loss of step/loss.
            Enqueue($"eval_{name}/loss", Number(logEvent, "Loss"), step);
            Enqueue($"eval_{name}/accuracy", Number(logEvent, "Accuracy"), step);
            Enqueue($"eval_{name}/generalization_gap", Number(logEvent, "GeneralizationGap"), step);
        }
    }

    private void Enqueue(string tag, double? value, int step)
    {
        if (value is double v && double.IsFinite(v)) _queue.Writer.TryWrite((tag, (float)v, step));
    }

    private static double? Number(LogEvent e, string name) =>
        e.Properties.TryGetValue(name, out var value) && value is ScalarValue { Value: IConvertible number } && number is not string
            ? Convert.ToDouble(number, System.Globalization.CultureInfo.InvariantCulture)
            : null;

    /// <summary>Writes what is queued, then returns: the files are complete when the run's logger is disposed.</summary>
    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _writer.GetAwaiter().GetResult();
    }
}
