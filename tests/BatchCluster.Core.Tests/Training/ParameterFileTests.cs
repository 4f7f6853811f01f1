using BatchCluster.Core.Training;

namespace BatchCluster.Core.Tests.Training;

public sealed class ParameterFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("params-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Round_trips_as_raw_little_endian_float32()
    {
        string path = Path.Combine(_dir, "p.f32");
        ParameterFile.Write(path, new[] { 1.5f, -2f, 0f });
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(12, bytes.Length);
        Assert.Equal(1.5f, BitConverter.ToSingle(bytes, 0));
        Assert.Equal(new[] { 1.5f, -2f, 0f }, ParameterFile.Read(path, 3));
        Assert.Single(Directory.GetFiles(_dir)); // no temp file left behind
    }

    [Fact]
    public void A_file_of_the_wrong_size_is_refused_with_both_sizes()
    {
        string path = Path.Combine(_dir, "p.f32");
        ParameterFile.Write(path, new float[5]);
        var e = Assert.Throws<InvalidDataException>(() => ParameterFile.Read(path, 6));
        Assert.Contains("20 bytes", e.Message);
        Assert.Contains("6 float32 values (24 bytes)", e.Message);
    }

    [Fact]
    public void Non_finite_values_are_refused()
    {
        string path = Path.Combine(_dir, "p.f32");
        ParameterFile.Write(path, new[] { 1f, float.NaN });
        Assert.Contains("value 1 is NaN", Assert.Throws<InvalidDataException>(() => ParameterFile.Read(path, 2)).Message);
    }

    [Fact]
    public void Writing_into_a_missing_directory_fails_and_leaves_the_old_file_alone()
    {
        string path = Path.Combine(_dir, "p.f32");
        ParameterFile.Write(path, new[] { 7f });
        Assert.Throws<DirectoryNotFoundException>(() => ParameterFile.Write(Path.Combine(_dir, "absent", "p.f32"), new[] { 1f }));
        Assert.Equal(new[] { 7f }, ParameterFile.Read(path, 1));
    }
}
