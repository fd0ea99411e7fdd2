import type { Activation } from './activations.ts';
import { StreamgradError } from './errors.ts';
import type { Kernels } from './kernels.ts';
import type { Model, Workspace } from './shapes.ts';

/**
 * The native kernel backend: a Node-API addon in C (`native/`), built at install by
 * node-gyp against the running Node's own headers (`native/build.mjs`; nothing is
 * downloaded, and a failed build never fails the install).
 *
 * - **Register- and cache-blocked products** for the forward pass and both backward
 *   products (gW = deltaᵀ·x, dx = delta·W), bias and ReLU-family activations fused into
 *   the product's last write; `forwardPass` / `backwardPass` run a whole network in one
 *   call from a plan of the workspace's arrays made once (`Workspace.kernelCache`).
 * - **Runtime dispatch by CPUID** to AVX-512, AVX2 + FMA or SSE2 code: the C is compiled
 *   once per instruction set (`native/src/gemm-*.c`) and the best one the CPU and OS
 *   support is picked when the addon loads (`nativeInfo().isa`).
 * - **Both cores**, once `setNativeParallel(2)` asks for them (one thread by default: on
 *   an idle 2-core machine two threads still lose to one on W3): a product of at least `nativeInfo().parallelFlops` floating-point
 *   operations (measured: `bench/native.ts --threshold`) is cut into chunks of a few
 *   register tiles of rows that the caller takes from the first up and one helper thread on
 *   the same memory from the last down, until they meet; a backward layer's gW and dx
 *   products are one such job (the caller starts on dx, the helper on gW); batch 1 never
 *   shares. A helper that comes late (a loaded machine) leaves more chunks to the caller
 *   instead of making it wait. Each workspace times its training steps both ways, from one
 *   forward pass to the next (so what sharing costs between the passes counts too), uses
 *   the faster and retries the other now and then (`sharedPasses`, `soloPasses`), so where
 *   sharing does not pay the steps go back to one thread.
 * - **Owned halves** (issue #15, fourth pass): in a network with a layer of ≥ 128 neurons
 *   over ≥ 128 inputs (not softmax), each such layer is cut once into two halves of its
 *   neurons (the others run whole on the calling thread while the helper prepares its next
 *   half: a W3 step hands over three jobs, forward, backward and update), and a shared
 *   step gives each thread its half of every layer for good: the forward product, the
 *   rows of gW and gb, the part of the gradient's sum of squares and the optimizer update
 *   (and clipping's scale) for those neurons run on the thread that owns them, so W, gW and
 *   the optimizer's state stay in its cache; only activations cross between the cores.
 *   `sumOfSquares`, `scale` and the optimizer rules recognise the workspace's gradient (and
 *   its model's parameters) and run by those halves. One and two threads give bitwise the
 *   same parameters; the gradient's norm of such a network is the halves' partial sums
 *   added in a fixed order (so it may differ from `js`'s in the last bit, always the same
 *   with one thread or two; a shared backward pass leaves those partial sums, so the norm
 *   of a shared step is no job of its own). `nativePhases()` times each phase on both threads.
 * - **Fewer calls a step** (issue #15, W1): the backward pass of a plan that does not run
 *   by halves also returns the gradient's sum of squares (the norm's), and the optimizer
 *   rules and clipping's scale on a workspace's gradient and its model's parameters run on
 *   the plan's pointers, without the addon checking those arrays again: a batch-1 W1 step
 *   was ~1.9 µs, of which three calls' argument handling (~35 ns an array) and a call of
 *   its own for the norm were ~0.2 µs. Results are bitwise those of the flat kernels.
 * - **Zero copies, any memory**: kernels read and write the caller's `Float64Array`s in
 *   place, wherever they live; `allocate` gives ordinary ArrayBuffer-backed arrays.
 * - **Results**: the products use fused multiply-adds (AVX-512, AVX2) and their own
 *   summation order, so `native` agrees with `js`/`wasm` to the last few bits, not
 *   bitwise (the PyTorch fixtures pass at 1e-9, `test/kernels-native.test.ts`). The
 *   elementwise kernels (optimizers, `sumOfSquares`, ReLU-family activations) compute
 *   exactly what `js` computes. `native-f32` is `wasm-f32`'s float32 mode: float32
 *   products, float64 storage, the same tolerance (`F32_TOLERANCE`).
 *
 * Node only; elsewhere (browsers, a Node without `process.getBuiltinModule`, a failed
 * build) `nativeSupported()` is false and `nativeStatus()` says why. Nothing here imports
 * a Node module, so the file bundles for browsers.
 */
/**
 * `f64` is the `native` backend, `f32` is `native-f32` (float32 products).
 *
 * @example
 * const kernels = nativeSupported() ? nativeKernels('f32') : selectKernels('wasm-f32');
 */
export type NativePrecision = 'f64' | 'f32';

/** The instruction set in use and the helper-thread settings (see `nativeInfo`). */
export interface NativeInfo {
  /** `avx512`, `avx2`, `sse2` (or `generic` off x86). */
  readonly isa: string;
  /** The best this CPU supports. */
  readonly bestIsa: string;
  /** 1 or 2: whether large products use the helper thread. */
  readonly threads: number;
  /** Floating-point operations from which a product splits across both threads. */
  readonly parallelFlops: number;
  /** Products offered to the helper thread so far (process-wide). */
  readonly parallelRuns: number;
  /** Of those, the ones the helper took part in (it was too late for the others, and the caller ran them whole). */
  readonly helperRuns: number;
  /** Chunks (a few register tiles of rows) of the shared products the calling thread computed. */
  readonly callerChunks: number;
  /** Chunks the helper thread computed. */
  readonly helperChunks: number;
  /** Wall seconds the calling thread waited, after its own chunks, for the helper to finish its last one. */
  readonly waitSeconds: number;
  /**
   * Whole passes (forward or backward over a network) of training steps that could share
   * with the helper, run shared and run on one thread: each workspace times its steps both
   * ways, from one forward pass to the next, uses the faster way and tries the other now and
   * then (native/src/kernels.c `step_mode`).
   */
  readonly sharedPasses: number;
  readonly soloPasses: number;
}

interface Addon {
  info(): NativeInfo;
  setIsa(name: string): boolean;
  setParallel(threads: number, minFlops: number): void;
  makePlan(meta: number[], arrays: Float64Array[]): object;
  planOwned(plan: object): boolean;
  planSumOfSquares(plan: object): number;
  planUpdate(plan: object, kind: number, m: Float64Array | null, v: Float64Array | null,
    s0: number, s1: number, s2: number, s3: number, s4: number): void;
  phases(): number[];
  resetPhases(): void;
  forwardNet(plan: object, rows: number, f32: number, input?: Float64Array): void;
  backwardNet(plan: object, rows: number, f32: number): void;
  denseForward(f32: number, x: Float64Array, W: Float64Array, b: Float64Array, z: Float64Array, a: Float64Array | null,
    rows: number, n: number, m: number, act: number): void;
  denseBackward(f32: number, x: Float64Array, d: Float64Array, W: Float64Array, gW: Float64Array, gb: Float64Array,
    dx: Float64Array | null, rows: number, n: number, m: number): void;
  activate(kind: number, z: Float64Array, a: Float64Array, rows: number, m: number): void;
  activationBackward(kind: number, z: Float64Array, a: Float64Array, d: Float64Array, rows: number, m: number): void;
  sumOfSquares(g: Float64Array): number;
  scale(g: Float64Array, s: number): void;
  sgd(p: Float64Array, g: Float64Array, lr: number): void;
  momentum(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, mu: number): void;
  adam(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, stepSize: number, beta1: number, beta2: number, c2: number, epsilon: number): void;
  rmsprop(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, alpha: number, epsilon: number): void;
  adagrad(p: Float64Array, g: Float64Array, s: Float64Array, lr: number, epsilon: number): void;
}

/** Activation codes of native/src/kernels.h. */
const CODES = { linear: 0, relu: 1, leaky_relu: 2, sign: 3, sigmoid: 4, tanh: 5, softmax: 6 } satisfies Record<Activation, number>;
const NONE = 7;

/** Where the addon is, from this file in the sources (pipeline/) or in the package (dist/pipeline/). */
const CANDIDATES = ['../native/build/Release/streamgrad_native.node', '../../native/build/Release/streamgrad_native.node'];

let addon: Addon | null = null;
let failure: string | null = null;

interface NodeProcess {
  env?: Record<string, string | undefined>;
  getBuiltinModule?: (id: string) => unknown;
}
const nodeProcess = (): NodeProcess | undefined => (globalThis as { process?: NodeProcess }).process;

function load(): Addon | null {
  if (addon !== null || failure !== null) return addon;
  const proc = nodeProcess();
  if (proc?.env?.STREAMGRAD_NATIVE === '0') { failure = 'disabled by STREAMGRAD_NATIVE=0'; return null; }
  const modules = proc?.getBuiltinModule?.('module') as { createRequire(url: string): (id: string) => unknown } | undefined;
  const fs = proc?.getBuiltinModule?.('fs') as { existsSync(path: string): boolean } | undefined;
  const url = proc?.getBuiltinModule?.('url') as { fileURLToPath(url: URL): string } | undefined;
  if (modules === undefined || fs === undefined || url === undefined || typeof import.meta.url !== 'string' || !import.meta.url.startsWith('file:')) {
    failure = 'not in Node (or a Node before 20.16, without process.getBuiltinModule)';
    return null;
  }
  const paths = CANDIDATES.map((c) => url.fileURLToPath(new URL(c, import.meta.url)));
  const path = paths.find((p) => fs.existsSync(p));
  if (path === undefined) { failure = 'the addon was not built (native/build.mjs: needs node-gyp, make, a C compiler and Node\'s headers)'; return null; }
  try {
    const loaded = modules.createRequire(import.meta.url)(path) as Addon;
    const isa = proc?.env?.STREAMGRAD_NATIVE_ISA;
    if (isa !== undefined && isa !== '' && !loaded.setIsa(isa)) throw new Error(`STREAMGRAD_NATIVE_ISA=${isa}: this CPU has no ${isa}`);
    addon = loaded;
  } catch (e) {
    failure = `the addon did not load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
  return addon;
}

/** Whether the native addon is built and loads here. */
export function nativeSupported(): boolean {
  return load() !== null;
}

/** Whether native kernels are available, and why not when they are not. */
export function nativeStatus(): { readonly available: boolean; readonly reason?: string } {
  return load() !== null ? { available: true } : { available: false, reason: failure ?? 'unknown' };
}

function need(): Addon {
  const a = load();
  if (a === null) throw new StreamgradError('SG_ERR_CONFIG', `backend: the native kernels are unavailable: ${failure}; use wasm or js`, 'backend');
  return a;
}

/** The instruction set in use and the helper-thread settings; throws SG_ERR_CONFIG without the addon. */
export function nativeInfo(): NativeInfo {
  return need().info();
}

/**
 * Tuning and tests: `threads` 1 (the default) keeps every product on the calling thread, 2 lets products
 * of at least `minFlops` operations split with the helper thread (negative: keep the threshold).
 */
export function setNativeParallel(threads: 1 | 2, minFlops = -1): void {
  need().setParallel(threads, minFlops);
}

/** One phase of the steps that run by halves: how often, and where the time went, on each thread. */
export interface NativePhase {
  /** Jobs of this phase (a layer of a pass, a norm, an update or a clipping scale), shared or not. */
  readonly jobs: number;
  /** Of those, the ones offered to the helper (a step that shares). */
  readonly sharedJobs: number;
  /** Wall seconds the calling thread spent on its half (both halves in a job that did not share). */
  readonly callerSeconds: number;
  /** Wall seconds the calling thread waited, after its half, for the helper's: the cross-core wait. */
  readonly waitSeconds: number;
  /** Wall seconds the helper spent on its halves. */
  readonly helperSeconds: number;
  /** Wall seconds from a job's hand-over to the helper starting on it, in all. */
  readonly helperLateSeconds: number;
  /**
   * The shortest job seen, per slot (a pass's layers by index; the norm and the update in
   * slot 0, clipping's scale in slot 1), in wall seconds (0: none seen): `solo` run whole on
   * one thread; `shared` with the helper taking its half, and of those `caller` and `helper`
   * the two halves (a layer that is not cut, run whole by the calling thread in a shared
   * step: `caller` only), and `callerCpu`, `helperCpu` the shortest of each half in the thread's
   * CPU time, read in one shared job in 16 (a system call of ~1.6 µs: a half whose wall
   * time is longer was descheduled). On a loaded machine the
   * shortest of many jobs is what one costs when nothing else runs.
   */
  readonly best: readonly {
    readonly solo: number; readonly shared: number; readonly caller: number; readonly helper: number;
    readonly callerCpu: number; readonly helperCpu: number;
  }[];
}

/**
 * Process-wide running totals of the layers that each thread owns half of (native/src/kernels.c,
 * owned halves), per phase of a step: forward pass, backward pass, gradient norm, optimizer
 * update (with clipping's scale). Take two readings and subtract them to time a run.
 *
 * @example
 * const before = nativePhases();
 * // … train …
 * const forwardWait = nativePhases().forward.waitSeconds - before.forward.waitSeconds;
 */
export function nativePhases(): { readonly forward: NativePhase; readonly backward: NativePhase; readonly norm: NativePhase; readonly update: NativePhase } {
  const t = need().phases();
  const SLOTS = 8;
  const at = (k: number): NativePhase => ({
    jobs: t[6 * k], sharedJobs: t[6 * k + 1], callerSeconds: t[6 * k + 2], waitSeconds: t[6 * k + 3], helperSeconds: t[6 * k + 4], helperLateSeconds: t[6 * k + 5],
    best: Array.from({ length: SLOTS }, (_, q) => {
      const b = 24 + (k * SLOTS + q) * 6;
      return { solo: t[b], shared: t[b + 1], caller: t[b + 2], helper: t[b + 3], callerCpu: t[b + 4], helperCpu: t[b + 5] };
    }),
  });
  return { forward: at(0), backward: at(1), norm: at(2), update: at(3) };
}

/** Sets `nativePhases()`'s totals and shortest jobs back to zero (benches: before a measurement). */
export function resetNativePhases(): void {
  need().resetPhases();
}

/** Forces an instruction set the CPU has (`avx512`, `avx2`, `sse2`): tests run each on one machine. False when the CPU lacks it. */
export function setNativeIsa(isa: string): boolean {
  return need().setIsa(isa);
}

/** A workspace's plan (kept in `Workspace.kernelCache`): the addon's pointers, and the arrays they point into, kept alive. */
interface Plan {
  readonly owner: 'native';
  readonly model: Model;
  readonly x: Float64Array;
  readonly handle: object;
  readonly arrays: Float64Array[];
  /** Whether its layers run by halves (native/src/kernels.c, owned halves). */
  readonly owned: boolean;
  /**
   * What each backward pass leaves: [Σ g² over the workspace's gradient, 1], or [_, 0] when
   * it did not compute it (a plan that runs by halves: its norm is `planSumOfSquares`).
   */
  readonly norm: Float64Array;
}

/**
 * The plans by their workspace's gradient: `sumOfSquares`, `scale` and the optimizer rules
 * called on that gradient (and the model's parameters) go through the plan, which holds
 * the arrays' pointers. A plan whose layers run by halves runs them by the same halves, each
 * on the thread that owns them, instead of over the flat arrays on the calling thread; any
 * other plan runs the flat kernel, and spares the call passing (and the addon checking) the
 * parameters and the gradient, ~35 ns each at every step.
 */
const plans = new WeakMap<Float64Array, Plan>();

function makePlan(E: Addon, model: Model, ws: Workspace): Plan {
  const meta = [model.layers.length, ws.capacity, model.inputSize];
  const arrays = [ws.x];
  model.layers.forEach((layer, l) => {
    meta.push(layer.inputs, layer.outputs, CODES[layer.activation]);
    arrays.push(layer.weights, layer.bias, ws.z[l], ws.a[l], ws.delta[l], ws.gradWeights[l], ws.gradBias[l]);
  });
  const norm = new Float64Array(new ArrayBuffer(16));
  arrays.push(model.params, ws.grads, norm);
  const handle = E.makePlan(meta, arrays);
  const plan: Plan = { owner: 'native', model, x: ws.x, handle, arrays, owned: E.planOwned(handle), norm };
  ws.kernelCache = plan;
  // the addon takes params and grads only when they are as long as each other
  if (model.params.length === ws.grads.length) plans.set(ws.grads, plan);
  else plans.delete(ws.grads);
  return plan;
}

/**
 * The plan of `g` (a workspace's gradient) and `p` (its model's parameters, unless null):
 * the addon then works on the pointers it took from these very arrays. Not when either is
 * empty: a transferred buffer leaves its arrays empty (and the pointers to memory that is
 * no longer theirs), and the flat kernels then check them as any other array.
 */
function ownerOf(g: Float64Array, p: Float64Array | null): Plan | undefined {
  const plan = plans.get(g);
  return plan !== undefined && g.length !== 0 && (p === null || (plan.model.params === p && p.length !== 0)) ? plan : undefined;
}

function planFor(E: Addon, model: Model, ws: Workspace): Plan {
  const cached = ws.kernelCache as Plan | null;
  if (cached !== null && cached.owner === 'native' && cached.model === model && cached.x === ws.x) return cached;
  return makePlan(E, model, ws);
}

function checkRows(ws: Workspace, rows: number): void {
  if (!(rows >= 0 && rows <= ws.capacity)) throw new RangeError(`a pass over ${rows} rows, the workspace holds ${ws.capacity}`);
}

function kernelsOf(E: Addon, precision: NativePrecision): Kernels {
  const f32 = precision === 'f32' ? 1 : 0;
  return {
    name: precision === 'f32' ? 'native-f32' : 'native',
    allocate: (length) => new Float64Array(new ArrayBuffer(8 * length)),
    denseForward: (x, W, b, z, rows, n, m) => E.denseForward(f32, x, W, b, z, null, rows, n, m, NONE),
    denseBackward: (x, delta, W, gW, gb, dx, rows, n, m) => E.denseBackward(f32, x, delta, W, gW, gb, dx, rows, n, m),
    activate: (kind, z, a, rows, m) => E.activate(CODES[kind], z, a, rows, m),
    activationBackward(kind, z, a, d, rows, m) {
      // the identity's derivative changes nothing: no call (the mse loss's gradient asks every step)
      if (kind !== 'linear') E.activationBackward(CODES[kind], z, a, d, rows, m);
    },
    forwardPass(model, ws, rows, input) {
      checkRows(ws, rows);
      const plan = planFor(E, model, ws);
      if (input === ws.x) E.forwardNet(plan.handle, rows, f32);
      else E.forwardNet(plan.handle, rows, f32, input);
    },
    backwardPass(model, ws, rows) {
      checkRows(ws, rows);
      const plan = planFor(E, model, ws);
      E.backwardNet(plan.handle, rows, f32);
      // the gradient's Σ g², computed in the same call (the same value `sumOfSquares` gives)
      return plan.norm[1] === 1 ? plan.norm[0] : undefined;
    },
    // on a workspace's gradient, through its plan: by halves where the plan runs by halves
    // (elementwise rules: bitwise the flat call; the norm: the halves' partial sums in a
    // fixed order), else the flat call itself on the plan's pointers
    sumOfSquares(g) {
      const o = ownerOf(g, null);
      return o !== undefined && o.owned ? E.planSumOfSquares(o.handle) : E.sumOfSquares(g);
    },
    scale(g, s) {
      const o = ownerOf(g, null);
      if (o !== undefined) E.planUpdate(o.handle, 5, null, null, s, 0, 0, 0, 0);
      else E.scale(g, s);
    },
    sgd(p, g, lr) {
      const o = ownerOf(g, p);
      if (o !== undefined) E.planUpdate(o.handle, 0, null, null, lr, 0, 0, 0, 0);
      else E.sgd(p, g, lr);
    },
    momentum(p, g, v, lr, mu) {
      const o = ownerOf(g, p);
      if (o !== undefined) E.planUpdate(o.handle, 1, v, null, lr, mu, 0, 0, 0);
      else E.momentum(p, g, v, lr, mu);
    },
    adam(p, g, m, v, stepSize, beta1, beta2, c2, epsilon) {
      const o = ownerOf(g, p);
      if (o !== undefined) E.planUpdate(o.handle, 2, m, v, stepSize, beta1, beta2, c2, epsilon);
      else E.adam(p, g, m, v, stepSize, beta1, beta2, c2, epsilon);
    },
    rmsprop(p, g, v, lr, alpha, epsilon) {
      const o = ownerOf(g, p);
      if (o !== undefined) E.planUpdate(o.handle, 3, null, v, lr, alpha, epsilon, 0, 0);
      else E.rmsprop(p, g, v, lr, alpha, epsilon);
    },
    adagrad(p, g, s, lr, epsilon) {
      const o = ownerOf(g, p);
      if (o !== undefined) E.planUpdate(o.handle, 4, s, null, lr, epsilon, 0, 0, 0);
      else E.adagrad(p, g, s, lr, epsilon);
    },
  };
}

const instances: { f64?: Kernels; f32?: Kernels } = {};

/** The process's `native` (float64) or `native-f32` kernels; throws SG_ERR_CONFIG (with the reason) when the addon is unavailable. */
export function nativeKernels(precision: NativePrecision = 'f64'): Kernels {
  return (instances[precision] ??= kernelsOf(need(), precision));
}
