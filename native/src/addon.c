/*
 * The Node-API binding of streamgrad's native kernels (pipeline/kernels-native.ts is its
 * only caller). Every kernel reads and writes the caller's Float64Arrays in place: no
 * copies, whatever memory the arrays live in. Sizes are checked here, before any pointer
 * is used, so a wrong call throws instead of writing out of bounds.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "native.h"

#define MAX_ARGS 12

#define CHECK(call) do { if ((call) != napi_ok) return throw_error(env, "node-api call failed: " #call); } while (0)

static napi_value throw_error(napi_env env, const char *message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "SG_ERR_NATIVE", message);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, NULL, message);
  return NULL;
}

typedef struct { napi_value v[MAX_ARGS]; size_t n; } args_t;

static int get_args(napi_env env, napi_callback_info info, args_t *a, size_t want) {
  a->n = MAX_ARGS;
  if (napi_get_cb_info(env, info, &a->n, a->v, NULL, NULL) != napi_ok) return 0;
  if (a->n < want) { napi_throw_type_error(env, NULL, "too few arguments"); return 0; }
  return 1;
}

/* a Float64Array with at least `need` values (need < 0: any length) */
static int f64(napi_env env, napi_value v, double **data, size_t *len, long need, const char *name) {
  napi_typedarray_type type;
  size_t length = 0;
  void *p = NULL;
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is
      || napi_get_typedarray_info(env, v, &type, &length, &p, NULL, NULL) != napi_ok || type != napi_float64_array) {
    char message[128];
    snprintf(message, sizeof message, "kernel argument %s: a Float64Array is needed", name);
    napi_throw_type_error(env, NULL, message);
    return 0;
  }
  if (need >= 0 && length < (size_t)need) {
    char message[160];
    snprintf(message, sizeof message, "kernel argument %s: %zu values, the shapes need %ld", name, length, need);
    napi_throw_range_error(env, NULL, message);
    return 0;
  }
  *data = (double *)p;
  if (len) *len = length;
  return 1;
}

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

static int i32(napi_env env, napi_value v, int *out, int lo, const char *name) {
  if (napi_get_value_int32(env, v, out) != napi_ok || *out < lo) {
    char message[128];
    snprintf(message, sizeof message, "kernel argument %s: an integer ≥ %d is needed", name, lo);
    napi_throw_range_error(env, NULL, message);
    return 0;
  }
  return 1;
}

static int num(napi_env env, napi_value v, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) { napi_throw_type_error(env, NULL, "a number is needed"); return 0; }
  return 1;
}

static int act_code(napi_env env, napi_value v, int *out, int allow_none) {
  if (!i32(env, v, out, 0, "activation")) return 0;
  if (*out > (allow_none ? ACT_NONE : ACT_SOFTMAX)) { napi_throw_range_error(env, NULL, "unknown activation code"); return 0; }
  return 1;
}

static napi_value undefined(napi_env env) { napi_value u; napi_get_undefined(env, &u); return u; }

/* ---------------------------------------------------------------------------------- */

static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, v;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_create_string_utf8(env, sg_isa()->name, NAPI_AUTO_LENGTH, &v)); CHECK(napi_set_named_property(env, o, "isa", v));
  CHECK(napi_create_string_utf8(env, sg_best_isa(), NAPI_AUTO_LENGTH, &v)); CHECK(napi_set_named_property(env, o, "bestIsa", v));
  CHECK(napi_create_int32(env, sg_threads(), &v)); CHECK(napi_set_named_property(env, o, "threads", v));
  CHECK(napi_create_double(env, sg_parallel_flops(), &v)); CHECK(napi_set_named_property(env, o, "parallelFlops", v));
  CHECK(napi_create_double(env, (double)sg_parallel_runs(), &v)); CHECK(napi_set_named_property(env, o, "parallelRuns", v));
  CHECK(napi_create_double(env, (double)sg_helper_runs(), &v)); CHECK(napi_set_named_property(env, o, "helperRuns", v));
  CHECK(napi_create_double(env, (double)sg_caller_chunks(), &v)); CHECK(napi_set_named_property(env, o, "callerChunks", v));
  CHECK(napi_create_double(env, (double)sg_helper_chunks(), &v)); CHECK(napi_set_named_property(env, o, "helperChunks", v));
  CHECK(napi_create_double(env, sg_wait_seconds(), &v)); CHECK(napi_set_named_property(env, o, "waitSeconds", v));
  CHECK(napi_create_double(env, (double)sg_shared_passes(), &v)); CHECK(napi_set_named_property(env, o, "sharedPasses", v));
  CHECK(napi_create_double(env, (double)sg_solo_passes(), &v)); CHECK(napi_set_named_property(env, o, "soloPasses", v));
  return o;
}

static napi_value js_set_isa(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  char name[32];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, a.v[0], name, sizeof name, &len) != napi_ok) return throw_error(env, "setIsa: a name is needed");
  napi_value r;
  CHECK(napi_get_boolean(env, sg_set_isa(name) != 0, &r));
  return r;
}

static napi_value js_set_parallel(napi_env env, napi_callback_info info) {
  args_t a;
  int threads;
  double flops;
  if (!get_args(env, info, &a, 2) || !i32(env, a.v[0], &threads, 1, "threads") || !num(env, a.v[1], &flops)) return NULL;
  sg_set_parallel(threads, flops);
  return undefined(env);
}

/* ---------------------------------------------------------------------------------- */
/* plans */

static void free_plan(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  free(((sg_plan *)data)->norm_parts);
  free(((sg_plan *)data)->in32);
  free(((sg_plan *)data)->part32);
  free(data);
}

/* makePlan(meta: [layers, capacity, inputs, (n, m, act) per layer], arrays: [x, (W, b, z, a, delta, gW, gb) per layer]) */
static napi_value js_make_plan(napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  napi_value meta = a.v[0], arrays = a.v[1], v;
  int head[3];
  for (int q = 0; q < 3; q++) {
    CHECK(napi_get_element(env, meta, q, &v));
    if (!i32(env, v, &head[q], q == 0 ? 1 : 0, "plan")) return NULL;
  }
  const int layers = head[0], capacity = head[1], inputs = head[2];
  sg_plan *plan = calloc(1, sizeof(sg_plan) + sizeof(sg_layer) * (size_t)layers);
  if (plan == NULL) return throw_error(env, "out of memory");
  plan->layers = layers; plan->capacity = capacity; plan->inputs = inputs;
  double *p = NULL;
  int ok = 1;
  CHECK(napi_get_element(env, arrays, 0, &v));
  ok = f64(env, v, &p, NULL, (long)capacity * inputs, "x");
  plan->x = p;
  int below = inputs;
  for (int l = 0; ok && l < layers; l++) {
    sg_layer *L = &plan->layer[l];
    int f[3];
    for (int q = 0; ok && q < 3; q++) {
      ok = napi_get_element(env, meta, 3 + 3 * l + q, &v) == napi_ok && i32(env, v, &f[q], q == 2 ? 0 : 1, "plan layer");
    }
    if (!ok) break;
    L->n = f[0]; L->m = f[1]; L->act = f[2];
    if (L->n != below || L->act > ACT_SOFTMAX) { throw_range(env, "plan: layer sizes do not chain"); ok = 0; break; }
    below = L->m;
    double **slots[7] = { (double **)&L->W, (double **)&L->b, &L->z, &L->a, &L->delta, &L->gW, &L->gb };
    const long need[7] = { (long)L->m * L->n, L->m, (long)capacity * L->m, (long)capacity * L->m, (long)capacity * L->m, (long)L->m * L->n, L->m };
    static const char *names[7] = { "W", "b", "z", "a", "delta", "gW", "gb" };
    for (int q = 0; ok && q < 7; q++) {
      ok = napi_get_element(env, arrays, (uint32_t)(1 + 7 * l + q), &v) == napi_ok && f64(env, v, slots[q], NULL, need[q], names[q]);
    }
  }
  if (!ok) { free(plan); return throw_error(env, "plan: bad arguments"); }
  /* optional: the model's flat parameters and the workspace's gradient, which the layers' W, b, gW and gb view */
  uint32_t count = 0;
  CHECK(napi_get_array_length(env, arrays, &count));
  if (count >= (uint32_t)(1 + 7 * layers + 2)) {
    size_t np = 0, ng = 0;
    CHECK(napi_get_element(env, arrays, (uint32_t)(1 + 7 * layers), &v));
    ok = f64(env, v, &plan->params, &np, -1, "params");
    CHECK(napi_get_element(env, arrays, (uint32_t)(2 + 7 * layers), &v));
    ok = ok && f64(env, v, &plan->grads, &ng, -1, "grads");
    if (!ok) { free(plan); return NULL; }
    if (np != ng) { plan->params = plan->grads = NULL; } else plan->nparams = (long)np;
  }
  /* optional: where backwardNet leaves the gradient's sum of squares and whether it did (2 values) */
  if (count >= (uint32_t)(1 + 7 * layers + 3)) {
    CHECK(napi_get_element(env, arrays, (uint32_t)(3 + 7 * layers), &v));
    if (!f64(env, v, &plan->norm_out, NULL, 2, "norm")) { free(plan); return NULL; }
  }
  sg_plan_owned(plan);
  napi_value ext;
  if (napi_create_external(env, plan, free_plan, NULL, &ext) != napi_ok) { free(plan); return throw_error(env, "plan: external"); }
  return ext;
}

static int plan_arg(napi_env env, napi_value v, sg_plan **plan, int rows) {
  if (napi_get_value_external(env, v, (void **)plan) != napi_ok || *plan == NULL) { napi_throw_type_error(env, NULL, "not a plan"); return 0; }
  if (rows > (*plan)->capacity) { napi_throw_range_error(env, NULL, "a pass over more rows than the workspace holds"); return 0; }
  return 1;
}

/* forwardNet(plan, rows, f32, input?) */
static napi_value js_forward_net(napi_env env, napi_callback_info info) {
  args_t a;
  sg_plan *plan;
  int rows, f32;
  if (!get_args(env, info, &a, 3) || !i32(env, a.v[1], &rows, 0, "rows") || !plan_arg(env, a.v[0], &plan, rows)
      || !i32(env, a.v[2], &f32, 0, "f32")) return NULL;
  const double *x = plan->x;
  if (a.n > 3 && !is_nullish(env, a.v[3])) {
    double *in;
    if (!f64(env, a.v[3], &in, NULL, (long)rows * plan->inputs, "input")) return NULL;
    x = in;
  }
  sg_forward_net(plan, rows, x, f32);
  return undefined(env);
}

/* backwardNet(plan, rows, f32) */
static napi_value js_backward_net(napi_env env, napi_callback_info info) {
  args_t a;
  sg_plan *plan;
  int rows, f32;
  if (!get_args(env, info, &a, 3) || !i32(env, a.v[1], &rows, 0, "rows") || !plan_arg(env, a.v[0], &plan, rows)
      || !i32(env, a.v[2], &f32, 0, "f32")) return NULL;
  sg_backward_net(plan, rows, f32);
  return undefined(env);
}

/* planOwned(plan): whether the plan's layers run by halves (and its norm and update with them) */
static napi_value js_plan_owned(napi_env env, napi_callback_info info) {
  args_t a;
  sg_plan *plan;
  if (!get_args(env, info, &a, 1) || !plan_arg(env, a.v[0], &plan, 0)) return NULL;
  napi_value r;
  CHECK(napi_get_boolean(env, plan->owned != 0, &r));
  return r;
}

/* planSumOfSquares(plan): Σ g² over the plan's gradient, by halves */
static napi_value js_plan_sum_of_squares(napi_env env, napi_callback_info info) {
  args_t a;
  sg_plan *plan;
  if (!get_args(env, info, &a, 1) || !plan_arg(env, a.v[0], &plan, 0)) return NULL;
  if (!plan->owned) return throw_error(env, "planSumOfSquares: the plan does not run by halves");
  napi_value r;
  CHECK(napi_create_double(env, sg_plan_sum_of_squares(plan), &r));
  return r;
}

/*
 * planUpdate(plan, kind, m|null, v|null, s0, s1, s2, s3, s4): an optimizer rule (or the
 * clipping scale, kind 5) on the plan's own parameters and gradient (the caller checked that
 * they are the arrays it means: kernels-native.ts ownerOf), by halves when the plan runs by
 * halves. Only the optimizer's state arrays are passed, and only where the rule reads them.
 */
static napi_value js_plan_update(napi_env env, napi_callback_info info) {
  args_t a;
  sg_plan *plan;
  int kind;
  double *x[2] = { NULL, NULL }, s[5];
  if (!get_args(env, info, &a, 9) || !plan_arg(env, a.v[0], &plan, 0) || !i32(env, a.v[1], &kind, 0, "kind")) return NULL;
  if (plan->grads == NULL || kind > 5) return throw_error(env, "planUpdate: the plan has no parameters and gradient, or an unknown rule");
  static const char *names[2] = { "m", "v" };
  /* which state arrays each rule reads: m (momentum, adam, adagrad), v (adam, rmsprop) */
  const int needs[2] = { kind == 1 || kind == 2 || kind == 4, kind == 2 || kind == 3 };
  for (int q = 0; q < 2; q++) {
    if (needs[q] && !f64(env, a.v[2 + q], &x[q], NULL, plan->nparams, names[q])) return NULL;
  }
  /* the numbers each rule reads (sgd and the scale 1, momentum and adagrad 2, rmsprop 3, adam 5): ~4 ns a number */
  static const int scalars[6] = { 1, 2, 5, 3, 2, 1 };
  for (int q = 0; q < 5; q++) {
    s[q] = 0;
    if (q < scalars[kind] && !num(env, a.v[4 + q], &s[q])) return NULL;
  }
  sg_plan_update(plan, kind, kind == 5 ? NULL : plan->params, plan->grads, x[0], x[1], s);
  return undefined(env);
}

/* phases(): per phase (forward, backward, norm, update) jobs, shared jobs, caller work s, caller wait s, helper work s, helper late s */
static napi_value js_phases(napi_env env, napi_callback_info info) {
  (void)info;
  enum { COUNT = SG_PHASES * SG_PHASE_FIELDS + SG_PHASES * SG_SLOTS * SG_BEST_FIELDS };
  double t[COUNT];
  sg_phase_times(t);
  napi_value r, v;
  CHECK(napi_create_array_with_length(env, COUNT, &r));
  for (int q = 0; q < COUNT; q++) {
    CHECK(napi_create_double(env, t[q], &v));
    CHECK(napi_set_element(env, r, (uint32_t)q, v));
  }
  return r;
}

static napi_value js_reset_phases(napi_env env, napi_callback_info info) {
  (void)info;
  sg_phase_reset();
  return undefined(env);
}

/* ---------------------------------------------------------------------------------- */
/* layer kernels */

/* denseForward(f32, x, W, b, z, a|null, rows, n, m, act) */
static napi_value js_dense_forward(napi_env env, napi_callback_info info) {
  args_t a;
  int f32, rows, n, m, act;
  double *x, *W, *b, *z, *out;
  if (!get_args(env, info, &a, 10) || !i32(env, a.v[0], &f32, 0, "f32") || !i32(env, a.v[6], &rows, 0, "rows")
      || !i32(env, a.v[7], &n, 0, "n") || !i32(env, a.v[8], &m, 0, "m") || !act_code(env, a.v[9], &act, 1)) return NULL;
  const long rm = (long)rows * m;
  if (!f64(env, a.v[1], &x, NULL, (long)rows * n, "x") || !f64(env, a.v[2], &W, NULL, (long)m * n, "W")
      || !f64(env, a.v[3], &b, NULL, m, "b") || !f64(env, a.v[4], &z, NULL, rm, "z")) return NULL;
  out = z;
  if (act != ACT_NONE && !f64(env, a.v[5], &out, NULL, rm, "a")) return NULL;
  sg_dense_forward(f32, x, W, b, z, out, rows, n, m, act);
  return undefined(env);
}

/* denseBackward(f32, x, delta, W, gW, gb, dx|null, rows, n, m) */
static napi_value js_dense_backward(napi_env env, napi_callback_info info) {
  args_t a;
  int f32, rows, n, m;
  double *x, *d, *W, *gW, *gb, *dx = NULL;
  if (!get_args(env, info, &a, 10) || !i32(env, a.v[0], &f32, 0, "f32") || !i32(env, a.v[7], &rows, 0, "rows")
      || !i32(env, a.v[8], &n, 0, "n") || !i32(env, a.v[9], &m, 0, "m")) return NULL;
  if (!f64(env, a.v[1], &x, NULL, (long)rows * n, "x") || !f64(env, a.v[2], &d, NULL, (long)rows * m, "delta")
      || !f64(env, a.v[3], &W, NULL, (long)m * n, "W") || !f64(env, a.v[4], &gW, NULL, (long)m * n, "gW")
      || !f64(env, a.v[5], &gb, NULL, m, "gb")) return NULL;
  if (!is_nullish(env, a.v[6]) && !f64(env, a.v[6], &dx, NULL, (long)rows * n, "dx")) return NULL;
  sg_dense_backward(f32, x, d, W, gW, gb, dx, rows, n, m, 0);
  return undefined(env);
}

/* activate(kind, z, a, rows, m) */
static napi_value js_activate(napi_env env, napi_callback_info info) {
  args_t a;
  int kind, rows, m;
  double *z, *out;
  if (!get_args(env, info, &a, 5) || !act_code(env, a.v[0], &kind, 0) || !i32(env, a.v[3], &rows, 0, "rows")
      || !i32(env, a.v[4], &m, 0, "m")) return NULL;
  if (!f64(env, a.v[1], &z, NULL, (long)rows * m, "z") || !f64(env, a.v[2], &out, NULL, (long)rows * m, "a")) return NULL;
  sg_activate(kind, z, out, rows, m);
  return undefined(env);
}

/* activationBackward(kind, z, a, delta, rows, m) */
static napi_value js_activation_backward(napi_env env, napi_callback_info info) {
  args_t a;
  int kind, rows, m;
  double *z, *out, *d;
  if (!get_args(env, info, &a, 6) || !act_code(env, a.v[0], &kind, 0) || !i32(env, a.v[4], &rows, 0, "rows")
      || !i32(env, a.v[5], &m, 0, "m")) return NULL;
  const long len = (long)rows * m;
  if (!f64(env, a.v[1], &z, NULL, len, "z") || !f64(env, a.v[2], &out, NULL, len, "a") || !f64(env, a.v[3], &d, NULL, len, "delta")) return NULL;
  sg_activation_backward(kind, z, out, d, rows, m);
  return undefined(env);
}

/* ---------------------------------------------------------------------------------- */
/* reductions and optimizers: p's length sets the length, the others must hold as many */

static napi_value js_sum_of_squares(napi_env env, napi_callback_info info) {
  args_t a;
  double *g;
  size_t len;
  if (!get_args(env, info, &a, 1) || !f64(env, a.v[0], &g, &len, -1, "g")) return NULL;
  napi_value r;
  CHECK(napi_create_double(env, sg_sum_of_squares(g, (long)len), &r));
  return r;
}

static napi_value js_scale(napi_env env, napi_callback_info info) {
  args_t a;
  double *g, s;
  size_t len;
  if (!get_args(env, info, &a, 2) || !f64(env, a.v[0], &g, &len, -1, "g") || !num(env, a.v[1], &s)) return NULL;
  sg_scale(g, (long)len, s);
  return undefined(env);
}

/* (p, then `arrays` more arrays as long as p, then `scalars` numbers) */
static int opt_args(napi_env env, napi_callback_info info, args_t *a, double **arr, int arrays, double *sc, int scalars, long *len) {
  size_t plen;
  if (!get_args(env, info, a, (size_t)(1 + arrays + scalars)) || !f64(env, a->v[0], &arr[0], &plen, -1, "p")) return 0;
  static const char *names[] = { "p", "g", "state", "state" };
  for (int q = 1; q <= arrays; q++) if (!f64(env, a->v[q], &arr[q], NULL, (long)plen, names[q < 3 ? q : 3])) return 0;
  for (int q = 0; q < scalars; q++) if (!num(env, a->v[1 + arrays + q], &sc[q])) return 0;
  *len = (long)plen;
  return 1;
}

static napi_value js_sgd(napi_env env, napi_callback_info info) {
  args_t a; double *x[2], s[1]; long len;
  if (!opt_args(env, info, &a, x, 1, s, 1, &len)) return NULL;
  sg_sgd(x[0], x[1], len, s[0]);
  return undefined(env);
}

static napi_value js_momentum(napi_env env, napi_callback_info info) {
  args_t a; double *x[3], s[2]; long len;
  if (!opt_args(env, info, &a, x, 2, s, 2, &len)) return NULL;
  sg_momentum(x[0], x[1], x[2], len, s[0], s[1]);
  return undefined(env);
}

static napi_value js_adam(napi_env env, napi_callback_info info) {
  args_t a; double *x[4], s[5]; long len;
  if (!opt_args(env, info, &a, x, 3, s, 5, &len)) return NULL;
  sg_adam(x[0], x[1], x[2], x[3], len, s[0], s[1], s[2], s[3], s[4]);
  return undefined(env);
}

static napi_value js_rmsprop(napi_env env, napi_callback_info info) {
  args_t a; double *x[3], s[3]; long len;
  if (!opt_args(env, info, &a, x, 2, s, 3, &len)) return NULL;
  sg_rmsprop(x[0], x[1], x[2], len, s[0], s[1], s[2]);
  return undefined(env);
}

static napi_value js_adagrad(napi_env env, napi_callback_info info) {
  args_t a; double *x[3], s[2]; long len;
  if (!opt_args(env, info, &a, x, 2, s, 2, &len)) return NULL;
  sg_adagrad(x[0], x[1], x[2], len, s[0], s[1]);
  return undefined(env);
}

/* ---------------------------------------------------------------------------------- */

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor fns[] = {
#define FN(name, f) { name, NULL, f, NULL, NULL, NULL, napi_default, NULL }
    FN("info", js_info), FN("setIsa", js_set_isa), FN("setParallel", js_set_parallel),
    FN("makePlan", js_make_plan), FN("forwardNet", js_forward_net), FN("backwardNet", js_backward_net),
    FN("planOwned", js_plan_owned), FN("planSumOfSquares", js_plan_sum_of_squares), FN("planUpdate", js_plan_update), FN("phases", js_phases), FN("resetPhases", js_reset_phases),
    FN("denseForward", js_dense_forward), FN("denseBackward", js_dense_backward),
    FN("activate", js_activate), FN("activationBackward", js_activation_backward),
    FN("sumOfSquares", js_sum_of_squares), FN("scale", js_scale),
    FN("sgd", js_sgd), FN("momentum", js_momentum), FN("adam", js_adam), FN("rmsprop", js_rmsprop), FN("adagrad", js_adagrad),
#undef FN
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
