/* AVX-512F kernels: 8 doubles / 16 floats per vector, 6 × 2 vectors of accumulators. */
#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx512f,avx2,fma")
#define ISA avx512
#define ISA_NAME "avx512"
#define VBYTES 64
#define MR 6
#include "gemm-impl.h"
#endif
