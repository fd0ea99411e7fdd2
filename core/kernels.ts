import type { Activation } from './activations.ts';
import type { Model, Workspace } from './shapes.ts';

export type { Allocator } from './shapes.ts';

/**
 * The numeric kernels the engine is built on: the whole of its float64 inner loops.
 *
 * Everything above this interface (layers, losses, optimizers, operators) only calls
 * these functions, so a faster backend (WebAssembly SIMD, `kernels-wasm.ts`) can replace
 * the plain JavaScript one (`kernels-js.ts`) without touching the rest; `backend.ts` picks
 * one. Matrices are row-major `Float64Array`s; `rows` is the batch size, which may be
 * smaller than the arrays' capacity. Kernels never allocate on the hot path.
 */
export interface Kernels {
  /** `js`, `wasm` or `wasm-f32`. */
  readonly name: string;

  /**
   * A zeroed array of `length` float64 where this backend computes fastest: the JavaScript
   * heap for `js`, the WebAssembly memory for `wasm` (whose kernels then read and write it
   * in place, with no copies). Models, workspaces and optimizer state take their arrays
   * from here (`createModel(topology, kernels)`, `createTrainer({ kernels })`). Every
   * backend accepts any `Float64Array`; arrays from elsewhere only cost copies.
   */
  allocate(length: number): Float64Array;

  /** z[rows×m] = x[rows×n] · Wᵀ + b, with W of size m×n (row j = neuron j's weights). */
  denseForward(x: Float64Array, W: Float64Array, b: Float64Array, z: Float64Array, rows: number, n: number, m: number): void;

  /**
   * Backward through a dense layer, given delta = dL/dz [rows×m]:
   * gW[m×n] += deltaᵀ · x, gb[m] += Σ_rows delta, and, when `dx` is given, dx[rows×n] = delta · W.
   */
  denseBackward(
    x: Float64Array, delta: Float64Array, W: Float64Array,
    gW: Float64Array, gb: Float64Array, dx: Float64Array | null,
    rows: number, n: number, m: number,
  ): void;

  /** a = f(z) for `rows` rows of `m` values (softmax normalises each row). */
  activate(kind: Activation, z: Float64Array, a: Float64Array, rows: number, m: number): void;

  /** delta ← delta ⊙ f'(z) in place (for softmax: delta ← J_softmaxᵀ · delta per row). */
  activationBackward(kind: Activation, z: Float64Array, a: Float64Array, delta: Float64Array, rows: number, m: number): void;

  /**
   * Optional fused passes: the whole of `network.ts`'s `forwardPass` (every layer's z and
   * a, bias and activation fused into the product) and `backwardPass` (zeroed gradient,
   * then every layer's gW, gb and delta) in one call each, with the same results as the
   * layer-by-layer calls. A backend that leaves them out gets the per-layer calls.
   * `backwardPass` may also return Σ g² over `ws.grads`, the very value `sumOfSquares(ws.grads)`
   * would give next, computed in the same call (native: one call into the addon fewer a
   * step); anything else (nothing, as `wasm`'s) and the norm is `sumOfSquares`'s.
   */
  forwardPass?(model: Model, ws: Workspace, rows: number, input: Float64Array): void;
  backwardPass?(model: Model, ws: Workspace, rows: number): number | undefined | void;

  /** Σ g². */
  sumOfSquares(g: Float64Array): number;
  /** g ← s·g. */
  scale(g: Float64Array, s: number): void;

  /** p ← p − lr·g. */
  sgd(p: Float64Array, g: Float64Array, lr: number): void;
  /** v ← μ·v + g; p ← p − lr·v (PyTorch SGD with momentum, no dampening, no Nesterov). */
  momentum(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, mu: number): void;
  /**
   * m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
   * p ← p − stepSize · m / (√v / c2 + ε), with stepSize = lr / (1 − β1^t), c2 = √(1 − β2^t).
   */
  adam(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array,
    stepSize: number, beta1: number, beta2: number, c2: number, epsilon: number): void;
  /** v ← α·v + (1−α)·g²; p ← p − lr·g / (√v + ε) (PyTorch RMSprop, centered off). */
  rmsprop(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, alpha: number, epsilon: number): void;
  /** s ← s + g²; p ← p − lr·g / (√s + ε) (PyTorch Adagrad, no decay). */
  adagrad(p: Float64Array, g: Float64Array, s: Float64Array, lr: number, epsilon: number): void;
}

