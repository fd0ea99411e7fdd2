/**
 * Recursive least squares with a forgetting factor: the exact solution of an exponentially
 * weighted ridge regression, updated in O(d²) per sample. A linear model `y ≈ W·x` with `d`
 * features and any number of outputs shares one inverse covariance `P` (d × d): every output
 * sees the same features, so one gain serves them all.
 *
 * Why it is here: SGD relearns a linear layer in thousands of samples, RLS in tens (it is a
 * second-order method: each sample is weighted by how little of its direction was seen
 * before). The `refit-head` drift reaction re-solves a network's linear output layer on the
 * newest samples with it.
 *
 * Started with `P = prior · I` around weights `W₀`, after n samples `W` minimises
 * Σ λ^(n−i) ‖y_i − W·x_i‖² + λⁿ/prior · ‖W − W₀‖²: `prior` says how far the first samples may
 * move the weights (large: almost freely), λ how fast old samples are forgotten (memory
 * about 1 / (1 − λ) samples).
 */
export interface RlsState {
  /** Features per sample (a bias feature included, if any). */
  readonly features: number;
  /** Outputs per sample. */
  readonly outputs: number;
  /** d × d, row-major: the inverse of the weighted feature covariance (symmetric). */
  readonly p: Float64Array;
  /** outputs × d, row-major: the current solution. */
  readonly weights: Float64Array;
  /** Scratch for P·x, d values (kept so that an update allocates nothing). */
  readonly px: Float64Array;
}

/**
 * A fresh solver around `weights` (copied; outputs × features, row-major), `P = prior · I`.
 *
 * @example
 * const rls = createRls(2, 1, Float64Array.of(0, 0), 100);
 * rlsUpdate(rls, Float64Array.of(1, 1), Float64Array.of(3), 1); // rls.weights ≈ [1.5, 1.5]
 */
export function createRls(features: number, outputs: number, weights: Float64Array, prior: number): RlsState {
  const p = new Float64Array(features * features);
  for (let i = 0; i < features; i++) p[i * features + i] = prior;
  return { features, outputs, p, weights: Float64Array.from(weights), px: new Float64Array(features) };
}

/**
 * One sample: moves `state.weights` towards fitting `target` from `x` (both read at
 * `xOffset` / `yOffset`), then updates `P` with forgetting factor `lambda` ∈ (0, 1].
 * Returns false, changing nothing, when the update is not finite or would make `P`
 * indefinite (a gain denominator ≤ 0: rounding after long forgetting of unexcited
 * directions), so that a bad sample can never poison the solver.
 *
 * @example
 * const rls = createRls(1, 1, Float64Array.of(0), 1000);
 * for (let i = 0; i < 20; i++) rlsUpdate(rls, Float64Array.of(1), Float64Array.of(2), 0.99); // rls.weights[0] ≈ 2
 */
export function rlsUpdate(state: RlsState, x: Float64Array, target: Float64Array, lambda: number, xOffset = 0, yOffset = 0): boolean {
  const { features: d, outputs: m, p, weights: w, px } = state;
  // P·x and xᵀ·P·x
  let xpx = 0;
  for (let i = 0; i < d; i++) {
    let s = 0;
    const row = i * d;
    for (let j = 0; j < d; j++) s += p[row + j] * x[xOffset + j];
    px[i] = s;
    xpx += x[xOffset + i] * s;
  }
  const denominator = lambda + xpx;
  if (!(denominator > 0) || !Number.isFinite(denominator)) return false;
  for (let o = 0; o < m; o++) {
    let prediction = 0;
    const row = o * d;
    for (let j = 0; j < d; j++) prediction += w[row + j] * x[xOffset + j];
    if (!Number.isFinite(target[yOffset + o] - prediction)) return false;
  }
  for (let o = 0; o < m; o++) {
    let prediction = 0;
    const row = o * d;
    for (let j = 0; j < d; j++) prediction += w[row + j] * x[xOffset + j];
    const step = (target[yOffset + o] - prediction) / denominator;
    // gain k = P·x / (λ + xᵀPx)
    for (let j = 0; j < d; j++) w[row + j] += px[j] * step;
  }
  // P ← (P − k·(Px)ᵀ) / λ, kept exactly symmetric
  const inv = 1 / lambda;
  for (let i = 0; i < d; i++) {
    const ki = px[i] / denominator;
    for (let j = i; j < d; j++) {
      const v = (p[i * d + j] - ki * px[j]) * inv;
      p[i * d + j] = v;
      p[j * d + i] = v;
    }
  }
  return true;
}
