/*
 * This CPU's peak floating-point rate, one thread: 24 independent vector fused
 * multiply-add chains (enough to cover any FMA unit's latency × throughput), compiled
 * with -march=native so the widest vectors the compiler may use are used, timed in CPU time
 * (on a shared machine, wall time would count other processes' turns). bench/native.ts
 * runs it to report GFLOP/s as a fraction of peak.
 *
 *   gcc -O2 -march=native -o peak bench/peak.c && ./peak      one JSON line
 */
#include <stdio.h>
#include <time.h>

#include "vector.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); /* CPU time: a loaded machine's waits do not count */
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define CHAINS 16
/* CHAINS accumulators in registers (named, so that none lives in memory) */
#define PEAK(T, V, name) \
  static double name(long iters, T *sink) { \
    const V m = (V){0} + (T)0.999999, c = (V){0} + (T)1e-7; \
    V a0 = (V){0} + (T)0; V a1 = (V){0} + (T)1; V a2 = (V){0} + (T)2; V a3 = (V){0} + (T)3; V a4 = (V){0} + (T)4; V a5 = (V){0} + (T)5; V a6 = (V){0} + (T)6; V a7 = (V){0} + (T)7; V a8 = (V){0} + (T)8; V a9 = (V){0} + (T)9; V a10 = (V){0} + (T)10; V a11 = (V){0} + (T)11; V a12 = (V){0} + (T)12; V a13 = (V){0} + (T)13; V a14 = (V){0} + (T)14; V a15 = (V){0} + (T)15; \
    double t0 = now(); \
    for (long i = 0; i < iters; i++) { a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c; a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c; a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c; a12 = a12 * m + c; a13 = a13 * m + c; a14 = a14 * m + c; a15 = a15 * m + c; } \
    double t = now() - t0; \
    *sink = a0[0] + a1[0] + a2[0] + a3[0] + a4[0] + a5[0] + a6[0] + a7[0] + a8[0] + a9[0] + a10[0] + a11[0] + a12[0] + a13[0] + a14[0] + a15[0]; \
    return 2.0 * CHAINS * (VBYTES / sizeof(T)) * (double)iters / t / 1e9; \
  }
PEAK(double, vd, peak64)
PEAK(float, vf, peak32)

int main(void) {
  double s64; float s32;
  double best64 = 0, best32 = 0;
  for (int rep = 0; rep < 5; rep++) {
    double g = peak64(20000000, &s64); if (g > best64) best64 = g;
    g = peak32(20000000, &s32); if (g > best32) best32 = g;
  }
  printf("{\"vector_bits\":%d,\"gflops_f64\":%.2f,\"gflops_f32\":%.2f,\"sink\":%g}\n", VBYTES * 8, best64, best32, s64 + s32);
  return 0;
}
