/*
 * The baseline kernels: SSE2 on x86-64 (2 doubles / 4 floats per vector, no FMA), or
 * whatever 16-byte vectors the target has elsewhere (GCC's vector extensions are portable).
 */
#define ISA sse2
#if defined(__x86_64__) || defined(__i386__)
#define ISA_NAME "sse2"
#else
#define ISA_NAME "generic"
#endif
#define VBYTES 16
#define MR 4
#include "gemm-impl.h"
