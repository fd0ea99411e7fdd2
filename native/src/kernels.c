/*
 * The portable half of the native kernels: CPU dispatch, the dense layers and the whole
 * passes over a plan, the helper thread that takes half of a large product, activations
 * and optimizers. Built for the baseline instruction set (no FMA), so the elementwise
 * kernels here compute exactly what pipeline/kernels-js.ts computes, bit for bit.
 */
#include "kernels.h"
#include "native.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Operations (2·rows·n·m) from which a product is shared with the helper thread. Measured with
 * bench/native.ts --threshold on the shared 2-core machine: two threads lose below ~4·10⁶,
 * break even near 8·10⁶ (a 64×256×256 product) and win from ~1.7·10⁷.
 */
#ifndef PARALLEL_FLOPS
#define PARALLEL_FLOPS 8.0e6
#endif

/* ---------------------------------------------------------------------------------- */
/* instruction set */

static const isa_kernels *current = NULL;

static const isa_kernels *best_isa(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return &isa_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &isa_avx2;
#endif
  return &isa_sse2;
}

const char *sg_best_isa(void) { return best_isa()->name; }

const isa_kernels *sg_isa(void) {
  if (current == NULL) current = best_isa();
  return current;
}

/* Forces a lower instruction set (tests run every one on one machine); 0 when the CPU lacks it. */
int sg_set_isa(const char *name) {
  const isa_kernels *best = best_isa();
  const isa_kernels *order[] = { &isa_avx512, &isa_avx2, &isa_sse2 };
  int allowed = 0;
  for (int q = 0; q < 3; q++) {
    if (order[q] == best) allowed = 1;
    if (allowed && strcmp(order[q]->name, name) == 0) { current = order[q]; return 1; }
  }
  if (strcmp(name, best->name) == 0) { current = best; return 1; }
  return 0;
}

/* ---------------------------------------------------------------------------------- */
/* scratch: per thread (several Node worker threads may load the addon) */

static _Thread_local void *scratch_at[3];
static _Thread_local size_t scratch_bytes[3];

static void *scratch(int slot, size_t bytes) {
  if (bytes > scratch_bytes[slot]) {
    free(scratch_at[slot]);
    size_t size = bytes * 2 > 65536 ? bytes * 2 : 65536;
    scratch_at[slot] = aligned_alloc(64, (size + 63) / 64 * 64);
    scratch_bytes[slot] = scratch_at[slot] == NULL ? 0 : size;
    if (scratch_at[slot] == NULL) abort(); /* out of memory: nothing sensible to return */
  }
  return scratch_at[slot];
}

/* ---------------------------------------------------------------------------------- */
/* the helper thread: offered the upper half of a large product's rows */

typedef void (*range_fn)(const void *arg, int i0, int i1);

/*
 * The hand-over. The caller writes the job, then publishes its number in `offer` and
 * `job_seq`; whoever swaps `offer` from that number to 0 first runs the upper half: the
 * helper, if it is awake in time, or else the caller itself once its own half is done. So a
 * helper that the OS does not schedule (a loaded machine) costs the caller nothing but the
 * offer: the product never waits for it. The helper spins briefly after each job (a step's
 * products come back to back), then sleeps on a condition variable.
 */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static atomic_int pool_busy;  /* one caller at a time (several isolates may share the process) */
static atomic_uint job_seq, done_seq, offer;
static atomic_int sleeping;
static range_fn job_fn;
static const void *job_arg;
static int job_i0, job_i1;
static int pool_started;
static int threads_wanted = 2;
static double parallel_flops = PARALLEL_FLOPS;
static atomic_ulong parallel_runs, helper_runs;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void *helper_main(void *unused) {
  (void)unused;
  unsigned seen = atomic_load(&job_seq);
  for (;;) {
    double until = now_seconds() + 100e-6;
    unsigned seq;
    for (int spins = 0;; spins++) {
      seq = atomic_load(&job_seq);
      if (seq != seen) break;
      if ((spins & 255) == 255 && now_seconds() > until) {
        pthread_mutex_lock(&pool_lock);
        atomic_store(&sleeping, 1);
        while ((seq = atomic_load(&job_seq)) == seen) pthread_cond_wait(&pool_wake, &pool_lock);
        atomic_store(&sleeping, 0);
        pthread_mutex_unlock(&pool_lock);
        break;
      }
      cpu_relax();
    }
    seen = seq;
    unsigned expected = seq;
    if (!atomic_compare_exchange_strong(&offer, &expected, 0)) continue; /* the caller took it */
    job_fn(job_arg, job_i0, job_i1);
    atomic_fetch_add(&helper_runs, 1);
    atomic_store(&done_seq, seq);
  }
  return NULL;
}

void sg_set_parallel(int threads, double min_flops) {
  threads_wanted = threads < 1 ? 1 : threads > 2 ? 2 : threads;
  if (min_flops >= 0) parallel_flops = min_flops;
}
int sg_threads(void) { return threads_wanted; }
double sg_parallel_flops(void) { return parallel_flops; }
unsigned long sg_parallel_runs(void) { return atomic_load(&parallel_runs); }
unsigned long sg_helper_runs(void) { return atomic_load(&helper_runs); }

/*
 * fn over rows [0, M): the upper half offered to the helper when the product is large
 * enough to pay for the hand-over (`flops` ≥ the measured threshold), never below 2·mr rows
 * and never for a batch of one sample (`batch`), whose step is too short to share.
 */
static void run_rows(range_fn fn, const void *arg, int M, int mr, int batch, double flops) {
  int expected = 0;
  if (threads_wanted < 2 || batch < 2 || flops < parallel_flops || M < 2 * mr
      || !atomic_compare_exchange_strong(&pool_busy, &expected, 1)) {
    fn(arg, 0, M);
    return;
  }
  if (!pool_started) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    const int failed = pthread_create(&t, &attr, helper_main, NULL) != 0;
    pthread_attr_destroy(&attr);
    if (failed) {
      threads_wanted = 1;
      atomic_store(&pool_busy, 0);
      fn(arg, 0, M);
      return;
    }
    pool_started = 1;
  }
  int mid = (M / 2 + mr - 1) / mr * mr;
  if (mid >= M) mid = M - mr;
  job_fn = fn; job_arg = arg; job_i0 = mid; job_i1 = M;
  unsigned seq = atomic_load(&job_seq) + 1; /* only callers (one at a time) write job_seq */
  if (seq == 0) seq = 1;                      /* 0 means "no offer" */
  atomic_store(&offer, seq);
  atomic_store(&job_seq, seq);
  if (atomic_load(&sleeping)) {
    pthread_mutex_lock(&pool_lock);
    pthread_cond_signal(&pool_wake);
    pthread_mutex_unlock(&pool_lock);
  }
  fn(arg, 0, mid);
  unsigned mine = seq;
  if (atomic_compare_exchange_strong(&offer, &mine, 0)) {
    fn(arg, mid, M); /* the helper was not there in time */
  } else {
    for (int spins = 0; atomic_load(&done_seq) != seq; spins++) {
      if (spins > 4096) sched_yield(); else cpu_relax();
    }
  }
  atomic_fetch_add(&parallel_runs, 1);
  atomic_store(&pool_busy, 0);
}

/* ---------------------------------------------------------------------------------- */
/* activations (as pipeline/kernels-js.ts) */

void sg_activate(int kind, const double *z, double *a, int rows, int m) {
  const long len = (long)rows * m;
  switch (kind) {
    case ACT_SIGMOID: for (long q = 0; q < len; q++) a[q] = 1 / (1 + exp(-z[q])); return;
    case ACT_TANH: for (long q = 0; q < len; q++) a[q] = tanh(z[q]); return;
    case ACT_SOFTMAX:
      for (int r = 0; r < rows; r++) {
        const double *zr = z + (long)r * m;
        double *ar = a + (long)r * m;
        double max = -INFINITY, sum = 0;
        for (int k = 0; k < m; k++) if (zr[k] > max) max = zr[k];
        for (int k = 0; k < m; k++) { const double e = exp(zr[k] - max); ar[k] = e; sum += e; }
        for (int k = 0; k < m; k++) ar[k] /= sum;
      }
      return;
    default:
      for (long q = 0; q < len; q++) a[q] = act1(kind, z[q]);
      return;
  }
}

void sg_activation_backward(int kind, const double *z, const double *a, double *d, int rows, int m) {
  const long len = (long)rows * m;
  switch (kind) {
    case ACT_LINEAR: return;
    case ACT_SIGMOID: for (long q = 0; q < len; q++) { const double s = a[q]; d[q] *= s * (1 - s); } return;
    case ACT_TANH: for (long q = 0; q < len; q++) { const double t = a[q]; d[q] *= 1 - t * t; } return;
    case ACT_RELU: for (long q = 0; q < len; q++) if (!(z[q] > 0)) d[q] = 0; return;
    case ACT_LEAKY_RELU: for (long q = 0; q < len; q++) if (!(z[q] > 0)) d[q] *= LEAKY_SLOPE; return;
    case ACT_SIGN: for (long q = 0; q < len; q++) d[q] = 0; return;
    case ACT_SOFTMAX:
      for (int r = 0; r < rows; r++) {
        const double *ar = a + (long)r * m;
        double *dr = d + (long)r * m;
        double dot = 0;
        for (int k = 0; k < m; k++) dot += dr[k] * ar[k];
        for (int k = 0; k < m; k++) dr[k] = ar[k] * (dr[k] - dot);
      }
      return;
    default: return;
  }
}

/* ---------------------------------------------------------------------------------- */
/* dense layers */

typedef struct { const isa_kernels *isa; int f32; prod_args p; } prod_job;

static void prod_range(const void *arg, int i0, int i1) {
  const prod_job *j = (const prod_job *)arg;
  if (j->f32) j->isa->prod32(&j->p, i0, i1); else j->isa->prod64(&j->p, i0, i1);
}

static int fused(int act) { return act <= ACT_SIGN ? act : ACT_NONE; }

/* Rows below which the float64 forward product takes dot products instead of packing Wᵀ. */
#define DOT_ROWS 4

void sg_dense_forward(int f32, const double *x, const double *W, const double *b, double *z, double *a,
                      int rows, int n, int m, int act) {
  const isa_kernels *isa = sg_isa();
  const int eact = act == ACT_NONE ? ACT_NONE : fused(act);
  if (rows <= 0) return;
  if (!f32 && rows < DOT_ROWS) {
    isa->dot_forward(x, W, b, z, a, rows, n, m, eact);
  } else if (!f32 && rows < m) {
    /*
     * More neurons than rows: zᵀ = W·xᵀ, packing the smaller xᵀ instead of Wᵀ (packing is a
     * strided copy; W is m×n, x only rows×n), rows of the product = neurons.
     */
    prod_job job = { isa, f32, { .N = rows, .P = n, .ais = n, .aps = 1, .packed = 1, .C = z, .ldc = m, .bias = b,
                                 .accumulate = 0, .C2 = a, .act = eact, .trans = 1 } };
    const int nr = f32 ? isa->nr32 : isa->nr64;
    const size_t panels = (size_t)((rows + nr - 1) / nr);
    if (f32) {
      float *xt = scratch(0, panels * nr * (size_t)n * sizeof(float));
      float *wf = scratch(1, (size_t)m * n * sizeof(float));
      isa->pack_wt32(x, rows, n, xt);
      isa->narrow(W, wf, (size_t)m * n);
      job.p.A = wf; job.p.B = xt;
    } else {
      double *xt = scratch(0, panels * nr * (size_t)n * sizeof(double));
      isa->pack_wt64(x, rows, n, xt);
      job.p.A = W; job.p.B = xt;
    }
    run_rows(prod_range, &job, m, isa->mr, rows, 2.0 * rows * n * m);
  } else {
    prod_job job = { isa, f32, { .N = m, .P = n, .ais = n, .aps = 1, .packed = 1, .C = z, .ldc = m, .bias = b,
                                 .accumulate = 0, .C2 = a, .act = eact, .trans = 0 } };
    const int nr = f32 ? isa->nr32 : isa->nr64;
    const size_t panels = (size_t)((m + nr - 1) / nr);
    if (f32) {
      float *wt = scratch(0, panels * nr * (size_t)n * sizeof(float));
      float *xf = scratch(1, (size_t)rows * n * sizeof(float));
      isa->pack_wt32(W, m, n, wt);
      isa->narrow(x, xf, (size_t)rows * n);
      job.p.A = xf; job.p.B = wt;
    } else {
      double *wt = scratch(0, panels * nr * (size_t)n * sizeof(double));
      isa->pack_wt64(W, m, n, wt);
      job.p.A = x; job.p.B = wt;
    }
    run_rows(prod_range, &job, rows, isa->mr, rows, 2.0 * rows * n * m);
  }
  if (act != ACT_NONE && eact == ACT_NONE) sg_activate(act, z, a, rows, m);
}

/*
 * gW = deltaᵀ·x (written fresh, or added to gW), gb = Σ_rows delta (likewise), and, when
 * dx is not NULL, dx = delta·W.
 */
void sg_dense_backward(int f32, const double *x, const double *d, const double *W, double *gW, double *gb, double *dx,
                       int rows, int n, int m, int fresh) {
  const isa_kernels *isa = sg_isa();
  if (fresh) {
    for (int j = 0; j < m; j++) {
      double s = 0;
      for (int i = 0; i < rows; i++) s += d[(long)i * m + j];
      gb[j] = s;
    }
    if (rows <= 0) { memset(gW, 0, sizeof(double) * (size_t)m * n); if (dx == NULL) return; }
  } else {
    for (int i = 0; i < rows; i++) for (int j = 0; j < m; j++) gb[j] += d[(long)i * m + j];
  }
  if (rows <= 0) return;
  const void *dA = d, *xB = x, *wB = W;
  if (f32) {
    float *df = scratch(0, (size_t)rows * m * sizeof(float));
    float *xf = scratch(1, (size_t)rows * n * sizeof(float));
    isa->narrow(d, df, (size_t)rows * m);
    isa->narrow(x, xf, (size_t)rows * n);
    dA = df; xB = xf;
  }
  /* gW[j][k] = Σ_i d[i][j] x[i][k]: rows of C are neurons, P runs over the batch */
  prod_job gw = { isa, f32, { .N = n, .P = rows, .A = dA, .ais = 1, .aps = m, .B = xB, .ldb = n, .packed = 0,
                              .C = gW, .ldc = n, .bias = NULL, .accumulate = !fresh, .C2 = NULL, .act = ACT_NONE } };
  run_rows(prod_range, &gw, m, isa->mr, rows, 2.0 * rows * n * m);
  if (dx == NULL) return;
  if (f32) {
    float *wf = scratch(2, (size_t)m * n * sizeof(float));
    isa->narrow(W, wf, (size_t)m * n);
    wB = wf;
  }
  /* dx[i][k] = Σ_j d[i][j] W[j][k] */
  prod_job dj = { isa, f32, { .N = n, .P = m, .A = dA, .ais = m, .aps = 1, .B = wB, .ldb = n, .packed = 0,
                              .C = dx, .ldc = n, .bias = NULL, .accumulate = 0, .C2 = NULL, .act = ACT_NONE } };
  run_rows(prod_range, &dj, rows, isa->mr, rows, 2.0 * rows * n * m);
}

/* ---------------------------------------------------------------------------------- */
/* whole passes over a plan */

void sg_forward_net(const sg_plan *plan, int rows, const double *x, int f32) {
  const double *input = x;
  for (int l = 0; l < plan->layers; l++) {
    const sg_layer *L = &plan->layer[l];
    sg_dense_forward(f32, input, L->W, L->b, L->z, L->a, rows, L->n, L->m, L->act);
    input = L->a;
  }
}

void sg_backward_net(const sg_plan *plan, int rows, int f32) {
  for (int l = plan->layers - 1; l >= 0; l--) {
    const sg_layer *L = &plan->layer[l];
    const sg_layer *below = l > 0 ? &plan->layer[l - 1] : NULL;
    sg_dense_backward(f32, below ? below->a : plan->x, L->delta, L->W, L->gW, L->gb, below ? below->delta : NULL,
                      rows, L->n, L->m, 1);
    if (below) sg_activation_backward(below->act, below->z, below->a, below->delta, rows, L->n);
  }
}

/* ---------------------------------------------------------------------------------- */
/* reductions and optimizers: the operations and order of pipeline/kernels-js.ts */

typedef double v2d __attribute__((vector_size(16), aligned(8), may_alias));

double sg_sum_of_squares(const double *g, long len) {
  v2d s01 = {0, 0}, s23 = {0, 0};
  long q = 0;
  for (; q + 3 < len; q += 4) {
    const v2d a = *(const v2d *)(g + q), b = *(const v2d *)(g + q + 2);
    s01 += a * a; s23 += b * b;
  }
  double s0 = s01[0], s1 = s01[1], s2 = s23[0], s3 = s23[1];
  for (; q < len; q++) s0 += g[q] * g[q];
  return (s0 + s1) + (s2 + s3);
}

void sg_scale(double *g, long len, double s) { for (long q = 0; q < len; q++) g[q] *= s; }

void sg_sgd(double *p, const double *g, long len, double lr) { for (long q = 0; q < len; q++) p[q] -= lr * g[q]; }

void sg_momentum(double *p, const double *g, double *v, long len, double lr, double mu) {
  for (long q = 0; q < len; q++) { const double u = mu * v[q] + g[q]; v[q] = u; p[q] -= lr * u; }
}

void sg_adam(double *p, const double *g, double *m, double *v, long len,
             double step, double beta1, double beta2, double c2, double eps) {
  const double k1 = 1 - beta1, k2 = 1 - beta2;
  for (long q = 0; q < len; q++) {
    const double gq = g[q];
    const double mq = beta1 * m[q] + k1 * gq;
    const double vq = beta2 * v[q] + k2 * gq * gq;
    m[q] = mq; v[q] = vq;
    p[q] -= step * (mq / (sqrt(vq) / c2 + eps));
  }
}

void sg_rmsprop(double *p, const double *g, double *v, long len, double lr, double alpha, double eps) {
  const double k = 1 - alpha;
  for (long q = 0; q < len; q++) {
    const double gq = g[q];
    const double vq = alpha * v[q] + k * gq * gq;
    v[q] = vq;
    p[q] -= lr * gq / (sqrt(vq) + eps);
  }
}

void sg_adagrad(double *p, const double *g, double *s, long len, double lr, double eps) {
  for (long q = 0; q < len; q++) {
    const double gq = g[q];
    const double sq = s[q] + gq * gq;
    s[q] = sq;
    p[q] -= lr * gq / (sqrt(sq) + eps);
  }
}
