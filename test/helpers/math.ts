/**
 * Shared helpers for the math test suite (gradcheck, lecture, optimizers, init,
 * model-file, kernels): seeded random draws, naive reference implementations written
 * for clarity rather than speed, a logistic-regression reference fit (Newton / IRLS),
 * a synchronous driver for `train()`, and parameter hashing.
 *
 * Everything here is float64 and deterministic; nothing here imports the kernels it
 * is used to check, so a bug in `pipeline/` cannot hide in its own reference.
 */
import { createHash } from 'node:crypto';
import { from } from 'rxjs';
import { expect } from 'vitest';
import type { Activation } from '../../core/activations.ts';
import { StreamgradError, type ErrorCode } from '../../core/errors.ts';
import { initialize, type InitScheme } from '../../core/init.ts';
import { createModel, type LayerSpec, type Model } from '../../core/model.ts';
import { Rng } from '../../core/rng.ts';
import type { Sample } from '../../core/sample.ts';
import { train, type StepResult, type TrainOptions } from '../../pipeline/train.ts';
import type { Trainer } from '../../core/trainer.ts';

// ---------------------------------------------------------------------------
// random draws

/** A uniform integer in [lo, hi] (both ends included). */
export function randInt(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng.next() * (hi - lo + 1));
}

/** `len` uniform values in [lo, hi). */
export function randArray(rng: Rng, len: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(len);
  for (let q = 0; q < len; q++) a[q] = rng.uniform(lo, hi);
  return a;
}

/** One element of `items`, uniformly. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng.next() * items.length)];
}

/** A model of the given shape with `scheme` weights drawn from `seed`. */
export function buildModel(inputSize: number, layers: readonly LayerSpec[], seed: number, scheme: InitScheme = 'pytorch'): Model {
  return initialize(createModel({ inputSize, layers }), scheme, seed);
}

/** SHA-256 of the parameter vector's bytes (RELIABILITY "W"). */
export function paramsHash(params: Float64Array): string {
  return createHash('sha256').update(new Uint8Array(params.buffer, params.byteOffset, params.byteLength)).digest('hex');
}

// ---------------------------------------------------------------------------
// comparisons

/** Largest |a_i − b_i| / max(|b_i|, floor) over the arrays (the floor keeps near-zero entries sane). */
export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const err = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    if (!(err <= worst)) worst = err; // NaN wins
  }
  return worst;
}

/** Asserts equal length and every element within `rel` of the reference (relative, floored at 1 by default). */
export function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, what: string, floor = 1): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const err = maxRelError(actual, expected, floor);
  expect(err, `${what}: worst relative error ${err.toExponential(3)} > ${rel}\n actual:   ${Array.from(actual).slice(0, 6).join(', ')}\n expected: ${Array.from(expected).slice(0, 6).join(', ')}`).toBeLessThanOrEqual(rel);
}

/** Runs `fn`, expects it to throw a `StreamgradError` with `code`, and returns that error. */
export function expectStreamgradError(fn: () => unknown, code: ErrorCode): StreamgradError {
  let caught: unknown = undefined;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a StreamgradError to be thrown').toBeInstanceOf(StreamgradError);
  const error = caught as StreamgradError;
  expect(error.code, error.message).toBe(code);
  expect(typeof error.field, `error without a field: ${error.message}`).toBe('string');
  expect(error.field!.length).toBeGreaterThan(0);
  return error;
}

// ---------------------------------------------------------------------------
// naive reference implementations (row-major, the layouts of core/kernels.ts)

/** z[r][j] = b[j] + Σ_k x[r][k]·W[j][k]. */
export function naiveDenseForward(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number>, rows: number, n: number, m: number): Float64Array {
  const z = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < m; j++) {
      let s = b[j];
      for (let k = 0; k < n; k++) s += x[r * n + k] * W[j * n + k];
      z[r * m + j] = s;
    }
  }
  return z;
}

/** gW[j][k] = Σ_r d[r][j]·x[r][k], gb[j] = Σ_r d[r][j], dx[r][k] = Σ_j d[r][j]·W[j][k]. */
export function naiveDenseBackward(x: ArrayLike<number>, d: ArrayLike<number>, W: ArrayLike<number>, rows: number, n: number, m: number) {
  const gW = new Float64Array(m * n), gb = new Float64Array(m), dx = new Float64Array(rows * n);
  for (let j = 0; j < m; j++) {
    for (let r = 0; r < rows; r++) {
      gb[j] += d[r * m + j];
      for (let k = 0; k < n; k++) gW[j * n + k] += d[r * m + j] * x[r * n + k];
    }
  }
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += d[r * m + j] * W[j * n + k];
      dx[r * n + k] = s;
    }
  }
  return { gW, gb, dx };
}

/** f(z), straight from the definitions in FORMAT.md (softmax through the max shift). */
export function naiveActivate(kind: Activation, z: ArrayLike<number>, rows: number, m: number): Float64Array {
  const a = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) {
    const o = r * m;
    if (kind === 'softmax') {
      let max = -Infinity;
      for (let k = 0; k < m; k++) max = Math.max(max, z[o + k]);
      let sum = 0;
      for (let k = 0; k < m; k++) sum += Math.exp(z[o + k] - max);
      for (let k = 0; k < m; k++) a[o + k] = Math.exp(z[o + k] - max) / sum;
      continue;
    }
    for (let k = 0; k < m; k++) {
      const v = z[o + k];
      switch (kind) {
        case 'linear': a[o + k] = v; break;
        case 'sigmoid': a[o + k] = 1 / (1 + Math.exp(-v)); break;
        case 'tanh': a[o + k] = Math.tanh(v); break;
        case 'relu': a[o + k] = v > 0 ? v : 0; break;
        case 'leaky_relu': a[o + k] = v > 0 ? v : 0.01 * v; break;
        case 'sign': a[o + k] = v > 0 ? 1 : v < 0 ? -1 : 0; break;
      }
    }
  }
  return a;
}

/**
 * Jᵀ·d per row, with the Jacobian J = ∂a/∂z written out in full (softmax: J_ik = a_i(δ_ik − a_k);
 * elementwise activations: diagonal f'(z), with relu' = 0 and leaky_relu' = 0.01 at z = 0).
 */
export function naiveActivationBackward(kind: Activation, z: ArrayLike<number>, d: ArrayLike<number>, rows: number, m: number): Float64Array {
  const a = naiveActivate(kind, z, rows, m);
  const out = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) {
    const o = r * m;
    for (let k = 0; k < m; k++) {
      let s = 0;
      for (let i = 0; i < m; i++) {
        let J = 0; // ∂a_i/∂z_k
        if (kind === 'softmax') J = a[o + i] * ((i === k ? 1 : 0) - a[o + k]);
        else if (i === k) {
          const v = z[o + k], f = a[o + k];
          switch (kind) {
            case 'linear': J = 1; break;
            case 'sigmoid': J = f * (1 - f); break;
            case 'tanh': J = 1 - f * f; break;
            case 'relu': J = v > 0 ? 1 : 0; break;
            case 'leaky_relu': J = v > 0 ? 1 : 0.01; break;
            case 'sign': J = 0; break;
          }
        }
        s += J * d[o + i];
      }
      out[o + k] = s;
    }
  }
  return out;
}

/** y = f_d(W_d … f_1(W_1 x + b_1) … + b_d) for one input, by the naive kernels above. */
export function naivePredict(model: Model, x: ArrayLike<number>): Float64Array {
  let a: Float64Array = Float64Array.from(x);
  for (const layer of model.layers) {
    const z = naiveDenseForward(a, layer.weights, layer.bias, 1, layer.inputs, layer.outputs);
    a = naiveActivate(layer.activation, z, 1, layer.outputs);
  }
  return a;
}

// ---------------------------------------------------------------------------
// logistic regression by Newton's method (IRLS), the reference for a sigmoid unit + bce

/**
 * Maximum-likelihood logistic regression P(y=1|x) = σ(w·x + b), fitted by Newton / IRLS
 * in float64 until the step is below 1e-13. Returns [w_1 … w_n, b].
 */
export function logisticIRLS(xs: readonly (readonly number[])[], ys: readonly number[], maxIter = 100): Float64Array {
  const n = xs[0].length, p = n + 1;
  const beta = new Float64Array(p);
  for (let iter = 0; iter < maxIter; iter++) {
    const grad = new Float64Array(p);
    const H = Array.from({ length: p }, () => new Float64Array(p));
    for (let s = 0; s < xs.length; s++) {
      const row = [...xs[s], 1];
      let z = 0;
      for (let k = 0; k < p; k++) z += beta[k] * row[k];
      const mu = 1 / (1 + Math.exp(-z));
      const wgt = mu * (1 - mu);
      for (let i = 0; i < p; i++) {
        grad[i] += (ys[s] - mu) * row[i];
        for (let j = 0; j < p; j++) H[i][j] += wgt * row[i] * row[j];
      }
    }
    const delta = solve(H, grad); // H·δ = ∇ log-likelihood
    let size = 0;
    for (let k = 0; k < p; k++) { beta[k] += delta[k]; size = Math.max(size, Math.abs(delta[k])); }
    if (size < 1e-13) return beta;
  }
  return beta;
}

/** Gaussian elimination with partial pivoting (A is copied). */
export function solve(A: readonly Float64Array[], b: Float64Array): Float64Array {
  const p = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < p; c++) {
    let piv = c;
    for (let r = c + 1; r < p; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    [M[c], M[piv]] = [M[piv], M[c]];
    for (let r = c + 1; r < p; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= p; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Float64Array(p);
  for (let r = p - 1; r >= 0; r--) {
    let s = M[r][p];
    for (let k = r + 1; k < p; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
}

// ---------------------------------------------------------------------------
// driving train()

/**
 * Feeds `samples` through `train(trainer, options)` (a synchronous source, so this
 * returns after the last step) and returns every step result. `onStep` runs inside
 * the stream, after each update, e.g. to change the learning rate for the next one.
 */
export function runTrain(trainer: Trainer, samples: Iterable<unknown>, options: TrainOptions = {}, onStep?: (r: StepResult) => void): StepResult[] {
  const results: StepResult[] = [];
  let failure: unknown = null;
  let done = false;
  from(samples).pipe(train(trainer, options)).subscribe({
    next(r) { results.push(r); onStep?.(r); },
    error(e) { failure = e; },
    complete() { done = true; },
  });
  if (failure !== null) throw failure;
  expect(done, 'train() over a synchronous source completes synchronously').toBe(true);
  return results;
}

/** `passes` passes over `samples`, in order, as one stream. */
export function* cycle<T>(samples: readonly T[], passes: number): Generator<T> {
  for (let p = 0; p < passes; p++) yield* samples;
}

/** Network outputs for each input (one fresh array each), by the naive reference. */
export function predictAll(model: Model, inputs: readonly ArrayLike<number>[]): Float64Array[] {
  return inputs.map((x) => naivePredict(model, x));
}

/** A sample with a fresh array y (helps the typing of literal data sets). */
export function sample(x: readonly number[], y: readonly number[] | number): Sample {
  return { x, y };
}
