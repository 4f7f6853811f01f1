using ILGPU;
using ILGPU.Algorithms;

namespace BatchCluster.Gpu;

/// <summary>
/// The shape of one matrix product C[M×N] = A[M×K]·B[K×N] over flat row-major buffers, where A and B
/// are read through strides (A(i,k) = a[i·A0 + k·A1], B(k,j) = b[k·B0 + j·B1]), so one kernel serves
/// X·Wᵀ, dZᵀ·X and dZ·W without transposing anything. <see cref="Accumulate"/> adds to C (gradient
/// sums across micro-batches); <see cref="AddBias"/> adds bias[j] (forward layers).
/// </summary>
public struct GemmShape
{
    public int M, N, K, A0, A1, B0, B1, Accumulate, AddBias;

    /// <summary>The side of a tile: a group of Tile × Tile threads computes one Tile × Tile block of C.</summary>
    public int Tile;
}

/// <summary>
/// The MLP's kernels. Every output value is computed by one thread that sums in a fixed order, so
/// the same inputs give the same bits on the same device: no atomics, no reductions whose order
/// depends on scheduling (the exactness promise needs the gradient to be a function of its inputs).
/// </summary>
public static class MlpKernels
{
    /// <summary>
    /// Tiled GEMM: each group stages a Tile × Tile block of A and of B in shared memory (dynamic: 2 × Tile²
    /// floats, so the tile can suit the device: 16 on a GPU, 4 on ILGPU's CPU accelerator, whose groups
    /// are 16 threads), then each thread accumulates its element of C over the block; K is walked in
    /// order, so the sum's order is fixed. Launched on ⌈N/Tile⌉ × ⌈M/Tile⌉ groups of Tile × Tile threads.
    /// </summary>
    public static void Gemm(GemmShape s, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        int tile = s.Tile;
        var shared = SharedMemory.GetDynamic<float>();
        var tileA = shared.SubView(0, tile * tile);
        var tileB = shared.SubView(tile * tile, tile * tile);
        int tx = Group.IdxX, ty = Group.IdxY;
        int row = Grid.IdxY * tile + ty;
        int col = Grid.IdxX * tile + tx;
        float sum = 0;
        for (int k0 = 0; k0 < s.K; k0 += tile)
        {
            int ka = k0 + tx, kb = k0 + ty;
            tileA[ty * tile + tx] = row < s.M && ka < s.K ? a[row * s.A0 + ka * s.A1] : 0f;
            tileB[ty * tile + tx] = kb < s.K && col < s.N ? b[kb * s.B0 + col * s.B1] : 0f;
            Group.Barrier();
            for (int k = 0; k < tile; k++) sum += tileA[ty * tile + k] * tileB[k * tile + tx];
            Group.Barrier();
        }
        if (row >= s.M || col >= s.N) return;
        int at = row * s.N + col;
        float value = s.AddBias != 0 ? sum + bias[col] : sum;
        c[at] = s.Accumulate != 0 ? c[at] + value : value;
    }

    /// <summary>
    /// The same product, one thread per element of C with no shared memory: K walked in the same order,
    /// so the same bits as <see cref="Gemm"/>. For ILGPU's CPU accelerator, which emulates a group's
    /// barriers with OS threads and runs the tiled kernel many times slower.
    /// </summary>
    public static void GemmUntiled(Index2D at, GemmShape s, ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, ArrayView<float> bias)
    {
        int row = at.Y, col = at.X;
        float sum = 0;
        for (int k = 0; k < s.K; k++) sum += a[row * s.A0 + k * s.A1] * b[k * s.B0 + col * s.B1];
        int index = row * s.N + col;
        float value = s.AddBias != 0 ? sum + bias[col] : sum;
        c[index] = s.Accumulate != 0 ? c[index] + value : value;
    }

    /// <summary>ReLU in place (its output also serves as the backward mask: output &gt; 0 exactly where input &gt; 0).</summary>
    public static void Relu(Index1D i, ArrayView<float> x)
    {
        if (x[i] < 0) x[i] = 0;
    }

    /// <summary>Backward of ReLU in place: the gradient passes where the layer's output was positive.</summary>
    public static void ReluBackward(Index1D i, ArrayView<float> gradient, ArrayView<float> output)
    {
        if (output[i] <= 0) gradient[i] = 0;
    }

    /// <summary>
    /// One sample per thread: the softmax cross-entropy of its logits against its label (summed over
    /// the batch on the host, in double), the gradient of that loss with respect to the logits
    /// (softmax − one-hot), and whether the arg-max (the first, as torch's) is the label.
    /// </summary>
    public static void SoftmaxCrossEntropy(Index1D i, ArrayView<float> logits, ArrayView<int> labels, ArrayView<float> gradient,
        ArrayView<float> loss, ArrayView<int> correct, int classes)
    {
        int o = i * classes;
        float max = logits[o];
        int best = 0;
        for (int c = 1; c < classes; c++)
        {
            if (logits[o + c] > max)
            {
                max = logits[o + c];
                best = c;
            }
        }
        float sum = 0;
        for (int c = 0; c < classes; c++) sum += XMath.Exp(logits[o + c] - max);
        float logSumExp = max + XMath.Log(sum);
        int label = labels[i];
        loss[i] = logSumExp - logits[o + label];
        for (int c = 0; c < classes; c++) gradient[o + c] = XMath.Exp(logits[o + c] - logSumExp) - (c == label ? 1f : 0f);
        correct[i] = best == label ? 1 : 0;
    }

    /// <summary>One column per thread: bias[j] += Σ over the rows of x[row, j], rows in order.</summary>
    public static void AddColumnSums(Index1D j, ArrayView<float> x, ArrayView<float> bias, int rows, int columns)
    {
        float sum = 0;
        for (int r = 0; r < rows; r++) sum += x[r * columns + j];
        bias[j] += sum;
    }
}
