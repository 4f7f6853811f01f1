using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using BatchCluster.Core.Optimizers;

namespace BatchCluster.Core.Checkpoints;

/// <summary>
/// The checkpoint files of one configuration in one directory,
/// <c>checkpoint-&lt;fingerprint&gt;-&lt;step&gt;.bcck</c>. A file is written to a temporary name,
/// flushed to disk, then renamed over its final name, so a crash mid-write leaves the previous good
/// checkpoint untouched. Each file ends with a SHA-256 of its content; a file whose hash does not
/// match is never used. The newest <see cref="Keep"/> checkpoints <b>of this configuration</b> are
/// kept: runs of other configurations may share the directory, and pruning never touches their
/// files (nor could it delete the file another run has just written).
///
/// Format (little-endian): "BCCK", version (int32), fingerprint (string), next step (int64),
/// epoch (int32), index in epoch (int32), parameters (int32 n, n float32), optimizer name
/// (string), optimizer step count (int64), buffers (int32 k, then k × (int32 n, n float32)),
/// from version 2 the batch sizing (byte 0 = none, or 1 then batch (int32), sample offset in the
/// epoch (int32), τ (double), the noise averages (3 doubles), window start (int64); version 1 files,
/// which have none, are fixed-batch runs and still read), from version 3 the batch-norm running statistics (byte 0 = none, or 1
/// then int32 n, n float32), from version 4 in the batch sizing the persistent gradient (byte 0 = none, or 1 then its window's sum
/// (int32 n, n float32), steps (int32), noise, progress, smoothed signal, weight (4 doubles), the window's index (int64)), then the 32-byte SHA-256 of
/// everything before it.
/// </summary>
public sealed partial class CheckpointStore
{
    public const int Keep = 3;
    private const int FormatVersion = 4;
    private static readonly byte[] Magic = "BCCK"u8.ToArray();

    /// <param name="fingerprint">The configuration's <see cref="ConfigFingerprint"/>: only its files are read, written and pruned.</param>
    public CheckpointStore(string directory, string fingerprint)
    {
        if (!FingerprintText().IsMatch(fingerprint))
            throw new ArgumentException($"a configuration fingerprint is lowercase hex, not '{fingerprint}'", nameof(fingerprint));
        Directory = directory;
        Fingerprint = fingerprint;
    }

    /// <summary>The store of <paramref name="config"/>'s checkpoints: its --checkpoint-dir and fingerprint.</summary>
    public static CheckpointStore Of(Training.TrainingConfig config) => new(config.CheckpointDirectory, ConfigFingerprint.Of(config));

    public string Directory { get; }
    public string Fingerprint { get; }

    public string PathFor(long step) => Path.Combine(Directory, $"checkpoint-{Fingerprint}-{step:D10}.bcck");

    /// <returns>The path written.</returns>
    public string Write(CheckpointState state)
    {
        using var prepared = Prepare(state);
        prepared.Commit();
        return prepared.Path;
    }

    /// <summary>
    /// Writes <paramref name="state"/> to a temporary file and flushes it to disk; the file takes its name (and older ones
    /// are pruned) only at <see cref="PreparedCheckpoint.Commit"/>, and disposing an uncommitted one deletes it. Between the
    /// two the session logs CheckpointWritten, so no checkpoint is ever on disk that the event log does not name.
    /// </summary>
    public PreparedCheckpoint Prepare(CheckpointState state)
    {
        if (state.ConfigFingerprint != Fingerprint)
            throw new ArgumentException($"a checkpoint of fingerprint {state.ConfigFingerprint} does not belong in the store of {Fingerprint}", nameof(state));
        if (!IsFinite(state))
            throw new InvalidDataException($"refusing to write a checkpoint before step {state.NextStep}: it holds non-finite parameters or optimizer state");
        System.IO.Directory.CreateDirectory(Directory);
        RemoveStaleTemporaries();
        string path = PathFor(state.NextStep);
        string temp = path + $".{Environment.ProcessId}.tmp";
        try
        {
            using var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None);
            byte[] body = Encode(state);
            stream.Write(body);
            stream.Write(SHA256.HashData(body));
            stream.Flush(flushToDisk: true);
            return new PreparedCheckpoint(this, state.NextStep, path, temp, stream.Length);
        }
        catch
        {
            if (File.Exists(temp)) File.Delete(temp);
            throw;
        }
    }

    /// <summary>A checkpoint on disk under its temporary name (<see cref="Prepare"/>).</summary>
    public sealed class PreparedCheckpoint : IDisposable
    {
        private readonly CheckpointStore _store;
        private readonly long _step;
        private readonly string _temp;
        private bool _committed;

        internal PreparedCheckpoint(CheckpointStore store, long step, string path, string temp, long bytes) =>
            (_store, _step, Path, _temp, Bytes) = (store, step, path, temp, bytes);

        /// <summary>The name it takes at <see cref="Commit"/>.</summary>
        public string Path { get; }
        public long Bytes { get; }

        /// <summary>Renames the file over its final name, then keeps the newest <see cref="Keep"/> at or below its step.</summary>
        public void Commit()
        {
            File.Move(_temp, Path, overwrite: true);
            _committed = true;
            // Never touch a newer file (another run's) or this one.
            foreach (string old in _store.Files().Where(f => StepOf(f) < _step).Skip(Keep - 1)) File.Delete(old);
        }

        public void Dispose()
        {
            if (!_committed && File.Exists(_temp)) File.Delete(_temp);
        }
    }

    /// <summary>This configuration's checkpoint files, newest first.</summary>
    public IReadOnlyList<string> Files() => AllFiles().Where(f => FingerprintOf(f) == Fingerprint).ToList();

    /// <summary>Checkpoint files of other configurations in the same directory.</summary>
    public IReadOnlyList<string> OtherFiles() => AllFiles().Where(f => FingerprintOf(f) != Fingerprint).ToList();

    private IEnumerable<string> AllFiles() =>
        !System.IO.Directory.Exists(Directory) ? [] :
        System.IO.Directory.GetFiles(Directory, "checkpoint-*.bcck").Where(f => FileName().IsMatch(Path.GetFileName(f)))
            .OrderByDescending(f => StepOf(f)).ThenBy(f => f, StringComparer.Ordinal);

    private static string FingerprintOf(string path) => FileName().Match(Path.GetFileName(path)).Groups["fingerprint"].Value;

    private static long StepOf(string path) => long.Parse(FileName().Match(Path.GetFileName(path)).Groups["step"].Value, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// The newest checkpoint of this configuration that reads back intact. Damaged files are
    /// skipped and reported in <paramref name="skipped"/>, with the path of the one returned in
    /// <paramref name="path"/>.
    /// </summary>
    public CheckpointState LoadNewest(out string path, out IReadOnlyList<string> skipped)
    {
        var damaged = new List<string>();
        skipped = damaged;
        foreach (string file in Files())
        {
            try
            {
                var state = Read(file);
                if (state.ConfigFingerprint != Fingerprint)
                    throw new InvalidDataException($"holds fingerprint {state.ConfigFingerprint}, not the {Fingerprint} of its name");
                path = file;
                return state;
            }
            catch (InvalidDataException e)
            {
                damaged.Add($"{file}: {e.Message}");
            }
        }
        string where = Path.GetFullPath(Directory);
        int others = OtherFiles().Count;
        throw new InvalidDataException(
            damaged.Count > 0 ? $"--resume: no intact checkpoint of this configuration in {where} ({string.Join("; ", damaged)})"
            : others > 0 ? $"--resume: {where} holds {others} checkpoint(s) of another configuration but none of this run's (fingerprint {Fingerprint}); resume with the same data, model, batch, learning-rate, optimizer and seed flags, or use another --checkpoint-dir"
            : $"--resume: no checkpoint in {where}; start without --resume, or point --checkpoint-dir at the run's checkpoints");
    }

    /// <summary>The newest intact checkpoint of this configuration, or null when there is none (never throws on content).</summary>
    public string? NewestIntact()
    {
        try
        {
            LoadNewest(out string path, out _);
            return path;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static CheckpointState Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < Magic.Length + 32 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException("not a BatchCluster checkpoint");
        var body = bytes.AsSpan(0, bytes.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            throw new InvalidDataException("checksum mismatch (damaged or partly written)");
        using var r = new BinaryReader(new MemoryStream(bytes, 0, body.Length));
        r.ReadBytes(Magic.Length);
        int version = r.ReadInt32();
        if (version is < 1 or > FormatVersion) throw new InvalidDataException($"format version {version}, expected 1 to {FormatVersion}");
        string fingerprint = r.ReadString();
        long nextStep = r.ReadInt64();
        int epoch = r.ReadInt32();
        int index = r.ReadInt32();
        float[] parameters = ReadFloats(r);
        string optimizer = r.ReadString();
        long optimizerSteps = r.ReadInt64();
        var buffers = new float[r.ReadInt32()][];
        for (int i = 0; i < buffers.Length; i++) buffers[i] = ReadFloats(r);
        BatchSizing.BatchSizingState? sizing = null;
        if (version >= 2 && r.ReadByte() == 1)
        {
            sizing = new(r.ReadInt32(), r.ReadInt32(), r.ReadDouble(), new Gradients.NoiseScaleState(r.ReadDouble(), r.ReadDouble(), r.ReadDouble()), r.ReadInt64());
            if (version >= 4 && r.ReadByte() == 1)
                sizing = sizing with { Persistent = new(ReadFloats(r), r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadInt64()) };
        }
        float[]? running = version >= 3 && r.ReadByte() == 1 ? ReadFloats(r) : null;
        var state = new CheckpointState(fingerprint, nextStep, epoch, index, parameters, new OptimizerState(optimizer, optimizerSteps, buffers), sizing, running);
        if (!IsFinite(state)) throw new InvalidDataException("holds non-finite parameters or optimizer state");
        return state;
    }

    private static bool IsFinite(CheckpointState state) =>
        Numerics.FlatMath.AllFinite(state.Parameters) && state.Optimizer.Buffers.All(b => Numerics.FlatMath.AllFinite(b))
        && (state.RunningStatistics is null || Numerics.FlatMath.AllFinite(state.RunningStatistics));

    /// <summary>
    /// Temporary files of this configuration left by a process that was killed mid-write (their
    /// name holds the writer's process id): removed once that process is gone. A live writer's file
    /// is never touched.
    /// </summary>
    private void RemoveStaleTemporaries()
    {
        foreach (string temp in System.IO.Directory.GetFiles(Directory, $"checkpoint-{Fingerprint}-*.bcck.*.tmp"))
        {
            string[] parts = Path.GetFileName(temp).Split('.');
            if (parts.Length < 3 || !int.TryParse(parts[^2], out int pid) || pid == Environment.ProcessId) continue;
            if (ProcessIsAlive(pid)) continue;
            try
            {
                File.Delete(temp);
            }
            catch (IOException)
            {
                // Another process cleaned it up first.
            }
        }
    }

    private static bool ProcessIsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static byte[] Encode(CheckpointState state)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream))
        {
            w.Write(Magic);
            w.Write(FormatVersion);
            w.Write(state.ConfigFingerprint);
            w.Write(state.NextStep);
            w.Write(state.Epoch);
            w.Write(state.IndexInEpoch);
            WriteFloats(w, state.Parameters);
            w.Write(state.Optimizer.Name);
            w.Write(state.Optimizer.StepCount);
            w.Write(state.Optimizer.Buffers.Count);
            foreach (var buffer in state.Optimizer.Buffers) WriteFloats(w, buffer);
            w.Write((byte)(state.Sizing is null ? 0 : 1));
            if (state.Sizing is { } sizing)
            {
                w.Write(sizing.Batch);
                w.Write(sizing.Offset);
                w.Write(sizing.Tau);
                w.Write(sizing.Noise.EmaGradSquared);
                w.Write(sizing.Noise.EmaTraceSigma);
                w.Write(sizing.Noise.Weight);
                w.Write(sizing.WindowStart);
                w.Write((byte)(sizing.Persistent is null ? 0 : 1));
                if (sizing.Persistent is { } persistent)
                {
                    WriteFloats(w, persistent.WindowSum);
                    w.Write(persistent.Steps);
                    w.Write(persistent.Noise);
                    w.Write(persistent.Progress);
                    w.Write(persistent.EmaSignal);
                    w.Write(persistent.Weight);
                    w.Write(persistent.Window);
                }
            }
            w.Write((byte)(state.RunningStatistics is null ? 0 : 1));
            if (state.RunningStatistics is { } running) WriteFloats(w, running);
        }
        return stream.ToArray();
    }

    private static void WriteFloats(BinaryWriter w, float[] values)
    {
        w.Write(values.Length);
        w.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    }

    private static float[] ReadFloats(BinaryReader r)
    {
        int n = r.ReadInt32();
        if (n < 0 || (long)n * 4 > r.BaseStream.Length - r.BaseStream.Position) throw new InvalidDataException($"array of {n} values overruns the file");
        var values = new float[n];
        r.BaseStream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    [GeneratedRegex(@"^checkpoint-(?<fingerprint>[0-9a-f]+)-(?<step>\d{10})\.bcck$")]
    private static partial Regex FileName();

    [GeneratedRegex("^[0-9a-f]+$")]
    private static partial Regex FingerprintText();
}
