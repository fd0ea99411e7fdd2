/* The entry points addon.c binds to JavaScript (implemented in kernels.c). */
#ifndef STREAMGRAD_NATIVE_H
#define STREAMGRAD_NATIVE_H

typedef struct {
  int n, m, act;
  /* neurons [0, split) are the calling thread's half of the layer, [split, m) the helper's (kernels.c: owned halves) */
  int split;
  const double *W, *b;
  double *z, *a, *delta, *gW, *gb;
} sg_layer;

/* A workspace's layers: pointers into the model's and workspace's arrays, made once. */
typedef struct {
  int layers, capacity, inputs;
  const double *x;
  /* kernels.c step_mode: wall seconds per row of steps [on one thread, shared] */
  double ab_time[2];
  unsigned ab_steps, ab_next, ab_every;
  /* the step under way: its way (-1 none, 0 one thread, 1 shared), rows, start, whether its backward pass ran */
  int step_mode, step_rows, step_backward;
  double step_t0;
  /* the model's flat parameters and the workspace's gradient (laid out alike), when the layers are views of them */
  double *params, *grads;
  long nparams;
  /* whether some layer is split in halves: the passes, the gradient's norm and the optimizer then run by halves */
  int owned;
  /* when the last update by halves ended, and the running mean of the gap from there to the next forward pass (kernels.c gap_spin) */
  double update_end, gap;
  /* an owned plan's partial sums of the gradient's norm (4 per layer: kernels.c norm_halves' order), and whether a shared backward pass left them for the current gradient */
  double *norm_parts;
  int norm_ready;
  /* float32, a shared step: each layer's input from layer 1 up, narrowed by the owners of its
     columns (rows × n, one after another), and the backward pass's partial dx of the other
     thread's columns (kernels.c cross-core copies); in32_rows: the rows the forward pass left
     in in32 (0: none) */
  float *in32, *part32;
  int in32_rows;
  /* where a plan that does not run by halves leaves, after each backward pass, [Σ g² over grads, 1] ([_, 0]: not computed); NULL: nowhere (kernels.c sg_backward_net) */
  double *norm_out;
  sg_layer layer[];
} sg_plan;

const char *sg_best_isa(void);
int sg_set_isa(const char *name);
void sg_set_parallel(int threads, double min_flops);
int sg_threads(void);
double sg_parallel_flops(void);
unsigned long sg_parallel_runs(void);
unsigned long sg_helper_runs(void);
unsigned long sg_caller_chunks(void);
unsigned long sg_helper_chunks(void);
double sg_wait_seconds(void);
unsigned long sg_shared_passes(void);
unsigned long sg_solo_passes(void);

void sg_dense_forward(int f32, const double *x, const double *W, const double *b, double *z, double *a, int rows, int n, int m, int act);
void sg_dense_backward(int f32, const double *x, const double *d, const double *W, double *gW, double *gb, double *dx, int rows, int n, int m, int fresh);
void sg_activate(int kind, const double *z, double *a, int rows, int m);
void sg_activation_backward(int kind, const double *z, const double *a, double *d, int rows, int m);
void sg_forward_net(sg_plan *plan, int rows, const double *x, int f32);
void sg_backward_net(sg_plan *plan, int rows, int f32);
int sg_split_of(int n, int m, int act);
void sg_plan_owned(sg_plan *plan);
double sg_plan_sum_of_squares(sg_plan *plan);
/* kind: 0 sgd, 1 momentum, 2 adam, 3 rmsprop, 4 adagrad, 5 scale (g ← s[0]·g); by halves when the plan runs by halves, else over the flat arrays */
void sg_plan_update(sg_plan *plan, int kind, double *p, double *g, double *m, double *v, const double *s);
/* per phase (forward, backward, norm, update): jobs, shared jobs, caller work s, caller wait s, helper work s, helper late s */
#define SG_PHASES 4
#define SG_PHASE_FIELDS 6
/* then, per phase and slot (SG_SLOTS: a pass's layers), the shortest job: whole on one thread, shared (wall, caller's half, helper's half) */
#define SG_SLOTS 8
#define SG_BEST_FIELDS 6
void sg_phase_times(double *out);
void sg_phase_reset(void);

double sg_sum_of_squares(const double *g, long len);
void sg_scale(double *g, long len, double s);
void sg_sgd(double *p, const double *g, long len, double lr);
void sg_momentum(double *p, const double *g, double *v, long len, double lr, double mu);
void sg_adam(double *p, const double *g, double *m, double *v, long len, double step, double beta1, double beta2, double c2, double eps);
void sg_rmsprop(double *p, const double *g, double *v, long len, double lr, double alpha, double eps);
void sg_adagrad(double *p, const double *g, double *s, long len, double lr, double eps);

#endif
