/*
 * The per-ISA kernels, compiled once per instruction set: a translation unit defines ISA
 * (the suffix), VBYTES (the vector width) and MR (rows per register tile), sets its target
 * with `#pragma GCC target`, and includes this file. GCC's vector extensions then become
 * AVX-512, AVX2 + FMA or SSE2 code; `acc += b * s` contracts to a fused multiply-add where
 * the target has one (so results may differ from js/wasm in the last bits).
 */
#include <string.h>
#include "kernels.h"

#define GLUE2(a, b) a##_##b
#define NAME2(a, b) GLUE2(a, b)

typedef double NAME2(vd, ISA) __attribute__((vector_size(VBYTES), aligned(8), may_alias));
typedef float NAME2(vf, ISA) __attribute__((vector_size(VBYTES), aligned(4), may_alias));

#define T double
#define V NAME2(vd, ISA)
#define L (VBYTES / 8)
#define SFX 64
#include "gemm-body.h"
#undef T
#undef V
#undef L
#undef SFX

#define T float
#define V NAME2(vf, ISA)
#define L (VBYTES / 4)
#define SFX 32
#include "gemm-body.h"
#undef T
#undef V
#undef L
#undef SFX

#define VD NAME2(vd, ISA)
#define LD (VBYTES / 8)

static void NAME2(narrow, ISA)(const double *src, float *dst, size_t len) {
  for (size_t q = 0; q < len; q++) dst[q] = (float)src[q];
}

static inline double NAME2(hsum, ISA)(VD v) {
  double s = 0;
  for (int q = 0; q < LD; q++) s += v[q];
  return s;
}

/* Batch-1 forward: four neurons at once, vectors along k, one reduction per neuron. */
static void NAME2(dot_forward, ISA)(const double *x, const double *W, const double *b, double *z, double *a, int rows, int n, int m, int act) {
  const int kv = n / LD * LD;
  for (int i = 0; i < rows; i++) {
    const double *xi = x + (long)i * n;
    double *zi = z + (long)i * m, *ai = a + (long)i * m;
    int j = 0;
    for (; j + 4 <= m; j += 4) {
      const double *w0 = W + (long)j * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
      VD s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
      for (int k = 0; k < kv; k += LD) {
        const VD xv = *(const VD *)(xi + k);
        s0 += xv * *(const VD *)(w0 + k); s1 += xv * *(const VD *)(w1 + k);
        s2 += xv * *(const VD *)(w2 + k); s3 += xv * *(const VD *)(w3 + k);
      }
      double t0 = NAME2(hsum, ISA)(s0), t1 = NAME2(hsum, ISA)(s1), t2 = NAME2(hsum, ISA)(s2), t3 = NAME2(hsum, ISA)(s3);
      for (int k = kv; k < n; k++) { const double xk = xi[k]; t0 += xk * w0[k]; t1 += xk * w1[k]; t2 += xk * w2[k]; t3 += xk * w3[k]; }
      zi[j] = b[j] + t0; zi[j + 1] = b[j + 1] + t1; zi[j + 2] = b[j + 2] + t2; zi[j + 3] = b[j + 3] + t3;
    }
    for (; j < m; j++) {
      const double *w0 = W + (long)j * n;
      VD s0 = {0};
      for (int k = 0; k < kv; k += LD) s0 += *(const VD *)(xi + k) * *(const VD *)(w0 + k);
      double t0 = NAME2(hsum, ISA)(s0);
      for (int k = kv; k < n; k++) t0 += xi[k] * w0[k];
      zi[j] = b[j] + t0;
    }
    if (act != ACT_NONE) for (int q = 0; q < m; q++) ai[q] = act1(act, zi[q]);
  }
}

/*
 * The backward products of a few rows (batch 1 online learning), no packing, no tiles: gW's
 * rows and dx's rows are built along contiguous k with vectors (GCC vectorises these loops
 * for the target, multiply-adds fused where it has FMA). gW = deltaᵀ·x, written fresh or
 * added; dx = delta·W when dx is not NULL.
 */
static void NAME2(small_backward, ISA)(const double *x, const double *d, const double *W, double *gW, double *dx,
                                      int rows, int n, int m, int fresh) {
  for (int j = 0; j < m; j++) {
    double *restrict g = gW + (long)j * n;
    const double *x0 = x;
    const double d0 = d[j];
    if (fresh) {
      for (int k = 0; k < n; k++) g[k] = d0 * x0[k];
      for (int i = 1; i < rows; i++) {
        const double di = d[(long)i * m + j];
        const double *restrict xi = x + (long)i * n;
        for (int k = 0; k < n; k++) g[k] += di * xi[k];
      }
    } else {
      for (int i = 0; i < rows; i++) {
        const double di = d[(long)i * m + j];
        const double *restrict xi = x + (long)i * n;
        for (int k = 0; k < n; k++) g[k] += di * xi[k];
      }
    }
  }
  if (dx == NULL) return;
  /* dx: up to four vectors of a row of dx stay in registers over all of j (accumulating
     in memory would wait on a store for every j) */
  for (int i = 0; i < rows; i++) {
    double *o = dx + (long)i * n;
    const double *di = d + (long)i * m;
    int k0 = 0;
    for (; k0 + 4 * LD <= n; k0 += 4 * LD) {
      VD s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
      for (int j = 0; j < m; j++) {
        const double dj = di[j];
        const double *w = W + (long)j * n + k0;
        s0 += *(const VD *)w * dj; s1 += *(const VD *)(w + LD) * dj;
        s2 += *(const VD *)(w + 2 * LD) * dj; s3 += *(const VD *)(w + 3 * LD) * dj;
      }
      *(VD *)(o + k0) = s0; *(VD *)(o + k0 + LD) = s1; *(VD *)(o + k0 + 2 * LD) = s2; *(VD *)(o + k0 + 3 * LD) = s3;
    }
    for (; k0 + LD <= n; k0 += LD) {
      VD s0 = {0};
      for (int j = 0; j < m; j++) s0 += *(const VD *)(W + (long)j * n + k0) * di[j];
      *(VD *)(o + k0) = s0;
    }
    for (; k0 < n; k0++) {
      double s0 = 0;
      for (int j = 0; j < m; j++) s0 += W[(long)j * n + k0] * di[j];
      o[k0] = s0;
    }
  }
}

const isa_kernels NAME2(isa, ISA) = {
  .name = ISA_NAME,
  .mr = MR,
  .nr64 = 2 * (VBYTES / 8),
  .nr32 = 2 * (VBYTES / 4),
  .prod64 = NAME2(prod64, ISA),
  .prod32 = NAME2(prod32, ISA),
  .pack_wt64 = NAME2(pack_wt64, ISA),
  .pack_wt32 = NAME2(pack_wt32, ISA),
  .narrow = NAME2(narrow, ISA),
  .dot_forward = NAME2(dot_forward, ISA),
  .small_backward = NAME2(small_backward, ISA),
};
