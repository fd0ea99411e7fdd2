/*
 * The portable half of the native kernels: CPU dispatch, the dense layers and the whole
 * passes over a plan, the helper thread that shares a large product chunk by chunk, activations
 * and optimizers. Built for the baseline instruction set (no FMA), so the elementwise
 * kernels here compute exactly what pipeline/kernels-js.ts computes, bit for bit.
 */
#include "kernels.h"
#include "native.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

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

static _Thread_local void *scratch_at[6];
static _Thread_local size_t scratch_bytes[6];

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
/* the helper thread: shares a large product's row tiles with the caller */

typedef void (*range_fn)(const void *arg, int i0, int i1);

/* rows [0, n) of a product (or of any work over rows), cut into chunks of `grain` rows */
typedef struct { range_fn fn; const void *arg; int n, grain, chunks; } task;

/*
 * The hand-over. The caller describes the job (one or two tasks, cut into chunks of a few
 * register tiles of rows), then publishes it in `claim` and `job_seq`; from then on both
 * threads take chunks until none is left, the caller from the first chunk up, the helper
 * from the last one down, each with one compare-and-swap on `claim` (the job's number in
 * its top bits, so a helper that comes late for a job that is over takes nothing). So each
 * thread computes a contiguous run of rows, and they meet wherever their speeds make them
 * meet: a helper that wakes late, or is slowed by another process on its core, leaves more
 * chunks to the caller instead of making it wait for a fixed half, and one that never comes
 * costs the caller only the offer. The caller then waits for the chunks the helper took
 * (at most one running, unless the OS deschedules the helper mid-chunk, which the steps'
 * timing, step_mode, weighs against sharing). A chunk computes whole rows of the product,
 * so which thread computes which rows never changes a result. The helper spins briefly
 * after each job and ahead of a step that will share (prewake), and otherwise sleeps on a
 * condition variable.
 */
#define MAX_TASKS 2
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static atomic_int pool_busy;  /* one caller at a time (several isolates may share the process) */
static atomic_uint job_seq;
static _Atomic unsigned long long claim; /* job number (16 bits) · next chunk from below (24) · one past the next from above (24) */
static atomic_int helper_done;           /* chunks of the current job the helper has finished */
static task job_task[MAX_TASKS];
static int job_tasks;
static atomic_int sleeping;
static int pool_started;
/* One thread until asked for two (setNativeParallel(2)): on an idle 2-core machine two threads
 * still lose to one on W3 (bench:native: 163k vs 208k samples/s f32, 119k vs 132k f64), although
 * each shared pass times faster; see docs/speed.md. */
static int threads_wanted = 1;
static double parallel_flops = PARALLEL_FLOPS;
static atomic_ulong parallel_runs, helper_runs, caller_chunks, helper_chunks;
static _Atomic double wait_seconds; /* the caller's waits for the helper's last chunks, in all */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* this thread's CPU time: a half that took longer in wall time than in CPU time was descheduled */
static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline unsigned long long claim_word(unsigned seq, unsigned lo, unsigned hi) {
  return ((unsigned long long)(seq & 0xffff) << 48) | ((unsigned long long)lo << 24) | hi;
}

/* The lowest (from_top 0) or the highest unclaimed chunk of job `seq`, now claimed; -1 when none is left. */
static int take_chunk(unsigned seq, int from_top) {
  unsigned long long s = atomic_load(&claim);
  for (;;) {
    if ((unsigned)(s >> 48) != (seq & 0xffff)) return -1;
    const unsigned lo = (unsigned)(s >> 24) & 0xffffff, hi = (unsigned)s & 0xffffff;
    if (lo >= hi) return -1;
    const unsigned long long next = from_top ? claim_word(seq, lo, hi - 1) : claim_word(seq, lo + 1, hi);
    if (atomic_compare_exchange_weak(&claim, &s, next)) return from_top ? (int)hi - 1 : (int)lo;
  }
}

static void run_chunk(int c) {
  int t = 0;
  while (t + 1 < job_tasks && c >= job_task[t].chunks) c -= job_task[t++].chunks;
  const task *k = &job_task[t];
  const int i0 = c * k->grain, i1 = i0 + k->grain < k->n ? i0 + k->grain : k->n;
  k->fn(k->arg, i0, i1);
}

/*
 * How long the helper looks for work before it sleeps on the condition variable: briefly
 * after a job (the next product of a pass may follow at once), longer after a step that
 * will share announces itself (prewake), so that it is awake when the first product comes.
 * Never more: a spinning helper takes CPU time from everything else on a busy machine,
 * this process's own calling thread included.
 */
#ifndef SPIN_AFTER_JOB
#define SPIN_AFTER_JOB 20e-6
#endif
#define SPIN_AFTER_WAKE 400e-6
static _Atomic double spin_until;
static atomic_uint wake_seq;

/*
 * The phase of the job under way (kernels.c owned halves: 0 forward, 1 backward, 2 norm,
 * 3 update; -1 a shared product of the other passes), when the caller published it, and how
 * long the helper spins after it: within a step the next job follows within microseconds
 * (or after the loss, computed in JavaScript), after the update comes the next step.
 * Written by the caller before it publishes the job (job_seq), read by the helper after.
 */
static int job_kind = -1;
static double job_published, job_spin = SPIN_AFTER_JOB;
static _Atomic double phase_times[SG_PHASES * SG_PHASE_FIELDS];
static void phase_add(int kind, int field, double v) {
  _Atomic double *at = &phase_times[kind * SG_PHASE_FIELDS + field];
  atomic_store(at, atomic_load(at) + v);
}
/*
 * The shortest job seen per phase and slot (a layer of a pass; 0 the norm or update, 1 the
 * clipping scale): run whole on one thread; shared with the helper taking its half (wall,
 * the caller's half, the helper's half). On a loaded machine the shortest of many jobs is
 * what a job costs when nothing else runs, which totals and wall rates cannot show.
 */
static double phase_best[SG_PHASES * SG_SLOTS * SG_BEST_FIELDS];
static _Atomic double helper_chunk_seconds, helper_chunk_cpu; /* the helper's last chunk of an owned job: wall and thread CPU seconds */
static int helper_took;                     /* chunks the helper computed in the caller's last run_tasks (of 2 in an owned job) */
static void best_of(int kind, int slot, int field, double v) {
  if (slot >= SG_SLOTS) slot = SG_SLOTS - 1;
  double *at = &phase_best[(kind * SG_SLOTS + slot) * SG_BEST_FIELDS + field];
  if (*at == 0 || v < *at) *at = v;
}
void sg_phase_times(double *out) {
  for (int q = 0; q < SG_PHASES * SG_PHASE_FIELDS; q++) out[q] = atomic_load(&phase_times[q]);
  for (int q = 0; q < SG_PHASES * SG_SLOTS * SG_BEST_FIELDS; q++) out[SG_PHASES * SG_PHASE_FIELDS + q] = phase_best[q];
}
void sg_phase_reset(void) {
  for (int q = 0; q < SG_PHASES * SG_PHASE_FIELDS; q++) atomic_store(&phase_times[q], 0);
  for (int q = 0; q < SG_PHASES * SG_SLOTS * SG_BEST_FIELDS; q++) phase_best[q] = 0;
}

/*
 * A job published ahead of the layers it waits for (kernels.c owned halves: run_halves'
 * prelude) has a gate: the helper first runs job_prep for its half (packing or narrowing its
 * own rows of W: nothing that needs those layers), then waits until the caller opens the gate
 * with job_gate, and only then claims its half. So a helper descheduled before the gate opens
 * leaves its half to the caller, as with any job; the preparation is kept in its scratch for
 * the half it then computes. 0: no gate.
 */
static atomic_uint gate;
static unsigned job_gate;
/*
 * The job whose half the helper is preparing (job_prep), 0 when none. job_prep reads the
 * job's arguments, which live on the caller's stack: a caller that took every chunk itself
 * (the helper descheduled before the gate) must not return while the helper is still in
 * them. The helper says so here before it looks whether the job is still live, and the
 * caller looks here after its last chunk (both sequentially consistent): either the caller
 * sees the helper preparing and waits, or the helper sees every chunk taken and skips.
 */
static atomic_uint prepping;
/*
 * Whether the job's halves also read their thread's CPU time (nativePhases' callerCpu,
 * helperCpu): one job in CPU_SAMPLE. Reading it is a system call (~1.6 µs here, against
 * 30 ns for the wall clock): twice per half on each thread in every job, it cost a W3 step
 * ~10 µs on the calling thread and as much on the helper.
 */
#define CPU_SAMPLE 16
static int job_cpu;
static unsigned job_count;
static range_fn job_prep;
static void *helper_main(void *unused) {
  (void)unused;
  unsigned seen = atomic_load(&job_seq), woken = atomic_load(&wake_seq);
  for (;;) {
    unsigned seq;
    for (int spins = 0;; spins++) {
      seq = atomic_load(&job_seq);
      if (seq != seen) break;
      if ((spins & 15) == 15 && now_seconds() > atomic_load(&spin_until)) {
        pthread_mutex_lock(&pool_lock);
        atomic_store(&sleeping, 1);
        while ((seq = atomic_load(&job_seq)) == seen && atomic_load(&wake_seq) == woken) pthread_cond_wait(&pool_wake, &pool_lock);
        atomic_store(&sleeping, 0);
        woken = atomic_load(&wake_seq);
        pthread_mutex_unlock(&pool_lock);
        if (seq != seen) break;
        spins = 0; /* woken ahead of a step: spin until spin_until */
      }
      cpu_relax();
    }
    seen = seq;
    const int kind = job_kind;
    const double h0 = kind >= 0 ? now_seconds() : 0;
    if (job_gate != 0) {
      atomic_store(&prepping, seq);
      const unsigned long long live = atomic_load(&claim);
      if ((unsigned)(live >> 48) == (seq & 0xffff) && ((unsigned)(live >> 24) & 0xffffff) < ((unsigned)live & 0xffffff)) {
        const range_fn prep = job_prep;
        if (prep != NULL) prep(job_task[0].arg, 1, 2);
      }
      atomic_store(&prepping, 0);
      /* until the gate opens, or the caller has taken every chunk (then the next job may have come) */
      for (int spins = 0; atomic_load(&gate) != job_gate; spins++) {
        const unsigned long long w = atomic_load(&claim);
        if ((unsigned)(w >> 48) != (seq & 0xffff) || ((unsigned)(w >> 24) & 0xffffff) >= ((unsigned)w & 0xffffff)) break;
        /* a long prelude (a wide layer not cut) on a busy machine: let the caller's own thread run */
        if (spins > 4096) sched_yield(); else cpu_relax();
      }
    }
    int ran = 0;
    for (int c; (c = take_chunk(seq, 1)) >= 0; ran++) {
      const int cpu = kind >= 0 && job_cpu;
      const double c0 = kind >= 0 ? now_seconds() : 0, u0 = cpu ? cpu_seconds() : 0;
      run_chunk(c);
      if (kind >= 0) { /* read by the caller once helper_done says so */
        if (cpu) atomic_store(&helper_chunk_cpu, cpu_seconds() - u0);
        atomic_store(&helper_chunk_seconds, now_seconds() - c0);
      }
      atomic_fetch_add(&helper_done, 1);
    }
    if (ran > 0) atomic_fetch_add(&helper_runs, 1);
    const double h1 = now_seconds();
    if (kind >= 0 && ran > 0) phase_add(kind, 4, h1 - h0), phase_add(kind, 5, h0 - job_published);
    const double until = h1 + (kind >= 0 ? job_spin : SPIN_AFTER_JOB);
    if (atomic_load(&spin_until) < until) atomic_store(&spin_until, until);
  }
  return NULL;
}

/* Wakes the helper ahead of a step that will share: it spins until the first product comes. */
static void prewake(void) {
  if (!pool_started) return;
  atomic_store(&spin_until, now_seconds() + SPIN_AFTER_WAKE);
  atomic_fetch_add(&wake_seq, 1);
  if (atomic_load(&sleeping)) {
    pthread_mutex_lock(&pool_lock);
    pthread_cond_signal(&pool_wake);
    pthread_mutex_unlock(&pool_lock);
  }
}

void sg_set_parallel(int threads, double min_flops) {
  threads_wanted = threads < 1 ? 1 : threads > 2 ? 2 : threads;
  if (min_flops >= 0) parallel_flops = min_flops;
}
int sg_threads(void) { return threads_wanted; }
double sg_parallel_flops(void) { return parallel_flops; }
unsigned long sg_parallel_runs(void) { return atomic_load(&parallel_runs); }
unsigned long sg_helper_runs(void) { return atomic_load(&helper_runs); }
unsigned long sg_caller_chunks(void) { return atomic_load(&caller_chunks); }
unsigned long sg_helper_chunks(void) { return atomic_load(&helper_chunks); }
double sg_wait_seconds(void) { return atomic_load(&wait_seconds); }

/*
 * Set by a pass (sg_forward_net, sg_backward_net: step_mode): `solo` when it runs on one
 * thread; `hot` when it shares, and has woken the helper ahead of it, which then spins
 * between the pass's products: a hand-over costs about a microsecond instead of a wake-up,
 * so products from HOT_FRACTION of the threshold are shared too.
 */
static _Thread_local int solo, hot;
#define HOT_FRACTION 0.125

/*
 * Whether `flops` operations of a batch of `batch` samples are shared with the helper: at
 * least the measured threshold, never for one sample (a batch-1 step is too short to
 * share), not in a pass measured on one thread (solo), one caller at a time. True: the caller holds
 * the pool and must call run_tasks.
 */
static int take_pool(void);
static int acquire(double flops, int batch) {
  if (solo || threads_wanted < 2 || batch < 2 || flops < (hot ? HOT_FRACTION : 1) * parallel_flops || !take_pool()) return 0;
  job_kind = -1;
  job_spin = SPIN_AFTER_JOB;
  /* a product shared row by row has no gate and nothing to prepare (a stale gate would run the last job's preparation on this one's arguments) */
  job_gate = 0;
  job_prep = NULL;
  return 1;
}

/* Takes the helper for one job (one caller at a time), starting it the first time. */
static int take_pool(void) {
  int expected = 0;
  if (threads_wanted < 2 || !atomic_compare_exchange_strong(&pool_busy, &expected, 1)) return 0;
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
      return 0;
    }
    pool_started = 1;
  }
  return 1;
}

/* Rows per chunk: a whole number of register tiles (mr rows), ~16 chunks of M rows. */
static int grain_for(int M, int mr) {
  int g = (M + 15) / 16;
  g = (g + mr - 1) / mr * mr;
  return g < mr ? mr : g;
}

/* Publishes the tasks to the helper (the caller holds the pool: acquire); returns their chunks in all. */
static int publish_tasks(const task *tasks, int n) {
  int total = 0;
  for (int q = 0; q < n; q++) {
    job_task[q] = tasks[q];
    job_task[q].chunks = (tasks[q].n + tasks[q].grain - 1) / tasks[q].grain;
    total += job_task[q].chunks;
  }
  job_tasks = n;
  const unsigned seq = atomic_load(&job_seq) + 1; /* only callers (one at a time) write job_seq */
  atomic_store(&helper_done, 0);
  atomic_store(&claim, claim_word(seq, 0, (unsigned)total));
  atomic_store(&job_seq, seq);
  if (atomic_load(&sleeping)) {
    pthread_mutex_lock(&pool_lock);
    pthread_cond_signal(&pool_wake);
    pthread_mutex_unlock(&pool_lock);
  }
  return total;
}

/* The caller's part of the published job: chunks from the first up, then the wait for the helper's; releases the pool. */
static double complete_tasks(int total) {
  double waited = 0;
  const unsigned seq = atomic_load(&job_seq);
  int mine = 0;
  for (int c; (c = take_chunk(seq, 0)) >= 0; mine++) run_chunk(c);
  if (atomic_load(&helper_done) != total - mine) {
    const double t0 = now_seconds();
    for (int spins = 0; atomic_load(&helper_done) != total - mine; spins++) {
      if (spins > 4096) sched_yield(); else cpu_relax();
    }
    waited = now_seconds() - t0;
    atomic_store(&wait_seconds, atomic_load(&wait_seconds) + waited);
  }
  /* the helper may still be preparing its half of this job from its arguments: wait until it is out */
  while (atomic_load(&prepping) == seq) cpu_relax();
  helper_took = total - mine;
  atomic_fetch_add(&caller_chunks, (unsigned long)mine);
  atomic_fetch_add(&helper_chunks, (unsigned long)(total - mine));
  atomic_fetch_add(&parallel_runs, 1);
  atomic_store(&pool_busy, 0);
  return waited;
}

/* Runs the tasks on the calling thread and the helper (the caller holds the pool: acquire). */
static double run_tasks(const task *tasks, int n) {
  return complete_tasks(publish_tasks(tasks, n));
}

/*
 * fn over rows [0, M): shared with the helper chunk by chunk when the product is large
 * enough to pay for the hand-over (`flops` ≥ the measured threshold, acquire), never below
 * 2·mr rows.
 */
static void run_rows(range_fn fn, const void *arg, int M, int mr, int batch, double flops) {
  if (M < 2 * mr || !acquire(flops, batch)) {
    fn(arg, 0, M);
    return;
  }
  const task t = { fn, arg, M, grain_for(M, mr), 0 };
  run_tasks(&t, 1);
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
    /* selects, not branches: the signs of z are random, and a mispredicted branch per element
       cost more than the whole product around it (GCC makes these compare-and-mask vectors) */
    case ACT_RELU: for (long q = 0; q < len; q++) d[q] = z[q] > 0 ? d[q] : 0.0; return;
    case ACT_LEAKY_RELU: for (long q = 0; q < len; q++) d[q] = z[q] > 0 ? d[q] : d[q] * LEAKY_SLOPE; return;
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
 * dx = delta·W, then, when `act` is not ACT_NONE, dx ← dx ⊙ act'(z, a) of the layer below.
 * When `two`, dx is the sum of two partial products, delta[:, :split]·W[:split] (prod) plus
 * delta[:, split:]·W[split:] (prod2, added to it): how a layer cut in owned halves computes
 * dx on two threads, each from its own rows of W (bwd_part), done the same way on one.
 */
typedef struct { prod_job prod, prod2; int two, rows, n, act; const double *z, *a; } dx_job;

/* rows [i0, i1) of dx, then of the derivative (row by row: the same operations whichever rows a call takes) */
static void dx_range(const void *arg, int i0, int i1) {
  const dx_job *j = (const dx_job *)arg;
  prod_range(&j->prod, i0, i1);
  if (j->two) prod_range(&j->prod2, i0, i1);
  const long off = (long)i0 * j->n;
  if (j->act != ACT_NONE) sg_activation_backward(j->act, j->z + off, j->a + off, j->prod.p.C + off, i1 - i0, j->n);
}

/*
 * gW = deltaᵀ·x (written fresh, or added to gW), gb = Σ_rows delta (likewise), and, when
 * dx is not NULL, dx = delta·W, then through the derivative of the activation `below_act`
 * of the layer below (z_below, a_below) unless that is ACT_NONE; for 0 < split < m, dx is
 * delta[:, :split]·W[:split] plus delta[:, split:]·W[split:] (an owned plan's cut layer on one
 * thread: what its two threads compute, bit for bit; split = m otherwise). When both products are
 * large enough to share, they are one job of two tasks: this thread starts on dx, the
 * helper on gW (from its last rows), and whoever finishes first goes on with the other's
 * remaining chunks: one hand-over for the two products.
 */
static void dense_backward(int f32, const double *x, const double *d, const double *W, double *gW, double *gb, double *dx,
                           int rows, int n, int m, int fresh, int below_act, const double *z_below, const double *a_below, int split) {
  const isa_kernels *isa = sg_isa();
  /* gb: row by row, so that the loop runs along contiguous j (the sums' order is unchanged) */
  if (fresh) {
    for (int j = 0; j < m; j++) gb[j] = 0;
    if (rows <= 0) { memset(gW, 0, sizeof(double) * (size_t)m * n); if (dx == NULL) return; }
  }
  for (int i = 0; i < rows; i++) {
    const double *di = d + (long)i * m;
    for (int j = 0; j < m; j++) gb[j] += di[j];
  }
  if (rows <= 0) return;
  if (!f32 && rows < DOT_ROWS) { /* as the forward pass: a few rows take no packing, no tiles */
    isa->small_backward(x, d, W, gW, dx, rows, n, m, fresh);
    if (dx != NULL && below_act != ACT_NONE) sg_activation_backward(below_act, z_below, a_below, dx, rows, n);
    return;
  }
  const void *dA = d, *xB = x, *wB = W;
  if (f32) {
    float *df = scratch(0, (size_t)rows * m * sizeof(float));
    float *xf = scratch(1, (size_t)rows * n * sizeof(float));
    isa->narrow(d, df, (size_t)rows * m);
    isa->narrow(x, xf, (size_t)rows * n);
    dA = df; xB = xf;
  }
  const double flops = 2.0 * rows * n * m;
  /* gW[j][k] = Σ_i d[i][j] x[i][k]: rows of C are neurons, P runs over the batch */
  prod_job gw = { isa, f32, { .N = n, .P = rows, .A = dA, .ais = 1, .aps = m, .B = xB, .ldb = n, .packed = 0,
                              .C = gW, .ldc = n, .bias = NULL, .accumulate = !fresh, .C2 = NULL, .act = ACT_NONE } };
  if (dx == NULL) {
    run_rows(prod_range, &gw, m, isa->mr, rows, flops);
    return;
  }
  if (f32) {
    float *wf = scratch(2, (size_t)m * n * sizeof(float));
    isa->narrow(W, wf, (size_t)m * n);
    wB = wf;
  }
  /* dx[i][k] = Σ_j d[i][j] W[j][k]; for a layer cut at `split` (owned halves), Σ_{j<split} + Σ_{j≥split} */
  const int two = split > 0 && split < m;
  const size_t esize = f32 ? sizeof(float) : sizeof(double);
  dx_job dj = { { isa, f32, { .N = n, .P = two ? split : m, .A = dA, .ais = m, .aps = 1, .B = wB, .ldb = n, .packed = 0,
                              .C = dx, .ldc = n, .bias = NULL, .accumulate = 0, .C2 = NULL, .act = ACT_NONE } },
                { isa, f32, { .N = n, .P = m - split, .A = (const char *)dA + (size_t)split * esize, .ais = m, .aps = 1,
                              .B = (const char *)wB + (size_t)split * n * esize, .ldb = n, .packed = 0,
                              .C = dx, .ldc = n, .bias = NULL, .accumulate = 1, .C2 = NULL, .act = ACT_NONE } },
                two, rows, n, below_act, z_below, a_below };
  if (rows >= 2 * isa->mr && acquire(2 * flops, rows)) {
    /* the caller starts on dx, the helper on gW from its last rows: they meet wherever their speeds have them meet */
    const task both[2] = { { dx_range, &dj, rows, grain_for(rows, isa->mr), 0 }, { prod_range, &gw, m, grain_for(m, isa->mr), 0 } };
    run_tasks(both, 2);
    return;
  }
  run_rows(prod_range, &gw, m, isa->mr, rows, flops);
  run_rows(prod_range, &dj.prod, rows, isa->mr, rows, flops);
  if (two) run_rows(prod_range, &dj.prod2, rows, isa->mr, rows, flops);
  if (below_act != ACT_NONE) sg_activation_backward(below_act, z_below, a_below, dx, rows, n);
}

void sg_dense_backward(int f32, const double *x, const double *d, const double *W, double *gW, double *gb, double *dx,
                       int rows, int n, int m, int fresh) {
  dense_backward(f32, x, d, W, gW, gb, dx, rows, n, m, fresh, ACT_NONE, NULL, NULL, m);
}

/* ---------------------------------------------------------------------------------- */
/* whole passes over a plan */

/*
 * Whether a training step shares its products with the helper, decided by measurement, step
 * by step: each plan keeps a running mean of the wall time per row of its steps run on one
 * thread and run shared, from the start of one forward pass to the start of the next one
 * (a step's forward and backward passes take the same way): so the mean counts what sharing
 * costs between the passes too, the loss, the gradient's norm and the optimizer reading
 * the gradients and writing the weights the helper's cache holds, and the JavaScript around
 * them, which timing the passes alone did not see (each shared pass timed faster while the
 * steps were slower). It uses the faster way, and tries the other one now and then to
 * follow the machine's load: after AB_EXPLORE steps, then, each time the other way is still
 * the slower, after twice as many (up to AB_EXPLORE_MAX), since on a busy machine one
 * shared step that waits for a descheduled helper can cost more than many steps gain. So
 * where the second core is busy or sharing does not pay, the steps go back to one thread,
 * and two threads are never slower than one for long. A threshold of 0 (tests) shares
 * every product it can and measures nothing.
 */
#define AB_EXPLORE 16
#define AB_EXPLORE_MAX 1024
static atomic_ulong shared_passes, solo_passes;
unsigned long sg_shared_passes(void) { return atomic_load(&shared_passes); }
unsigned long sg_solo_passes(void) { return atomic_load(&solo_passes); }

/* the largest product of a step, in operations (a backward layer's gW and dx together) */
static double largest_product(const sg_plan *plan, int rows) {
  double most = 0;
  for (int l = 0; l < plan->layers; l++) {
    const double f = 2.0 * rows * plan->layer[l].n * plan->layer[l].m * (l > 0 ? 2 : 1);
    if (f > most) most = f;
  }
  return most;
}

/* -1: the step cannot share (nothing to measure); 0: run it on one thread; 1: share */
static int step_mode(sg_plan *plan, int rows) {
  if (threads_wanted < 2 || rows < 2 || largest_product(plan, rows) < parallel_flops) return -1;
  if (parallel_flops <= 0) return 1;
  const double *t = plan->ab_time;
  const unsigned n = ++plan->ab_steps;
  if (t[0] == 0) return 0;
  if (t[1] == 0) return 1;
  const int better = t[1] < t[0];
  return n >= plan->ab_next ? !better : better;
}

/* a whole step's wall time, from its forward pass to the next step's */
static void step_record(sg_plan *plan, int mode, int rows, double seconds) {
  double *t = plan->ab_time;
  double per_row = seconds / rows;
  if (t[mode] == 0) {
    t[mode] = per_row;
  } else {
    /* a long pause between steps (a stream waiting for data) moves a mean by at most a
       third of it; repeated stalls of shared steps (a descheduled helper) still add up */
    if (per_row > 4 * t[mode]) per_row = 4 * t[mode];
    if (mode != (t[1] < t[0])) {
      /* a try of the slower way: its mean moves halfway, since it is measured so rarely */
      t[mode] += (per_row - t[mode]) / 2;
      unsigned *every = &plan->ab_every;
      if (*every < AB_EXPLORE) *every = AB_EXPLORE;
      if (mode != (t[1] < t[0])) *every = *every * 2 > AB_EXPLORE_MAX ? AB_EXPLORE_MAX : *every * 2; /* still slower */
      else *every = AB_EXPLORE; /* now the faster: it is used from here on */
    } else {
      t[mode] += (per_row - t[mode]) / 8;
    }
  }
  if (plan->ab_steps >= plan->ab_next) {
    const unsigned every = plan->ab_every < AB_EXPLORE ? AB_EXPLORE : plan->ab_every;
    plan->ab_next = plan->ab_steps + every;
  }
}

static void count_pass(int mode) {
  if (mode >= 0 && parallel_flops > 0) atomic_fetch_add(mode ? &shared_passes : &solo_passes, 1);
}

static void forward_owned(sg_plan *plan, int rows, const double *x, int f32);
static void backward_owned(sg_plan *plan, int rows, int f32);
#define OWN_MIN_ROWS 4

void sg_forward_net(sg_plan *plan, int rows, const double *x, int f32) {
  plan->norm_ready = 0;
  plan->in32_rows = 0;
  /* no clock read unless steps are timed (a batch-1 step takes ~2 µs) */
  const double t = threads_wanted >= 2 && parallel_flops > 0 ? now_seconds() : 0;
  /* the step before, if it was one (a backward pass followed its forward pass), is over */
  if (t > 0 && plan->step_backward && plan->step_mode >= 0 && plan->step_rows > 0) {
    step_record(plan, plan->step_mode, plan->step_rows, t - plan->step_t0);
  }
  if (plan->owned && plan->update_end > 0) {
    /* the JavaScript between one step's update and the next step's forward pass */
    const double now = t > 0 ? t : now_seconds();
    double gap = now - plan->update_end;
    if (gap > 1e-3) gap = 1e-3;
    plan->gap = plan->gap == 0 ? gap : plan->gap + (gap - plan->gap) / 8;
    plan->update_end = 0;
  }
  const int mode = step_mode(plan, rows);
  plan->step_mode = mode;
  plan->step_rows = rows;
  plan->step_t0 = t;
  plan->step_backward = 0;
  count_pass(mode);
  solo = mode == 0;
  hot = mode == 1;
  if (hot) prewake();
  if (hot && plan->owned && rows >= OWN_MIN_ROWS) {
    forward_owned(plan, rows, x, f32);
    solo = hot = 0;
    return;
  }
  /* on one thread the layers run whole (the same sums element by element as by halves: a
     product's element never depends on which rows or columns a call computes) */
  const double t0 = plan->owned ? now_seconds() : 0;
  const double *input = x;
  double tl = t0;
  for (int l = 0; l < plan->layers; l++) {
    const sg_layer *L = &plan->layer[l];
    sg_dense_forward(f32, input, L->W, L->b, L->z, L->a, rows, L->n, L->m, L->act);
    input = L->a;
    if (plan->owned) { const double t = now_seconds(); best_of(0, l, 0, t - tl); tl = t; }
  }
  if (plan->owned) { phase_add(0, 0, plan->layers); phase_add(0, 2, now_seconds() - t0); }
  solo = hot = 0;
}

void sg_backward_net(sg_plan *plan, int rows, int f32) {
  plan->norm_ready = 0;
  /* the way of the step's forward pass; a backward pass of its own (no forward pass of
     these rows before it) runs on one thread when measuring, and is not timed */
  const int matched = plan->step_rows == rows && !plan->step_backward;
  const int mode = matched ? plan->step_mode : threads_wanted < 2 || parallel_flops <= 0 ? -1 : 0;
  if (matched) { plan->step_backward = 1; count_pass(mode); }
  solo = mode == 0;
  hot = mode == 1;
  if (hot) prewake();
  if (hot && plan->owned && rows >= OWN_MIN_ROWS) {
    backward_owned(plan, rows, f32);
    solo = hot = 0;
    return;
  }
  const double t0 = plan->owned ? now_seconds() : 0;
  double tl = t0;
  for (int l = plan->layers - 1; l >= 0; l--) {
    const sg_layer *L = &plan->layer[l];
    const sg_layer *below = l > 0 ? &plan->layer[l - 1] : NULL;
    /* an owned plan's dx as two threads compute it (bwd_part): one partial product per half of L's rows, added in order */
    const int split = plan->owned && rows >= OWN_MIN_ROWS ? L->split : L->m;
    if (below) dense_backward(f32, below->a, L->delta, L->W, L->gW, L->gb, below->delta, rows, L->n, L->m, 1, below->act, below->z, below->a, split);
    else dense_backward(f32, plan->x, L->delta, L->W, L->gW, L->gb, NULL, rows, L->n, L->m, 1, ACT_NONE, NULL, NULL, L->m);
    if (plan->owned) { const double t = now_seconds(); best_of(1, l, 0, t - tl); tl = t; }
  }
  if (plan->owned) { phase_add(1, 0, plan->layers); phase_add(1, 2, now_seconds() - t0); }
  solo = hot = 0;
  /* the gradient's sum of squares, which every step's norm needs next, in this call rather
     than a call of its own: the same sum over the same flat array as sg_sum_of_squares
     called on it (bitwise), one Node-API call fewer a step (~55 ns, a batch-1 step is ~2 µs).
     A plan that runs by halves has its own norm (sg_plan_sum_of_squares). */
  if (plan->norm_out != NULL) {
    const int done = !plan->owned && plan->grads != NULL;
    if (done) plan->norm_out[0] = sg_sum_of_squares(plan->grads, plan->nparams);
    plan->norm_out[1] = done;
  }
}

/* ---------------------------------------------------------------------------------- */
/* reductions and optimizers: the optimizers in the operations and order of core/kernels-js.ts */

/*
 * The elementwise rules run where the CPU has them with 8 doubles per vector (AVX-512), 4
 * (AVX2; both picked at load by an ifunc) or 2 (SSE2): the same operations in the same order
 * per element, and no fused multiply-add, so all give exactly what kernels-js.ts gives. AVX2
 * alone has no FMA; AVX-512F has, and GCC contracts p − lr·g into one in that clone unless
 * told not to (fp-contract=off: measured, 21 FMAs in these functions without it, none with).
 * AVX-512 took W1's update (1,377 parameters, batch 1) from ~120 to ~85 ns in C on 64-byte
 * aligned arrays; the arrays Node gives are less aligned, and the W1 step gained ~20–30 ns.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ELEMENTWISE __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
#else
#define ELEMENTWISE
#endif

/*
 * Σ g² in 32 lanes (four vectors of eight), each a chain of len/32 additions, then a fixed
 * tree over the lanes: W1's 1,377 values take chains of 43 additions instead of the 344 of
 * js's four lanes, whose latency bounded the sum (W1's step 1.62 → 1.37 µs of CPU through the
 * pipeline, bench/pipeline-ab.ts; docs/speed.md, Session 13). So the sum is not
 * js's bit for bit (within float64 rounding of any order, test/helpers/kernel-suite.ts), as
 * native's products are not; every clone, and every thread of a plan that runs by halves,
 * does these operations in this order, so native's own results do not depend on the CPU.
 */
typedef double v8d __attribute__((vector_size(64), aligned(8), may_alias));

ELEMENTWISE double sg_sum_of_squares(const double *g, long len) {
  v8d s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  long q = 0;
  for (; q + 31 < len; q += 32) {
    const v8d a = *(const v8d *)(g + q), b = *(const v8d *)(g + q + 8), c = *(const v8d *)(g + q + 16), d = *(const v8d *)(g + q + 24);
    s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d;
  }
  double t = 0;
  for (; q < len; q++) t += g[q] * g[q];
  const v8d s = (s0 + s1) + (s2 + s3);
  return ((((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])))) + t;
}

ELEMENTWISE void sg_scale(double *g, long len, double s) { for (long q = 0; q < len; q++) g[q] *= s; }

ELEMENTWISE void sg_sgd(double *p, const double *g, long len, double lr) { for (long q = 0; q < len; q++) p[q] -= lr * g[q]; }

ELEMENTWISE void sg_momentum(double *p, const double *g, double *v, long len, double lr, double mu) {
  for (long q = 0; q < len; q++) { const double u = mu * v[q] + g[q]; v[q] = u; p[q] -= lr * u; }
}

ELEMENTWISE void sg_adam(double *p, const double *g, double *m, double *v, long len,
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

ELEMENTWISE void sg_rmsprop(double *p, const double *g, double *v, long len, double lr, double alpha, double eps) {
  const double k = 1 - alpha;
  for (long q = 0; q < len; q++) {
    const double gq = g[q];
    const double vq = alpha * v[q] + k * gq * gq;
    v[q] = vq;
    p[q] -= lr * gq / (sqrt(vq) + eps);
  }
}

ELEMENTWISE void sg_adagrad(double *p, const double *g, double *s, long len, double lr, double eps) {
  for (long q = 0; q < len; q++) {
    const double gq = g[q];
    const double sq = s[q] + gq * gq;
    s[q] = sq;
    p[q] -= lr * gq / (sqrt(sq) + eps);
  }
}

/* ---------------------------------------------------------------------------------- */
/* owned halves: each thread keeps half of every wide layer's neurons, step after step */

/*
 * Sharing a step's products chunk by chunk (above) moved 0.5–1 MB between the cores per W3
 * step: the packed Wᵀ the caller made and the helper read, the helper's rows of gW that the
 * gradient's norm and the optimizer then read on the calling thread, the weights those wrote
 * back (docs/speed.md). Here each layer of at least OWN_MIN_UNITS neurons is cut once, in the
 * plan, into two halves of its neurons: the calling thread's [0, split) and the helper's
 * [split, m). Whoever owns a half runs, for its neurons, the forward product (packing its own
 * rows of W), their rows of gW and gb, their part of the gradient's sum of squares and
 * their optimizer update (sg_plan_update), so W's and gW's rows and the optimizer's state
 * stay in the owner's cache from step to step. Only activations cross between the cores:
 * each layer's output halves in the forward pass; in the backward pass each thread computes
 * from its own rows of W the partial dx = delta[:, own]·W[own, :] over all the columns of the
 * layer below (its own columns there in place, the other thread's into a buffer), and the
 * next layer's job adds the two partials for the columns each thread owns there and applies
 * their activation's derivative (bwd_part).
 * Reading the other half's rows of W for dx (the first design) moved them to the reader's
 * cache each step and back with the owner's update (~0.25–0.5 MB per W3 step: the helper's
 * update half took 2.8× the whole update); partial sums of activation size cross instead.
 *
 * A layer with fewer than OWN_MIN_UNITS inputs is not cut either (W3's first layer, 64 → 256:
 * its halves cost more than the whole, the helper's reading the batch the caller had just
 * loaded). A shared pass hands each cut layer's job over *before* the layers not cut that it
 * waits for (run_halves' prelude: W3's first layer in the forward pass, the output layer in
 * the backward pass), which the caller then runs while the helper, already awake, packs or
 * narrows its own rows of W; it claims its half once the caller opens the job's gate. So a
 * W3 step has three hand-overs (forward, backward, update) instead of six: the backward
 * job's halves also leave their partial sums of the gradient's norm (norm_parts), which
 * sg_plan_sum_of_squares adds in its fixed order without a job of its own.
 *
 * Every half is one chunk of a job of two (run_tasks): the caller takes its own, the helper
 * the other; a helper that is late leaves its half to the caller, which is why ownership is
 * a matter of caches, never of results. On one thread (setNativeParallel(1), a step timed
 * faster solo, batches under OWN_MIN_ROWS rows) the passes run whole layers as before (by
 * halves one after the other measured 3–10% slower in CPU time on W3), except that a cut
 * layer's dx is the same two partial products added in the same order (dense_backward's
 * `split`: no slower on one thread, measured): each element of a product is the same chain
 * of multiply-adds whichever rows or columns a call computes, so one and two threads give
 * bitwise the same parameters (test/kernels-native.test.ts checks it), and the gradient's norm is the same fixed-order sum of the halves' partial sums
 * either way (sg_plan_sum_of_squares); the norm and the update run by halves on one thread
 * too, one half after the other.
 */
/* narrower layers are not worth a hand-over (W2's 64-neuron layers never share: their products are far under the threshold) */
#define OWN_MIN_UNITS 128
#define OWN_ALIGN 16
/* how long the helper spins after a job of a step (the loss in JavaScript comes between the passes) */
#define SPIN_IN_STEP 300e-6

int sg_split_of(int n, int m, int act) {
  /* softmax normalises whole rows: such a layer is not cut; nor is one with fewer than
     OWN_MIN_UNITS inputs (W3's first layer, 64 → 256): its halves cost 0.8–1.9 of the whole
     layer on one thread (reading the batch the caller just loaded, and their partial sums),
     so it runs whole on the caller while the helper prepares its half of the next layer */
  if (m < OWN_MIN_UNITS || n < OWN_MIN_UNITS || act == ACT_SOFTMAX) return m;
  return m / 2 / OWN_ALIGN * OWN_ALIGN;
}

/* the plan's layers are cut (sg_split_of) and, when W, b, gW and gb are views of params and grads at the same offsets, the optimizer runs by halves too */
void sg_plan_owned(sg_plan *plan) {
  int cut = 0;
  long total = 0;
  int views = plan->params != NULL && plan->grads != NULL;
  for (int l = 0; l < plan->layers; l++) {
    sg_layer *L = &plan->layer[l];
    L->split = sg_split_of(L->n, L->m, L->act);
    if (L->split < L->m) cut = 1;
    total += (long)L->m * L->n + L->m;
    if (views) {
      const long w = L->W - plan->params, b = L->b - plan->params;
      views = w >= 0 && b >= 0 && b + L->m <= plan->nparams && w + (long)L->m * L->n <= plan->nparams
              && L->gW - plan->grads == w && L->gb - plan->grads == b;
    }
  }
  plan->owned = cut && views && total == plan->nparams;
  if (plan->owned && plan->norm_parts == NULL) {
    plan->norm_parts = calloc(4 * (size_t)plan->layers, sizeof(double));
    if (plan->norm_parts == NULL) abort();
  }
  if (!plan->owned) for (int l = 0; l < plan->layers; l++) plan->layer[l].split = plan->layer[l].m;
}

/*
 * The generation of the owned job under way: narrowed and packed copies in a thread's
 * scratch are reused within one job only. Atomic and only ever incremented (several
 * isolates may run jobs at once): a thread reads a larger value in each later job, so a
 * copy made for an earlier one never passes for current.
 */
static atomic_uint owned_gen;
static _Thread_local struct { const void *src; unsigned gen; } made[4];

static const float *narrowed(const isa_kernels *isa, int slot, const double *src, size_t len) {
  float *dst = scratch(slot, len * sizeof(float));
  const unsigned gen = atomic_load(&owned_gen);
  if (made[slot].src != src || made[slot].gen != gen) {
    isa->narrow(src, dst, len);
    made[slot].src = src; made[slot].gen = gen;
  }
  return dst;
}

/* numbers for the gates of jobs published ahead of their prelude (helper_main) */
static atomic_uint gate_count;

/* whether slot's scratch holds what was made from src in this job (narrowed, packed), and marking it so */
static int made_now(int slot, const void *src) { return made[slot].src == src && made[slot].gen == atomic_load(&owned_gen); }
static void mark_made(int slot, const void *src) { made[slot].src = src; made[slot].gen = atomic_load(&owned_gen); }

static void half_range(const sg_layer *L, int h, int *j0, int *j1) {
  *j0 = h ? L->split : 0;
  *j1 = h ? L->m : L->split;
}

/*
 * Cross-core copies. What one core writes and the other reads costs far more than its size
 * suggests when the two vCPUs are on different dies (a cache line's round trip ~600 ns
 * here): reading 128 KiB the other core wrote took ~10 µs, and — the larger cost — writing
 * it again once the other core had read it ~23 µs against ~1 µs (every line must first be
 * taken back from the other die's cache; bench/scaling.c `latency`). A shared W3 step moved ~400
 * KB that way (the first layer's output to the helper, the helper's half of the second
 * layer's output back, two partial dx products), ~100 µs: as much as the second core saved.
 * In a shared float32 step those crossings are float32 copies (half the lines) written with
 * non-temporal stores (no line taken back: ~3.6 µs per 128 KiB): each layer's input from
 * layer 1 up, narrowed by the owners of its columns as the forward pass makes them and read
 * by both passes instead of narrowing the float64 activations, and the partial dx of the
 * other thread's columns. Narrowing rounds as isa->narrow does, and a float32 product's
 * partial sums are float32 values, so the results are bitwise the same.
 */
static void narrow_stream(const double *src, float *dst, long len) {
  long i = 0;
#if defined(__x86_64__)
  for (; i < len && ((uintptr_t)(dst + i) & 15) != 0; i++) dst[i] = (float)src[i];
  for (; i + 4 <= len; i += 4) _mm_stream_ps(dst + i, _mm_movelh_ps(_mm_cvtpd_ps(_mm_loadu_pd(src + i)), _mm_cvtpd_ps(_mm_loadu_pd(src + i + 2))));
#endif
  for (; i < len; i++) dst[i] = (float)src[i];
}
/* non-temporal stores are weakly ordered: fenced before the job says it is done */
static void stream_fence(void) {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}
/* allocates an owned plan's cross-core copies (once: sized for its capacity) */
static void cross_copies(sg_plan *plan) {
  if (plan->in32 != NULL) return;
  long inputs = 0;
  int widest = 1;
  for (int l = 0; l < plan->layers; l++) {
    if (l > 0) inputs += plan->layer[l].n;
    if (plan->layer[l].n > widest) widest = plan->layer[l].n;
  }
  const size_t cap = plan->capacity > 0 ? (size_t)plan->capacity : 1;
  plan->in32 = aligned_alloc(64, ((cap * (size_t)(inputs > 0 ? inputs : 1) * sizeof(float)) + 63) / 64 * 64);
  plan->part32 = aligned_alloc(64, ((4 * cap * (size_t)widest * sizeof(float)) + 63) / 64 * 64);
  if (plan->in32 == NULL || plan->part32 == NULL) abort();
}
/* layer l's input in the plan's float32 copies (rows × n, from layer 1 up); NULL for layer 0, past the last, or float64 */
static float *in32_of(const sg_plan *plan, int l, int f32) {
  if (!f32 || plan->in32 == NULL || l < 1 || l >= plan->layers) return NULL;
  long at = 0;
  for (int k = 1; k < l; k++) at += plan->layer[k].n;
  return plan->in32 + at * (long)plan->capacity;
}

/*
 * x32: the layer's input already narrowed (rows × n; NULL: narrow x here); a32: where this
 * half leaves its columns of the layer's output narrowed for the next layer (rows × m; NULL:
 * nowhere). Both are the plan's cross-core copies (below), in a shared float32 step.
 */
typedef struct { int f32, rows; const double *x; const sg_layer *L; const float *x32; float *a32; } fwd_arg;

/* this half's rows of W packed as the product's panels (unless the float64 product takes xᵀ): before the gate, kept in slot 0 for the job */
static void fwd_prep(const void *arg, int h0, int h1) {
  const fwd_arg *f = (const fwd_arg *)arg;
  const sg_layer *L = f->L;
  const isa_kernels *isa = sg_isa();
  for (int h = h0; h < h1; h++) {
    int j0, j1;
    half_range(L, h, &j0, &j1);
    if (j0 >= j1 || (!f->f32 && f->rows < L->m)) continue;
    const double *w = L->W + (long)j0 * L->n;
    if (made_now(0, w)) continue;
    const int nr = f->f32 ? isa->nr32 : isa->nr64, n = L->n;
    const size_t panels = (size_t)((j1 - j0 + nr - 1) / nr);
    if (f->f32) isa->pack_wt32(w, j1 - j0, n, scratch(0, panels * nr * (size_t)n * sizeof(float)));
    else isa->pack_wt64(w, j1 - j0, n, scratch(0, panels * nr * (size_t)n * sizeof(double)));
    mark_made(0, w);
  }
}

/* the forward product of one half's neurons: z[:, j0:j1] = x·W[j0:j1]ᵀ + b, then their activation */
static void fwd_part(const fwd_arg *f, int h) {
  const sg_layer *L = f->L;
  int j0, j1;
  half_range(L, h, &j0, &j1);
  if (j0 >= j1) return;
  const isa_kernels *isa = sg_isa();
  const int rows = f->rows, n = L->n, m = L->m, mh = j1 - j0, eact = fused(L->act);
  if (!f->f32 && rows < m) {
    /* zᵀ = W·xᵀ, rows of the product = neurons: this half's rows; xᵀ packed once per thread and job */
    const int nr = isa->nr64;
    const size_t panels = (size_t)((rows + nr - 1) / nr);
    double *xt = scratch(0, panels * nr * (size_t)n * sizeof(double));
    if (!made_now(0, f->x)) {
      isa->pack_wt64(f->x, rows, n, xt);
      mark_made(0, f->x);
    }
    prod_job job = { isa, 0, { .N = rows, .P = n, .A = L->W, .ais = n, .aps = 1, .B = xt, .packed = 1, .C = L->z, .ldc = m,
                               .bias = L->b, .accumulate = 0, .C2 = L->a, .act = eact, .trans = 1 } };
    prod_range(&job, j0, j1);
  } else {
    const int nr = f->f32 ? isa->nr32 : isa->nr64;
    const size_t panels = (size_t)((mh + nr - 1) / nr);
    prod_job job = { isa, f->f32, { .N = mh, .P = n, .ais = n, .aps = 1, .packed = 1, .C = L->z + j0, .ldc = m,
                                    .bias = L->b + j0, .accumulate = 0, .C2 = L->a + j0, .act = eact, .trans = 0 } };
    fwd_prep(f, h, h + 1); /* this half's panels in slot 0 (packed already by a helper that waited at the gate) */
    job.p.B = scratch(0, panels * nr * (size_t)n * (f->f32 ? sizeof(float) : sizeof(double)));
    job.p.A = !f->f32 ? (const void *)f->x : f->x32 != NULL ? (const void *)f->x32 : (const void *)narrowed(isa, 1, f->x, (size_t)rows * n);
    prod_range(&job, 0, rows);
  }
  if (eact == ACT_NONE && L->act != ACT_NONE) {
    if (mh == m) sg_activate(L->act, L->z, L->a, rows, m);
    else for (int r = 0; r < rows; r++) sg_activate(L->act, L->z + (long)r * m + j0, L->a + (long)r * m + j0, 1, mh);
  }
  if (f->a32 != NULL) {
    for (int r = 0; r < rows; r++) narrow_stream(L->a + (long)r * m + j0, f->a32 + (long)r * m + j0, mh);
    stream_fence();
  }
}

static void fwd_halves(const void *arg, int h0, int h1) { for (int h = h0; h < h1; h++) fwd_part((const fwd_arg *)arg, h); }

/*
 * A layer's backward job. `finish`: L lies below a layer whose job came before, which left
 * L's delta as partial products without the derivative of L's activation: thread t (0 the
 * caller, 1 the helper) wrote its partial of its own columns of L into L->delta and its
 * partial of the other thread's columns into in[t], compact (rows × their width); in[t] is
 * NULL when thread t had no rows of the layer above (the helper, under a layer not cut).
 * This job leaves the layer below's partials the same way, the other half's columns in
 * out[h]. L->delta's columns are written and read by their owner only, each out[h] is
 * written by one thread and read by the other: no cache line is written by both threads in
 * a step, and each thread's buffers hold only the columns that must cross.
 */
typedef struct {
  int f32, rows, finish, l;
  const double *x, *in[2];
  double *out[2];
  const sg_layer *L, *below;
  double *norm;
  /* a shared float32 step: the layer's input as the forward pass narrowed it (fwd_arg's x32),
     and the partials that cross as float32 copies: out32[h] written (by narrow_stream) where
     out[h] would be, in32[t] read where in[t] would be (in[t] then only says whether there is one) */
  const float *x32, *in32[2];
  float *out32[2];
} bwd_arg;

/* float32: the layer's input (slot 1) and, above the first layer, this half's rows of W (slot 2), narrowed: before the gate, kept for the job */
static void bwd_prep(const void *arg, int h0, int h1) {
  const bwd_arg *b = (const bwd_arg *)arg;
  const sg_layer *L = b->L;
  if (!b->f32) return;
  const isa_kernels *isa = sg_isa();
  for (int h = h0; h < h1; h++) {
    int j0, j1;
    half_range(L, h, &j0, &j1);
    if (j0 >= j1) continue;
    if (b->x32 == NULL) narrowed(isa, 1, b->x, (size_t)b->rows * L->n);
    const double *w = L->W + (long)j0 * L->n;
    if (b->below != NULL && !made_now(2, w)) {
      isa->narrow(w, scratch(2, (size_t)(j1 - j0) * L->n * sizeof(float)), (size_t)(j1 - j0) * L->n);
      mark_made(2, w);
    }
  }
}

/*
 * One half of a layer's backward step, all of it on the half's own neurons j of L: first
 * their delta's columns are finished (the two partial products added, then
 * the derivative of L's activation); then gb and gW for their rows; then, below the first
 * layer, their partial dx = delta[:, j]·W[j, :] over all the columns of the layer below
 * (its own columns there into that layer's delta, the other thread's into out[h]); the next
 * layer's job adds them. So W's rows are read by their owner only, and only activation-sized
 * partial sums cross between the cores. On one thread (dense_backward with `split`) dx is
 * the same two partial products, added in the same order: bitwise the same result.
 */
static void bwd_part(const bwd_arg *b, int h) {
  const sg_layer *L = b->L, *B = b->below;
  const isa_kernels *isa = sg_isa();
  const int rows = b->rows, n = L->n, m = L->m;
  int j0, j1;
  half_range(L, h, &j0, &j1);
  double *part = b->norm != NULL ? b->norm + 4 * b->l + 2 * h : NULL;
  if (j0 >= j1) {
    if (part != NULL) part[0] = part[1] = 0;
    return;
  }
  const int mh = j1 - j0;
  double *d = L->delta;
  /* float32: the input and this half's rows of W narrowed (by a helper that waited at the gate, already) */
  const void *xB = b->x, *wB = L->W + (long)j0 * n;
  if (b->f32) {
    bwd_prep(b, h, h + 1);
    xB = b->x32 != NULL ? (const void *)b->x32 : (const void *)narrowed(isa, 1, b->x, (size_t)rows * n);
    if (B != NULL) wB = scratch(2, (size_t)mh * n * sizeof(float));
  }
  if (b->finish) {
    /* mine: this thread's partial of its columns, in place; theirs: the other thread's, compact.
       Both: their sum (IEEE addition is commutative: the one-thread P0 + P1 to the bit either way) */
    const int mine = b->in[h] != NULL;
    const double *theirs = b->in[1 - h];
    const float *theirs32 = b->in32[1 - h];
    for (int r = 0; r < rows; r++) {
      const long o = (long)r * m + j0;
      double *dr = d + o;
      if (theirs32 != NULL) { /* exact: a float32 product's partial sums are float32 values */
        const float *pr = theirs32 + (long)r * mh;
        if (mine) for (int q = 0; q < mh; q++) dr[q] = dr[q] + (double)pr[q];
        else for (int q = 0; q < mh; q++) dr[q] = (double)pr[q];
      } else if (theirs != NULL) {
        const double *pr = theirs + (long)r * mh;
        if (mine) for (int q = 0; q < mh; q++) dr[q] = dr[q] + pr[q];
        else memcpy(dr, pr, sizeof(double) * (size_t)mh);
      }
      if (L->act != ACT_LINEAR) sg_activation_backward(L->act, L->z + o, L->a + o, dr, 1, mh);
    }
  }
  /* the half's columns of delta: in place (float64), or narrowed into a compact rows × mh copy (float32) */
  const void *dA = d + j0;
  long ld = m;
  if (b->f32) {
    float *df = scratch(3, (size_t)rows * mh * sizeof(float));
    made[3].src = NULL;
    for (int r = 0; r < rows; r++) isa->narrow(d + (long)r * m + j0, df + (long)r * mh, (size_t)mh);
    dA = df; ld = mh;
  }
  /* gb through a local restrict pointer: through L (with -fno-strict-aliasing a store to gb
     could change L->gb) the loop reloaded the pointer for every element and did not vectorise
     (W3's first layer: 8.2 µs for 64 × 256 additions) */
  double *restrict gb = L->gb + j0;
  for (int j = 0; j < mh; j++) gb[j] = 0;
  for (int i = 0; i < rows; i++) {
    const double *restrict di = d + (long)i * m + j0;
    for (int j = 0; j < mh; j++) gb[j] += di[j];
  }
  prod_job gw = { isa, b->f32, { .N = n, .P = rows, .A = dA, .ais = 1, .aps = ld, .B = xB, .ldb = n, .packed = 0,
                                 .C = L->gW + (long)j0 * n, .ldc = n, .bias = NULL, .accumulate = 0, .C2 = NULL, .act = ACT_NONE } };
  prod_range(&gw, 0, mh);
  /* the gradient norm's partial sums of this half (sg_plan_sum_of_squares adds them), while its gW rows are in cache */
  if (part != NULL) {
    part[0] = sg_sum_of_squares(L->gW + (long)j0 * n, (long)mh * n);
    part[1] = sg_sum_of_squares(L->gb + j0, mh);
  }
  if (B == NULL) return;
  /* this thread's columns of the layer below into its delta, the other thread's into out[h]
     (a column's sum is the same chain whichever columns a call computes: the cuts are whole vectors) */
  const size_t esize = b->f32 ? sizeof(float) : sizeof(double);
  for (int t = 0; t < 2; t++) {
    int k0, k1;
    half_range(B, t == 0 ? h : 1 - h, &k0, &k1);
    if (k0 >= k1) continue;
    /* the other thread's columns as a float32 copy: computed here, then streamed to it */
    const int copy = t == 1 && b->out32[h] != NULL;
    double *C = t == 0 ? B->delta + k0 : copy ? scratch(5, (size_t)rows * (k1 - k0) * sizeof(double)) : b->out[h];
    prod_job dj = { isa, b->f32, { .N = k1 - k0, .P = mh, .A = dA, .ais = ld, .aps = 1, .B = (const char *)wB + (size_t)k0 * esize, .ldb = n,
                                   .packed = 0, .C = C, .ldc = t == 0 ? n : k1 - k0, .bias = NULL,
                                   .accumulate = 0, .C2 = NULL, .act = ACT_NONE } };
    prod_range(&dj, 0, rows);
    if (copy) {
      narrow_stream(C, b->out32[h], (long)rows * (k1 - k0));
      stream_fence();
    }
  }
}

static void bwd_halves(const void *arg, int h0, int h1) { for (int h = h0; h < h1; h++) bwd_part((const bwd_arg *)arg, h); }

/*
 * The two halves of a job of phase `kind`: with the helper in a shared step, else one after
 * the other; timed per phase. `pre` (unless NULL): the layers the job waits for, which the
 * caller runs after publishing the job and before opening its `gate_value` (gate_wait), so
 * that the hand-over and the helper's own preparation overlap them.
 */
static void run_halves(int kind, int slot, range_fn fn, const void *arg, double spin, int helper_has_work,
                       void (*pre)(const void *), const void *pre_arg, range_fn prep) {
  atomic_fetch_add(&owned_gen, 1);
  /* a job whose helper half is empty (an output layer too small to cut) is no hand-over */
  if (helper_has_work && hot && take_pool()) {
    job_kind = kind;
    job_published = now_seconds();
    job_spin = spin;
    job_gate = pre != NULL ? atomic_fetch_add(&gate_count, 1) + 1 : 0;
    job_prep = prep;
    job_cpu = ++job_count % CPU_SAMPLE == 0;
    const task t = { fn, arg, 2, 1, 0 };
    const int total = publish_tasks(&t, 1);
    if (pre != NULL) {
      pre(pre_arg);
      atomic_store(&gate, job_gate);
    }
    const int cpu = job_cpu;
    const double t0 = now_seconds(), u0 = cpu ? cpu_seconds() : 0;
    const double waited = complete_tasks(total), wall = now_seconds() - t0, used = cpu ? cpu_seconds() - u0 : 0;
    phase_add(kind, 1, 1);
    phase_add(kind, 2, wall - waited);
    phase_add(kind, 3, waited);
    if (helper_took == 1) { /* each thread took its own half (a late caller can lose its own to the helper) */
      best_of(kind, slot, 1, wall);
      best_of(kind, slot, 2, wall - waited);
      best_of(kind, slot, 3, atomic_load(&helper_chunk_seconds));
      /* the caller's CPU time outside its wait (which it spends spinning, on the CPU) */
      if (cpu) {
        best_of(kind, slot, 4, used - waited > 0 ? used - waited : 0);
        best_of(kind, slot, 5, atomic_load(&helper_chunk_cpu));
      }
    }
  } else {
    if (pre != NULL) pre(pre_arg);
    const double t0 = now_seconds();
    fn(arg, 0, 2);
    const double wall = now_seconds() - t0;
    phase_add(kind, 2, wall);
    best_of(kind, slot, 0, wall);
  }
  phase_add(kind, 0, 1);
}

/* layers [from, to) of a forward pass not cut in halves: the caller's alone, timed as the caller's part of a shared step */
typedef struct { int f32, rows; const double *x; const sg_plan *plan; int from, to; } fwd_run;
static void forward_whole(const void *arg) {
  const fwd_run *r = (const fwd_run *)arg;
  const double *input = r->x;
  for (int l = r->from; l < r->to; l++) {
    const sg_layer *L = &r->plan->layer[l];
    const fwd_arg f = { r->f32, r->rows, input, L, in32_of(r->plan, l, r->f32), in32_of(r->plan, l + 1, r->f32) };
    const double t0 = now_seconds();
    fwd_halves(&f, 0, 2);
    const double wall = now_seconds() - t0;
    phase_add(0, 0, 1); phase_add(0, 2, wall); best_of(0, l, 2, wall); /* the caller's, in a shared step */
    input = L->a;
  }
}

/*
 * A shared forward pass: one hand-over per cut layer, published before the layers below it
 * that are not cut (W3: the first layer, 64 → 256, runs whole on the caller while the
 * helper packs its half of the second layer's W), the layers above it up to the next cut
 * one after it, on the caller.
 */
static void forward_owned(sg_plan *plan, int rows, const double *x, int f32) {
  if (f32) cross_copies(plan);
  const double *input = x;
  for (int l = 0; l < plan->layers;) {
    int c = l;
    while (c < plan->layers && plan->layer[c].split >= plan->layer[c].m) c++;
    const fwd_run pre = { f32, rows, input, plan, l, c };
    if (c == plan->layers) { forward_whole(&pre); break; }
    const sg_layer *L = &plan->layer[c];
    const fwd_arg f = { f32, rows, c > 0 ? plan->layer[c - 1].a : x, L, in32_of(plan, c, f32), in32_of(plan, c + 1, f32) };
    run_halves(0, c, fwd_halves, &f, SPIN_IN_STEP, 1, c > l ? forward_whole : NULL, &pre, fwd_prep);
    input = L->a;
    l = c + 1;
  }
  plan->in32_rows = f32 ? rows : 0;
}

/* layers from down to to + 1 of a backward pass not cut in halves: the caller's alone, timed as the caller's part of a shared step */
typedef struct { const bwd_arg *args; int from, to; } bwd_run;
static void backward_whole(const void *arg) {
  const bwd_run *r = (const bwd_run *)arg;
  for (int l = r->from; l > r->to; l--) {
    const double t0 = now_seconds();
    bwd_halves(&r->args[l], 0, 2);
    const double wall = now_seconds() - t0;
    phase_add(1, 0, 1); phase_add(1, 2, wall); best_of(1, l, 2, wall); /* the caller's, in a shared step */
  }
}

/*
 * A shared backward pass: as the forward pass, one hand-over per cut layer, published
 * before the layers above it that are not cut (W3: the output layer's job on the caller,
 * while the helper narrows its rows of W and the layer's input), the layers below it down
 * to the next cut one after it. Each half also leaves its partial sums of the gradient's
 * norm (plan->norm_parts), so that sg_plan_sum_of_squares needs no job of its own.
 */
static void backward_owned(sg_plan *plan, int rows, int f32) {
  /* the partial dx of the other half's columns: two pairs of buffers in turn (a job reads the pair the job before wrote, and writes the other) */
  int widest = 1;
  for (int l = 0; l < plan->layers; l++) if (plan->layer[l].n > widest) widest = plan->layer[l].n;
  const long size = (long)rows * widest;
  double *parts = scratch(4, 4 * (size_t)size * sizeof(double));
  /* float32: the inputs the forward pass narrowed, and the partials crossing as float32 */
  const int cross = f32 && plan->in32_rows == rows;
  bwd_arg one[16];
  bwd_arg *args = plan->layers <= 16 ? one : malloc(sizeof(bwd_arg) * (size_t)plan->layers);
  if (args == NULL) abort();
  const double *in[2] = { NULL, NULL };
  const float *in32[2] = { NULL, NULL };
  for (int l = plan->layers - 1; l >= 0; l--) {
    const sg_layer *L = &plan->layer[l];
    const sg_layer *below = l > 0 ? &plan->layer[l - 1] : NULL;
    double *out = parts + (l & 1) * 2 * size;
    float *out32 = cross ? plan->part32 + (l & 1) * 2 * size : NULL;
    const bwd_arg b = { f32, rows, l < plan->layers - 1, l, below ? below->a : plan->x, { in[0], in[1] }, { out, out + size }, L, below, plan->norm_parts,
                        cross ? in32_of(plan, l, f32) : NULL, { in32[0], in32[1] }, { out32, cross ? out32 + size : NULL } };
    args[l] = b;
    in[0] = out;
    in[1] = L->split < L->m ? out + size : NULL;
    in32[0] = out32;
    in32[1] = cross && L->split < L->m ? out32 + size : NULL;
  }
  for (int l = plan->layers - 1; l >= 0;) {
    int c = l;
    while (c >= 0 && plan->layer[c].split >= plan->layer[c].m) c--;
    const bwd_run pre = { args, l, c };
    if (c < 0) { backward_whole(&pre); break; }
    run_halves(1, c, bwd_halves, &args[c], SPIN_IN_STEP, 1, c < l ? backward_whole : NULL, &pre, bwd_prep);
    l = c - 1;
  }
  if (args != one) free(args);
  plan->norm_ready = plan->norm_parts != NULL;
}

/* the way of the plan's step under way for a call after its passes (norm, update): shared only in a step that shares */
static void step_way(const sg_plan *plan) {
  solo = plan->step_mode != 1;
  hot = plan->step_mode == 1 && plan->step_backward;
}

typedef struct { const sg_plan *plan; double *part; } norm_arg;

/* a half's sums of squares, per layer: its rows of gW, its part of gb */
static void norm_halves(const void *arg, int h0, int h1) {
  const norm_arg *o = (const norm_arg *)arg;
  for (int h = h0; h < h1; h++) {
    for (int l = 0; l < o->plan->layers; l++) {
      const sg_layer *L = &o->plan->layer[l];
      int j0, j1;
      half_range(L, h, &j0, &j1);
      double *part = o->part + 4 * l + 2 * h;
      part[0] = j0 < j1 ? sg_sum_of_squares(L->gW + (long)j0 * L->n, (long)(j1 - j0) * L->n) : 0;
      part[1] = j0 < j1 ? sg_sum_of_squares(L->gb + j0, j1 - j0) : 0;
    }
  }
}

/* Σ g² over the plan's gradient: each half's partial sums, added in one fixed order (layer by layer, caller's half first) */
double sg_plan_sum_of_squares(sg_plan *plan) {
  if (plan->norm_ready) {
    /* left by a shared backward pass: the same partial sums the job below computes, added in the same order */
    plan->norm_ready = 0;
    double total = 0;
    for (int q = 0; q < 4 * plan->layers; q++) total += plan->norm_parts[q];
    phase_add(2, 0, 1);
    phase_add(2, 1, 1);
    return total;
  }
  double part[4 * 64];
  double *p = plan->layers <= 64 ? part : malloc(sizeof(double) * 4 * (size_t)plan->layers);
  if (p == NULL) abort();
  const norm_arg o = { plan, p };
  step_way(plan);
  run_halves(2, 0, norm_halves, &o, SPIN_IN_STEP, 1, NULL, NULL, NULL);
  solo = hot = 0;
  double total = 0;
  for (int q = 0; q < 4 * plan->layers; q++) total += p[q];
  if (p != part) free(p);
  return total;
}

typedef struct { const sg_plan *plan; int kind; double *p, *g, *m, *v; const double *s; } update_arg;

static void update_segment(const update_arg *u, long at, long len) {
  const double *s = u->s;
  switch (u->kind) {
    case 0: sg_sgd(u->p + at, u->g + at, len, s[0]); return;
    case 1: sg_momentum(u->p + at, u->g + at, u->m + at, len, s[0], s[1]); return;
    case 2: sg_adam(u->p + at, u->g + at, u->m + at, u->v + at, len, s[0], s[1], s[2], s[3], s[4]); return;
    case 3: sg_rmsprop(u->p + at, u->g + at, u->v + at, len, s[0], s[1], s[2]); return;
    case 4: sg_adagrad(u->p + at, u->g + at, u->m + at, len, s[0], s[1]); return;
    default: sg_scale(u->g + at, len, s[0]); return;
  }
}

/* a half's rows of W and part of b: elementwise rules, so who runs which element changes nothing */
static void update_halves(const void *arg, int h0, int h1) {
  const update_arg *u = (const update_arg *)arg;
  for (int h = h0; h < h1; h++) {
    for (int l = 0; l < u->plan->layers; l++) {
      const sg_layer *L = &u->plan->layer[l];
      int j0, j1;
      half_range(L, h, &j0, &j1);
      if (j0 >= j1) continue;
      update_segment(u, (L->W - u->plan->params) + (long)j0 * L->n, (long)(j1 - j0) * L->n);
      update_segment(u, (L->b - u->plan->params) + j0, j1 - j0);
    }
  }
}

/*
 * How long the helper spins after a step's update: about twice the gap measured from an
 * update to the next forward pass (the stream's own JavaScript between steps), so that it is
 * still awake when the next step comes, instead of being woken by a futex then (a wake-up
 * costs the caller a system call and the helper tens of µs, long enough to lose the first
 * layer's half to the caller); never more than SPIN_BETWEEN_MAX: a stream that pauses longer
 * leaves the helper asleep between its steps.
 */
#define SPIN_BETWEEN_MAX 200e-6
static double gap_spin(const sg_plan *plan) {
  const double spin = 2 * plan->gap + 10e-6;
  return spin < SPIN_AFTER_JOB ? SPIN_AFTER_JOB : spin > SPIN_BETWEEN_MAX ? SPIN_BETWEEN_MAX : spin;
}

/*
 * The optimizer rule `kind` (or the clipping scale) over the plan's parameters (p, g, m, v:
 * the model's flat arrays): by halves when the plan runs by halves, else over the flat
 * arrays, the very call the flat kernels make (a plan spares the caller passing, and the
 * binding checking, p and g: ~35 ns each a call).
 */
void sg_plan_update(sg_plan *plan, int kind, double *p, double *g, double *m, double *v, const double *s) {
  const update_arg u = { plan, kind, p, g, m, v, s };
  if (!plan->owned) { update_segment(&u, 0, plan->nparams); return; }
  plan->norm_ready = 0;
  step_way(plan);
  /* the scale (clipping) comes before the update in the step: the helper spins on */
  run_halves(3, kind == 5, update_halves, &u, kind == 5 ? SPIN_IN_STEP : gap_spin(plan), 1, NULL, NULL, NULL);
  if (kind != 5) plan->update_end = now_seconds();
  solo = hot = 0;
}
