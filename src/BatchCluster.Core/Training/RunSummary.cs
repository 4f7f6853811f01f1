using System.Text.Json.Serialization;

namespace BatchCluster.Core.Training;

/// <summary>
/// The one-line JSON summary printed last on stdout by every run. <c>train_accuracy</c> is measured
/// in eval mode on the fixed training subset (NaN when it is off); <c>generalization_gap</c> is
/// train accuracy minus validation accuracy.
/// </summary>
public sealed record RunSummary(
    [property: JsonPropertyName("run_id")] string RunId,
    [property: JsonPropertyName("steps")] long Steps,
    [property: JsonPropertyName("epochs")] double Epochs,
    [property: JsonPropertyName("global_batch")] int GlobalBatch,
    [property: JsonPropertyName("workers")] int Workers,
    [property: JsonPropertyName("final_train_loss")] double FinalTrainLoss,
    [property: JsonPropertyName("val_loss")] double ValidationLoss,
    [property: JsonPropertyName("val_accuracy")] double ValidationAccuracy,
    [property: JsonPropertyName("test_accuracy")] double TestAccuracy,
    [property: JsonPropertyName("samples_per_s")] double SamplesPerSecond,
    [property: JsonPropertyName("params_l2")] double ParamsL2,
    [property: JsonPropertyName("log_path")] string LogPath,
    [property: JsonPropertyName("train_accuracy")] double TrainAccuracy,
    [property: JsonPropertyName("generalization_gap")] double GeneralizationGap);
