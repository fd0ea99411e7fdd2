/*
 * streamgrad's native kernels: shared declarations of the per-ISA matrix products
 * (gemm-*.c, one translation unit per instruction set, all from gemm-impl.h) and the
 * portable parts (kernels.c: activations, optimizers, the passes, the helper thread).
 */
#ifndef STREAMGRAD_KERNELS_H
#define STREAMGRAD_KERNELS_H

#include <stddef.h>

/* activation codes: pipeline/kernels-native.ts and assembly/f64.ts use the same numbers */
enum { ACT_LINEAR = 0, ACT_RELU = 1, ACT_LEAKY_RELU = 2, ACT_SIGN = 3, ACT_SIGMOID = 4, ACT_TANH = 5, ACT_SOFTMAX = 6, ACT_NONE = 7 };
#define LEAKY_SLOPE 0.01 /* pipeline/activations.ts LEAKY_RELU_SLOPE */

/*
 * One matrix product, rows [i0, i1) of C (the caller splits rows between threads):
 *   C[i][j] = init + Σ_{p<P} A[i·ais + p·aps] · B(p, j),  j < N
 * init is C[i][j] itself when `accumulate`, else bias[j] (or 0 without bias); when `act`
 * is not ACT_NONE, C2[i][j] = act(C[i][j]) too (the fused activation). B(p, j) is
 * B[p·ldb + j], or, when `packed`, panels of `nr` columns: B[(j / nr)·P·nr + p·nr + j % nr]
 * (zero-padded). A and B hold doubles for the float64 products, floats for float32.
 */
typedef struct {
  int N, P;
  const void *A; long ais, aps;
  const void *B; long ldb; int packed;
  double *C; long ldc;
  const double *bias;
  int accumulate;
  double *C2; int act;
  int trans; /* C and C2 hold the transpose: element (i, j) at [j·ldc + i], and bias is per row i */
} prod_args;

/* The kernels of one instruction set. */
typedef struct {
  const char *name;
  int mr;        /* rows per register tile */
  int nr64, nr32; /* columns per register tile (float64, float32): the panel width of packed B */
  void (*prod64)(const prod_args *a, int i0, int i1);
  void (*prod32)(const prod_args *a, int i0, int i1);
  /* Wᵀ in panels of nr columns (W is m×n, row j = neuron j), as float64 or float32 */
  void (*pack_wt64)(const double *W, int m, int n, double *out);
  void (*pack_wt32)(const double *W, int m, int n, float *out);
  /* float64 → float32 */
  void (*narrow)(const double *src, float *dst, size_t len);
  /* z = x·Wᵀ + b for a few rows, no packing: dot products along k (batch 1) */
  void (*dot_forward)(const double *x, const double *W, const double *b, double *z, double *a, int rows, int n, int m, int act);
  /* gW = deltaᵀ·x (fresh or added) and dx = delta·W (unless NULL) for a few rows: no packing (batch 1) */
  void (*small_backward)(const double *x, const double *d, const double *W, double *gW, double *dx, int rows, int n, int m, int fresh);
} isa_kernels;

extern const isa_kernels isa_avx512, isa_avx2, isa_sse2;

/* the instruction set in use (kernels.c) */
const isa_kernels *sg_isa(void);

static inline double act1(int kind, double v) {
  if (kind == ACT_RELU) return v > 0 ? v : 0;
  if (kind == ACT_LEAKY_RELU) return v > 0 ? v : LEAKY_SLOPE * v;
  if (kind == ACT_SIGN) return v > 0 ? 1.0 : v < 0 ? -1.0 : v; /* Math.sign: ±0 and NaN pass through */
  return v;
}

#endif
