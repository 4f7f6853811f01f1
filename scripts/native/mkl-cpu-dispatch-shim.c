/*
 * libbatchcluster-mkl-dispatch.so: answers "yes" to the question Intel MKL asks before it picks
 * its AVX-512/AVX2 GEMM kernels. The MKL linked into TorchSharp's libtorch_cpu.so asks
 * mkl_serv_intel_cpu_true() and, on AMD CPUs, falls back to a generic kernel about 2x slower.
 * libtorch_cpu.so calls the function through its PLT, so a definition loaded earlier with
 * RTLD_GLOBAL (TorchRuntime does that before the first TorchSharp call) is the one it binds.
 * Measured effect and the reasons: docs/decisions.md, "MKL kernels on AMD CPUs".
 */
int mkl_serv_intel_cpu_true(void) { return 1; }
