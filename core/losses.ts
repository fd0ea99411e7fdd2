import type { Activation } from './activations.ts';
import { requireConfig } from './errors.ts';

/**
 * Loss functions, exactly as test/fixtures/reference/FORMAT.md defines them. For a batch of
 * B samples with m outputs each:
 *
 * - `mse`:           mean over B·m of (a − y)²; any output activation but sign.
 * - `bce`:           mean over B·m of −(y log a + (1−y) log(1−a)), computed stably from the
 *                    logits z; needs a sigmoid output layer.
 * - `cross_entropy`: mean over B of −Σ_k y_k log softmax(z)_k; needs a softmax output layer.
 * - `perceptron`:    misclassified fraction; its "gradient" is the perceptron rule's
 *                    pseudo-gradient −(y − ŷ)·x; needs one sign layer.
 *
 * Every function here works on the output layer only and knows nothing of RxJS.
 */
export const LOSSES = ['mse', 'bce', 'cross_entropy', 'perceptron'] as const;
/** The name of a loss function (see `LOSSES`). */
export type Loss = (typeof LOSSES)[number];

/** Checks that a loss fits the network's layers; throws `SG_ERR_CONFIG` otherwise. */
export function checkLossFits(loss: Loss, activations: readonly Activation[]): void {
  requireConfig((LOSSES as readonly string[]).includes(loss), 'loss', `unknown loss ${JSON.stringify(loss)}; use ${LOSSES.join(', ')}`);
  const last = activations[activations.length - 1];
  if (loss === 'bce') requireConfig(last === 'sigmoid', 'loss', `bce needs a sigmoid output layer, the last layer is ${last}`);
  if (loss === 'cross_entropy') requireConfig(last === 'softmax', 'loss', `cross_entropy needs a softmax output layer, the last layer is ${last}`);
  if (loss === 'perceptron') {
    requireConfig(activations.length === 1 && last === 'sign', 'loss', 'the perceptron rule trains a single sign layer (e.g. --layers 2,1:sign)');
  } else {
    requireConfig(!activations.includes('sign'), 'loss', `sign layers have no gradient; train them with the perceptron loss, not ${loss}`);
  }
}


/**
 * Per-sample losses into `perSample[0..rows)` and their mean (the batch loss).
 * `z`, `a`: the output layer's pre-activations and activations; `y`: targets; all rows×m.
 */
export function lossValue(loss: Loss, z: Float64Array, a: Float64Array, y: Float64Array, rows: number, m: number, perSample: Float64Array): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * m;
    let s = 0;
    switch (loss) {
      case 'mse':
        for (let k = 0; k < m; k++) { const e = a[o + k] - y[o + k]; s += e * e; }
        s /= m;
        break;
      case 'bce':
        for (let k = 0; k < m; k++) {
          const v = z[o + k], t = y[o + k];
          // max(z,0) − z·y + log(1 + e^−|z|): never overflows, never takes log(0)
          s += Math.max(v, 0) - v * t + Math.log1p(Math.exp(-Math.abs(v)));
        }
        s /= m;
        break;
      case 'cross_entropy': {
        let max = -Infinity;
        for (let k = 0; k < m; k++) if (z[o + k] > max) max = z[o + k];
        let sum = 0;
        for (let k = 0; k < m; k++) sum += Math.exp(z[o + k] - max);
        const logSum = max + Math.log(sum);
        for (let k = 0; k < m; k++) { const t = y[o + k]; if (t !== 0) s -= t * (z[o + k] - logSum); }
        break;
      }
      case 'perceptron':
        for (let k = 0; k < m; k++) if (a[o + k] !== y[o + k]) s += 1;
        s /= m;
        break;
    }
    perSample[r] = s;
    total += s;
  }
  return total / rows;
}

/**
 * dL/dz of the output layer into `delta` (rows×m), for the batch loss as defined above.
 * For `mse` this goes through the output activation's derivative (`activationBackward`
 * is passed in so that the kernel backend does it); the other losses are fused with
 * their activation and give dL/dz directly.
 */
export function lossGradient(
  loss: Loss, activation: Activation, z: Float64Array, a: Float64Array, y: Float64Array,
  rows: number, m: number, delta: Float64Array,
  activationBackward: (kind: Activation, z: Float64Array, a: Float64Array, d: Float64Array, rows: number, m: number) => void,
): void {
  const len = rows * m;
  switch (loss) {
    case 'mse': {
      const c = 2 / len;
      for (let q = 0; q < len; q++) delta[q] = c * (a[q] - y[q]);
      activationBackward(activation, z, a, delta, rows, m);
      return;
    }
    case 'bce': {
      const c = 1 / len;
      for (let q = 0; q < len; q++) delta[q] = c * (a[q] - y[q]);
      return;
    }
    case 'cross_entropy':
      for (let r = 0; r < rows; r++) {
        const o = r * m;
        let sumY = 0;
        for (let k = 0; k < m; k++) sumY += y[o + k];
        for (let k = 0; k < m; k++) delta[o + k] = (a[o + k] * sumY - y[o + k]) / rows;
      }
      return;
    case 'perceptron': {
      // pseudo-gradient of the perceptron rule: w ← w + lr·(y − ŷ)·x reads w ← w − lr·g
      for (let q = 0; q < len; q++) delta[q] = -(y[q] - a[q]) / rows;
      return;
    }
  }
}
