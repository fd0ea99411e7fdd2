/*
 * What two threads of this machine can give at once (issue #15): the pure fused-multiply-add
 * loop of bench/peak.c (16 independent vector chains, float64) on one thread alone and on
 * two threads at the same time, and the clock, from a chain of dependent integer adds (one
 * per cycle on any x86 core, and no vector unit involved) on one thread beside an idle or an
 * FMA-bound second thread.
 *
 * Each thread works in short windows (~0.5 ms) and records each window's wall time and its
 * own CPU time. Only windows that ran without preemption (CPU ≥ 97% of wall) count, and for
 * "two at once" only windows during which the other thread was also running unpreempted
 * (the other's clean windows cover it), so other processes on a shared machine drop out of
 * the figures instead of diluting them. The rates are the medians of those windows; `×` is
 * the sum of the two simultaneous rates over the solo rate: ~2 when the two vCPUs are two
 * cores, ~1 when they share one core's FMA units (SMT siblings, or one core time-sliced by
 * the host), in between when the clock drops with both busy.
 *
 * Then what sharing one step between two threads costs that the FMA loop never pays: how
 * far apart the two vCPUs are for the data a step hands over. A cache line bounced between
 * two threads on the first two CPUs (the median round trip, ~50-150 ns on two cores of one
 * die, several hundred across dies or sockets), and 128 KiB that one thread has just written
 * and the other then reads whole (a W3 layer's activations in float64; the median of 200),
 * and what writing those 128 KiB again costs the writer once the other thread has read them:
 * with plain stores every line must first be taken back from the reader's cache (~23 µs
 * against ~1 µs unread, across dies: the cost kernels.c's cross-core copies avoid), with
 * non-temporal stores (x86) none is.
 * A VM's host may move its vCPUs between such placements while it runs, which no topology
 * the guest sees tells: on the 2-vCPU machines of issue #15 the round trip was ~640 ns in
 * runs where two threads gained nothing on W3, whatever the FMA loop's ×2 (docs/speed.md).
 *
 *   gcc -O2 -march=native -pthread -o scaling bench/scaling.c && ./scaling [seconds] [latency]   one JSON line
 *   (`latency`: the cross-core figures only, in ~0.1 s)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "vector.h"

static double mono(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* FLOPs of `iters` iterations of 16 vector FMA chains */
static double fma_iters(long iters, double *sink) {
  const vd m = (vd){0} + 0.999999, c = (vd){0} + 1e-7;
  vd a0 = (vd){0} + 0., a1 = (vd){0} + 1., a2 = (vd){0} + 2., a3 = (vd){0} + 3., a4 = (vd){0} + 4., a5 = (vd){0} + 5., a6 = (vd){0} + 6., a7 = (vd){0} + 7.;
  vd a8 = (vd){0} + 8., a9 = (vd){0} + 9., a10 = (vd){0} + 10., a11 = (vd){0} + 11., a12 = (vd){0} + 12., a13 = (vd){0} + 13., a14 = (vd){0} + 14., a15 = (vd){0} + 15.;
  for (long i = 0; i < iters; i++) {
    a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c; a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
    a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c; a12 = a12 * m + c; a13 = a13 * m + c; a14 = a14 * m + c; a15 = a15 * m + c;
  }
  *sink += a0[0] + a1[0] + a2[0] + a3[0] + a4[0] + a5[0] + a6[0] + a7[0] + a8[0] + a9[0] + a10[0] + a11[0] + a12[0] + a13[0] + a14[0] + a15[0];
  return 2.0 * 16 * (VBYTES / sizeof(double)) * (double)iters;
}

/* cycles of `iters` iterations of 8 dependent integer adds (latency 1 each) */
static double add_iters(long iters, double *sink) {
  unsigned long x = (unsigned long)*sink;
  for (long i = 0; i < iters; i++) {
    __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  }
  *sink += (double)(x & 1);
  return 8.0 * (double)iters;
}

typedef struct { double t0, t1, work; int clean; } window;
typedef struct { int kind; double seconds; window *w; int count; double sink; } worker;

#define MAX_WINDOWS 40000
static atomic_int go;

static void *work(void *arg) {
  worker *k = arg;
  while (!atomic_load(&go)) {}
  const long iters = k->kind == 0 ? 50000 : 200000; /* ~0.4-0.5 ms either way at ~3.5 GHz */
  const double end = mono() + k->seconds;
  k->count = 0;
  while (k->count < MAX_WINDOWS) {
    const double c0 = thread_cpu(), t0 = mono();
    const double done = k->kind == 0 ? fma_iters(iters, &k->sink) : add_iters(iters, &k->sink);
    const double t1 = mono(), c1 = thread_cpu();
    k->w[k->count++] = (window){ t0, t1, done, c1 - c0 >= 0.97 * (t1 - t0) };
    if (t1 > end) break;
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* the median rate (work per wall second) of `a`'s clean windows, during which `b` (if any) ran clean throughout */
static double rate(const worker *a, const worker *b, int *used) {
  double *r = malloc(sizeof(double) * (size_t)a->count);
  int n = 0, j = 0;
  for (int q = 0; q < a->count; q++) {
    const window *w = &a->w[q];
    if (!w->clean) continue;
    if (b != NULL) {
      /* b's windows that overlap w must all be clean and leave no gap around w */
      while (j < b->count && b->w[j].t1 < w->t0) j++;
      if (j >= b->count || b->w[j].t0 > w->t0) continue;
      int ok = 1, i = j;
      double covered = b->w[j].t0;
      for (; i < b->count && b->w[i].t0 < w->t1; i++) {
        if (!b->w[i].clean || b->w[i].t0 - covered > 20e-6) { ok = 0; break; }
        covered = b->w[i].t1;
      }
      if (!ok || covered < w->t1) continue;
    }
    r[n++] = w->work / (w->t1 - w->t0);
  }
  double m = 0;
  if (n > 0) { qsort(r, (size_t)n, sizeof(double), cmp); m = r[n / 2]; }
  free(r);
  *used = n;
  return m;
}

static void run(worker *k, int threads) {
  pthread_t t[2];
  atomic_store(&go, 0);
  for (int q = 0; q < threads; q++) pthread_create(&t[q], NULL, work, &k[q]);
  atomic_store(&go, 1);
  for (int q = 0; q < threads; q++) pthread_join(t[q], NULL);
}

/* ---- cross-core hand-over: a bounced cache line, a written buffer read by the other thread ---- */

#define HANDOFF_BYTES (128 * 1024)
#define HANDOFF_REPS 200
#define BOUNCES 2000
#define BOUNCE_ROUNDS 25
static _Alignas(64) atomic_long ping;
static _Alignas(64) atomic_long pong;
static _Alignas(64) atomic_int turn;
static char *handoff;
static double handoff_sink;

/* the calling thread on the `nth` CPU it may run on (0 or 1): the two ends of a hand-over on two CPUs */
static void on_cpu(int nth) {
  cpu_set_t allowed, one;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  for (int c = 0, seen = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (seen++ == nth) {
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      return;
    }
  }
}

static void *far_end(void *unused) {
  (void)unused;
  on_cpu(1);
  for (long i = 1; i <= (long)BOUNCES * BOUNCE_ROUNDS; i++) {
    while (atomic_load_explicit(&ping, memory_order_acquire) != i) {}
    atomic_store_explicit(&pong, i, memory_order_release);
  }
  double sum = 0;
  for (int r = 0; r < HANDOFF_REPS; r++) {
    while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * r + 1) {}
    for (long q = 0; q < HANDOFF_BYTES; q += 64) sum += handoff[q];
    atomic_store_explicit(&turn, 2 * r + 2, memory_order_release);
  }
  handoff_sink = sum;
  return NULL;
}

/* HANDOFF_BYTES written whole again (rep r), with plain or (x86) non-temporal stores; seconds */
static double rewrite(int r, int nt) {
  const double t0 = mono();
#if defined(__x86_64__)
  if (nt) {
    const __m128i v = _mm_set1_epi32(r);
    for (long q = 0; q < HANDOFF_BYTES; q += 16) _mm_stream_si128((__m128i *)(handoff + q), v);
    _mm_sfence();
    return mono() - t0;
  }
#endif
  (void)nt;
  for (long q = 0; q < HANDOFF_BYTES; q += 8) *(volatile long *)(handoff + q) = r;
  return mono() - t0;
}

/* medians: a cache line's round trip (s), the other thread's read of HANDOFF_BYTES just written
   here (s), and the writing of them again after that read, with plain and non-temporal stores (s) */
static void cross_core(double *round_trip, double *handoff_read, double *rewrite_plain, double *rewrite_nt) {
  double trips[BOUNCE_ROUNDS], reads[HANDOFF_REPS], plain[HANDOFF_REPS / 2], nt[HANDOFF_REPS / 2];
  cpu_set_t allowed;
  const int restore = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
  handoff = aligned_alloc(64, HANDOFF_BYTES);
  memset(handoff, 1, HANDOFF_BYTES);
  atomic_store(&ping, 0); atomic_store(&pong, 0); atomic_store(&turn, 0);
  pthread_t t;
  pthread_create(&t, NULL, far_end, NULL);
  on_cpu(0);
  for (int r = 0; r < BOUNCE_ROUNDS; r++) {
    const double t0 = mono();
    for (long i = (long)r * BOUNCES + 1; i <= (long)(r + 1) * BOUNCES; i++) {
      atomic_store_explicit(&ping, i, memory_order_release);
      while (atomic_load_explicit(&pong, memory_order_acquire) != i) {}
    }
    trips[r] = (mono() - t0) / BOUNCES;
  }
  for (int r = 0; r < HANDOFF_REPS; r++) {
    /* every line now written by this core (the other read them in the rep before): plain
       stores in even reps (then every line is in this core's cache, modified), non-temporal in odd ones */
    const double w = rewrite(r, r & 1);
    if (r > 0) { if (r & 1) nt[r / 2] = w; else plain[r / 2] = w; }
    else plain[0] = nt[0] = w;
    const double t0 = mono();
    atomic_store_explicit(&turn, 2 * r + 1, memory_order_release);
    while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * r + 2) {}
    if (!(r & 1)) reads[r / 2] = mono() - t0; /* after plain stores: the lines come from this core's cache */
  }
  pthread_join(t, NULL);
  free(handoff);
  if (restore) pthread_setaffinity_np(pthread_self(), sizeof allowed, &allowed); /* the FMA runs after this place their threads freely */
  qsort(trips, BOUNCE_ROUNDS, sizeof(double), cmp);
  qsort(reads, HANDOFF_REPS / 2, sizeof(double), cmp);
  qsort(plain, HANDOFF_REPS / 2, sizeof(double), cmp);
  qsort(nt, HANDOFF_REPS / 2, sizeof(double), cmp);
  *round_trip = trips[BOUNCE_ROUNDS / 2];
  *handoff_read = reads[HANDOFF_REPS / 4];
  *rewrite_plain = plain[HANDOFF_REPS / 4];
  *rewrite_nt = nt[HANDOFF_REPS / 4];
}

int main(int argc, char **argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 1.0;
  /* two spinning threads on one CPU would bounce only at each time slice: no reading there (0) */
  double round_trip = 0, handoff_read = 0, rewrite_plain = 0, rewrite_nt = 0;
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) >= 2) cross_core(&round_trip, &handoff_read, &rewrite_plain, &rewrite_nt);
  if (argc > 2 && strcmp(argv[2], "latency") == 0) {
    printf("{\"round_trip_ns\":%.0f,\"handoff_128k_us\":%.1f,\"rewrite_128k_us\":%.1f,\"rewrite_nt_128k_us\":%.1f}\n", round_trip * 1e9, handoff_read * 1e6,
           rewrite_plain * 1e6, rewrite_nt * 1e6);
    return 0;
  }
  worker k[2];
  for (int q = 0; q < 2; q++) { memset(&k[q], 0, sizeof k[q]); k[q].w = malloc(sizeof(window) * MAX_WINDOWS); k[q].seconds = seconds; }
  int n1, n2a, n2b, nc1, nc2, nd;
  /* FMA alone, FMA on both, then the clock alone and beside an FMA thread, FMA alone again */
  k[0].kind = 0; run(k, 1);
  double solo = rate(&k[0], NULL, &n1);
  k[1].kind = 0; run(k, 2);
  const double duoA = rate(&k[0], &k[1], &n2a), duoB = rate(&k[1], &k[0], &n2b);
  k[0].kind = 1; run(k, 1);
  const double clockSolo = rate(&k[0], NULL, &nc1);
  k[0].kind = 1; k[1].kind = 0; run(k, 2);
  const double clockBeside = rate(&k[0], &k[1], &nc2);
  k[0].kind = 0; run(k, 1);
  int n1b;
  const double solo2 = rate(&k[0], NULL, &n1b);
  if (solo2 > solo) solo = solo2;
  (void)nd;
  printf("{\"vector_bits\":%d,\"fma_gflops_1t\":%.2f,\"fma_gflops_2t\":[%.2f,%.2f],\"scaling\":%.3f,"
         "\"clock_ghz_alone\":%.3f,\"clock_ghz_beside_fma\":%.3f,\"round_trip_ns\":%.0f,\"handoff_128k_us\":%.1f,\"rewrite_128k_us\":%.1f,\"rewrite_nt_128k_us\":%.1f,"
         "\"windows\":{\"solo\":%d,\"duo\":[%d,%d],\"clock\":[%d,%d]},\"sink\":%g}\n",
         VBYTES * 8, solo / 1e9, duoA / 1e9, duoB / 1e9, solo > 0 ? (duoA + duoB) / solo : 0,
         clockSolo / 1e9, clockBeside / 1e9, round_trip * 1e9, handoff_read * 1e6, rewrite_plain * 1e6, rewrite_nt * 1e6, n1, n2a, n2b, nc1, nc2, k[0].sink + k[1].sink + handoff_sink);
  return 0;
}
