/* AVX2 + FMA kernels: 4 doubles / 8 floats per vector, 6 × 2 vectors of accumulators (12 of 16 registers). */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
#define ISA avx2
#define ISA_NAME "avx2"
#define VBYTES 32
#define MR 6
#include "gemm-impl.h"
#endif
