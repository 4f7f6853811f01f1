using BatchCluster.Core.Numerics;

namespace BatchCluster.Core.Tests.Numerics;

/// <summary>The vector loops must equal their scalar definitions exactly, including the partial last vector.</summary>
public class FlatMathTests
{
    public static TheoryData<int> Lengths => new() { 0, 1, 7, 8, 9, 31, 33, 784, 1001, 5003 };

    private static float[] Values(int n, int seed) => Enumerable.Range(0, n).Select(i => (float)Math.Sin(i * 0.37 + seed) * (seed + 1)).ToArray();

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Element_wise_operations_equal_scalar_ones(int n)
    {
        float[] x = Values(n, 1), y = Values(n, 2);
        var sum = (float[])y.Clone();
        FlatMath.AddInPlace(sum, x);
        Assert.Equal(y.Zip(x, (a, b) => a + b), sum);

        var divided = (float[])y.Clone();
        FlatMath.DivideInPlace(divided, 7f);
        Assert.Equal(y.Select(a => a / 7f), divided);

        var scaled = (float[])y.Clone();
        FlatMath.ScaleInPlace(scaled, 0.3f);
        Assert.Equal(y.Select(a => a * 0.3f), scaled);

        var multiplyAdded = (float[])y.Clone();
        FlatMath.MultiplyAddInPlace(multiplyAdded, x, 0.3f);
        Assert.Equal(y.Zip(x, (a, b) => a + b * 0.3f), multiplyAdded);

        // The fused add and norm: the same values as the add, the same bits as the norm taken after it.
        var fused = (float[])y.Clone();
        double fusedNorm = FlatMath.AddInPlaceAndSquaredNorm(fused, x);
        Assert.Equal(sum, fused);
        Assert.Equal(FlatMath.SquaredNorm(sum), fusedNorm);

        double exact = x.Sum(a => (double)a * a);
        Assert.True(Math.Abs(FlatMath.SquaredNorm(x) - exact) <= 1e-6 * exact, "squared norm off by more than 1e-6 relative");
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Pixels_become_exactly_x_over_255(int n)
    {
        var pixels = Enumerable.Range(0, n).Select(i => (byte)(i * 37 % 256)).ToArray();
        var floats = new float[n];
        FlatMath.BytesToUnitFloats(pixels, floats);
        Assert.Equal(pixels.Select(p => p / 255f), floats);
    }

    [Fact]
    public void Writes_stay_inside_the_span()
    {
        var buffer = Enumerable.Repeat(5f, 20).ToArray();
        FlatMath.ScaleInPlace(buffer.AsSpan(2, 11), 2f);
        Assert.Equal(new[] { 5f, 5f }, buffer[..2]);
        Assert.All(buffer[2..13], v => Assert.Equal(10f, v));
        Assert.All(buffer[13..], v => Assert.Equal(5f, v));
    }

    /// <summary>At lr 1e9 the audit saw params_l2 = ∞ with every parameter finite: the squares were summed in float32.</summary>
    [Fact]
    public void The_squared_norm_of_large_finite_values_is_finite_and_exact()
    {
        var x = Enumerable.Repeat(1e30f, 1001).ToArray();
        double norm = FlatMath.SquaredNorm(x);
        double exact = 1001 * (double)1e30f * 1e30f;
        Assert.True(double.IsFinite(norm));
        Assert.True(Math.Abs(norm - exact) <= 1e-12 * exact, $"{norm} vs {exact}");
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void All_finite_finds_a_nan_or_infinity_anywhere(int n)
    {
        var x = Values(n, 3);
        Assert.True(FlatMath.AllFinite(x));
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            for (int i = 0; i < n; i++)
            {
                var y = (float[])x.Clone();
                y[i] = bad;
                Assert.False(FlatMath.AllFinite(y), $"missed {bad} at {i} of {n}");
            }
        Assert.True(FlatMath.AllFinite(Enumerable.Repeat(float.MaxValue, n).ToArray()));
    }
}
