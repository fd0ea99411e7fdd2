/*
 * The register-blocked product of one element type, included twice by gemm-impl.h:
 * T (double or float), V (a vector of L of them, GCC vector extensions), SFX (64 or 32).
 * MR rows × NV vectors of accumulators stay in registers for the whole of P; A is
 * broadcast one element at a time, B is read as vectors (contiguous along j).
 */
#define GLUE3(a, b, c) a##b##_##c
#define NAME3(a, b, c) GLUE3(a, b, c)
#define FN(base) NAME3(base, SFX, ISA)

/* rows r < mr of a tile of nv vectors: acc = Σ_p A(r, p) · B(p, ·) */
static inline __attribute__((always_inline)) void FN(tile)(
  const int mr, const int nv, const int P, const T *A, const long ais, const long aps, const T *B, const long ldb, T *out) {
  V acc[MR][2];
  for (int r = 0; r < MR; r++) { acc[r][0] = (V){0}; acc[r][1] = (V){0}; }
  for (int p = 0; p < P; p++) {
    const T *bp = B + (long)p * ldb;
    const V b0 = *(const V *)bp;
    const V b1 = nv > 1 ? *(const V *)(bp + L) : (V){0};
    const T *ap = A + (long)p * aps;
    for (int r = 0; r < MR; r++) {
      if (r >= mr) break;
      const T s = ap[r * ais];
      acc[r][0] += b0 * s;
      if (nv > 1) acc[r][1] += b1 * s;
    }
  }
  for (int r = 0; r < MR; r++) {
    if (r >= mr) break;
    *(V *)(out + r * 2 * L) = acc[r][0];
    if (nv > 1) *(V *)(out + r * 2 * L + L) = acc[r][1];
  }
}

/*
 * C (and C2) of rows [i, i + mr), columns [j, j + nc) from a tile's accumulators. The
 * pointers are read into locals once: the stores through C could alias `a` as far as the
 * compiler knows, and reloading them per element cost more than the arithmetic.
 */
static inline void FN(epilogue)(const prod_args *a, const T *acc, int i, int mr, int j, int nc) {
  const int act = a->act;
  double *const C = a->C, *const C2 = a->C2;
  const long ldc = a->ldc;
  const double *const bias = a->bias;
  if (a->trans) {
    /* C holds the transpose (the forward product computed as W·xᵀ): sample by sample, the
       tile's mr neurons are contiguous in C. C2 is computed from the value in a register,
       never read back from C: a vector load of scalars just stored cannot be forwarded
       from the store buffer and stalled the whole epilogue. */
    double bv[MR];
    for (int r = 0; r < mr; r++) bv[r] = bias != NULL ? bias[i + r] : -0.0; /* -0 + v is v, even for v = -0 */
    for (int q = 0; q < nc; q++) {
      double *const c = C + (long)(j + q) * ldc + i;
      double *const c2 = C2 + (long)(j + q) * ldc + i;
      if (act == ACT_NONE) for (int r = 0; r < mr; r++) c[r] = bv[r] + (double)acc[r * 2 * L + q];
      else if (act == ACT_RELU) for (int r = 0; r < mr; r++) { const double v = bv[r] + (double)acc[r * 2 * L + q]; c[r] = v; c2[r] = v > 0 ? v : 0; }
      else for (int r = 0; r < mr; r++) { const double v = bv[r] + (double)acc[r * 2 * L + q]; c[r] = v; c2[r] = act1(act, v); }
    }
    return;
  }
  for (int r = 0; r < mr; r++) {
    double *const c = C + (long)(i + r) * ldc + j;
    double *const c2 = C2 + (long)(i + r) * ldc + j;
    const T *t = acc + r * 2 * L;
    if (a->accumulate) { for (int q = 0; q < nc; q++) c[q] = c[q] + (double)t[q]; continue; } /* never with an activation */
    if (act == ACT_NONE) {
      if (bias != NULL) for (int q = 0; q < nc; q++) c[q] = bias[j + q] + (double)t[q];
      else for (int q = 0; q < nc; q++) c[q] = (double)t[q];
    } else if (act == ACT_RELU) {
      for (int q = 0; q < nc; q++) { const double v = bias != NULL ? bias[j + q] + (double)t[q] : (double)t[q]; c[q] = v; c2[q] = v > 0 ? v : 0; }
    } else {
      for (int q = 0; q < nc; q++) { const double v = bias != NULL ? bias[j + q] + (double)t[q] : (double)t[q]; c[q] = v; c2[q] = act1(act, v); }
    }
  }
}

/* one tile of mr rows at full width (nv vectors), dispatching to a constant row count */
static inline __attribute__((always_inline)) void FN(tile_any)(int mr, const int nv, int P, const T *A, long ais, long aps, const T *B, long ldb, T *out) {
  switch (mr) {
    case MR: FN(tile)(MR, nv, P, A, ais, aps, B, ldb, out); break;
    case 1: FN(tile)(1, nv, P, A, ais, aps, B, ldb, out); break;
    case 2: FN(tile)(2, nv, P, A, ais, aps, B, ldb, out); break;
    case 3: FN(tile)(3, nv, P, A, ais, aps, B, ldb, out); break;
#if MR > 4
    case 4: FN(tile)(4, nv, P, A, ais, aps, B, ldb, out); break;
    case 5: FN(tile)(5, nv, P, A, ais, aps, B, ldb, out); break;
#endif
    default: break;
  }
}

/*
 * Rows [i0, i1) of the product. Column panels of NC columns keep their slice of B in the
 * L2 cache while every row tile streams past it (the cache blocking); inside a panel,
 * tiles of MR rows × 2L columns, then one vector, then scalar columns.
 */
static void FN(prod)(const prod_args *a, int i0, int i1) {
  const T *A = (const T *)a->A, *B = (const T *)a->B;
  const int N = a->N, P = a->P;
  const long ais = a->ais, aps = a->aps;
  T acc[MR * 2 * L] __attribute__((aligned(64)));
  /* panel width: B's slice of P × NC elements within ~256 KiB */
  int NC = (int)((256 * 1024 / sizeof(T)) / (P > 0 ? P : 1));
  NC = NC / (2 * L) * (2 * L);
  if (NC < 2 * L) NC = 2 * L;
  for (int j0 = 0; j0 < N; j0 += NC) {
    const int j1 = j0 + NC < N ? j0 + NC : N;
    for (int i = i0; i < i1; i += MR) {
      const int mr = i1 - i < MR ? i1 - i : MR;
      const T *Ai = A + (long)i * ais;
      int j = j0;
      if (a->packed) {
        for (; j < j1; j += 2 * L) {
          const int nc = j1 - j < 2 * L ? j1 - j : 2 * L;
          /* a last panel of at most one vector's columns (W3's 10-neuron output layer) takes
             half the multiply-adds: the same sums for the columns kept */
          if (nc > L) FN(tile_any)(mr, 2, P, Ai, ais, aps, B + (long)(j / (2 * L)) * P * 2 * L, 2 * L, acc);
          else FN(tile_any)(mr, 1, P, Ai, ais, aps, B + (long)(j / (2 * L)) * P * 2 * L, 2 * L, acc);
          FN(epilogue)(a, acc, i, mr, j, nc);
        }
        continue;
      }
      for (; j + 2 * L <= j1; j += 2 * L) {
        FN(tile_any)(mr, 2, P, Ai, ais, aps, B + j, a->ldb, acc);
        FN(epilogue)(a, acc, i, mr, j, 2 * L);
      }
      if (j + L <= j1) {
        FN(tile_any)(mr, 1, P, Ai, ais, aps, B + j, a->ldb, acc);
        FN(epilogue)(a, acc, i, mr, j, L);
        j += L;
      }
      if (j < j1) { /* the last columns, fewer than a vector */
        const int nc = j1 - j;
        for (int r = 0; r < mr; r++) {
          for (int q = 0; q < nc; q++) {
            T s = 0;
            for (int p = 0; p < P; p++) s += Ai[r * ais + (long)p * aps] * B[(long)p * a->ldb + j + q];
            acc[r * 2 * L + q] = s;
          }
        }
        FN(epilogue)(a, acc, i, mr, j, nc);
      }
    }
  }
}

#if VBYTES == 64
/*
 * 8 neurons × 8 inputs of W, transposed in registers (three rounds of two-source shuffles,
 * vpermt2pd) and stored as 8 rows of 8 values of a panel: a scalar strided copy took a
 * third of a float32 forward pass.
 */
static inline void FN(pack_block8)(const double *W, long n, T *dst, long stride) {
  typedef double v8d __attribute__((vector_size(64), aligned(8), may_alias));
  typedef long long v8i __attribute__((vector_size(64)));
  typedef T v8t __attribute__((vector_size(8 * sizeof(T)), aligned(sizeof(T)), may_alias));
  v8d r[8], a[8], b[8];
  for (int c = 0; c < 8; c++) r[c] = *(const v8d *)(W + c * n);
  const v8i lo1 = { 0, 8, 2, 10, 4, 12, 6, 14 }, hi1 = { 1, 9, 3, 11, 5, 13, 7, 15 };
  const v8i lo2 = { 0, 1, 8, 9, 4, 5, 12, 13 }, hi2 = { 2, 3, 10, 11, 6, 7, 14, 15 };
  const v8i lo4 = { 0, 1, 2, 3, 8, 9, 10, 11 }, hi4 = { 4, 5, 6, 7, 12, 13, 14, 15 };
  for (int c = 0; c < 8; c += 2) { a[c] = __builtin_shuffle(r[c], r[c + 1], lo1); a[c + 1] = __builtin_shuffle(r[c], r[c + 1], hi1); }
  /* a[c]: inputs 0,2,4,6 of neurons c, c+1; a[c+1]: inputs 1,3,5,7 */
  for (int g = 0; g < 8; g += 4) {
    b[g] = __builtin_shuffle(a[g], a[g + 2], lo2);     /* inputs 0, 4 of neurons g..g+3 */
    b[g + 2] = __builtin_shuffle(a[g], a[g + 2], hi2); /* inputs 2, 6 */
    b[g + 1] = __builtin_shuffle(a[g + 1], a[g + 3], lo2); /* inputs 1, 5 */
    b[g + 3] = __builtin_shuffle(a[g + 1], a[g + 3], hi2); /* inputs 3, 7 */
  }
  for (int q = 0; q < 4; q++) {
    const v8d k_lo = __builtin_shuffle(b[q], b[q + 4], lo4); /* input q of all 8 neurons */
    const v8d k_hi = __builtin_shuffle(b[q], b[q + 4], hi4); /* input q + 4 */
    *(v8t *)(dst + q * stride) = __builtin_convertvector(k_lo, v8t);
    *(v8t *)(dst + (q + 4) * stride) = __builtin_convertvector(k_hi, v8t);
  }
}
#endif

/* Wᵀ (W m×n) as panels of 2L columns (neurons), zero-padded: out[(j/2L)·n·2L + k·2L + j%2L] = W[j][k] */
static void FN(pack_wt)(const double *W, int m, int n, T *out) {
  const int NRc = 2 * L;
  for (int j0 = 0; j0 < m; j0 += NRc) {
    T *panel = out + (long)(j0 / NRc) * n * NRc;
    const int nc = m - j0 < NRc ? m - j0 : NRc;
    if (nc < NRc) memset(panel, 0, sizeof(T) * (size_t)n * NRc);
#if VBYTES == 64
    if (nc == NRc && n >= 8) { /* full panels: 8×8 blocks in registers, the inputs past a multiple of 8 one by one */
      const int n8 = n / 8 * 8;
      for (int c0 = 0; c0 < NRc; c0 += 8)
        for (int k0 = 0; k0 < n8; k0 += 8) FN(pack_block8)(W + (long)(j0 + c0) * n + k0, n, panel + (long)k0 * NRc + c0, NRc);
      for (int c = 0; c < NRc; c++) {
        const double *w = W + (long)(j0 + c) * n;
        for (int k = n8; k < n; k++) panel[(long)k * NRc + c] = (T)w[k];
      }
      continue;
    }
#endif
    for (int c = 0; c < nc; c++) {
      const double *w = W + (long)(j0 + c) * n;
      for (int k = 0; k < n; k++) panel[(long)k * NRc + c] = (T)w[k];
    }
  }
}

#undef FN
#undef NAME3
#undef GLUE3
