import type { Loss } from './losses.ts';
import type { TargetUnits } from './sample.ts';

/**
 * Predictions and errors in the target's own units, for a model that learns a
 * standardised target (`Normalizer` with `target: true`). The training loss stays in
 * z-units (that is what the gradient needs); what people read (metrics, per-sample
 * predictions) is mapped back per sample, with the mean and scale that sample was
 * standardised with (`TargetUnits`), and scored against the target as it arrived — not
 * rescaled afterwards by a spread that has drifted since, and not against a z-score
 * that may have been clipped.
 *
 * @example
 * const user = new Float64Array(m);
 * toUserUnits(step.outputs, r * m, m, units, user);  // the prediction in ppm, °C, …
 * const error = userLoss('mse', user, units.y, m);    // its squared error in those units²
 */

/** Writes row `offset..offset+m` of `outputs`, mapped back with `units`, into `out[0..m)`. */
export function toUserUnits(outputs: ArrayLike<number>, offset: number, m: number, units: TargetUnits, out: Float64Array): Float64Array {
  for (let k = 0; k < m; k++) out[k] = outputs[offset + k] * units.scale[k] + units.mean[k];
  return out;
}

/**
 * One sample's loss in user units, where the loss has units: `mse` is the mean squared
 * error of `prediction` against `target`. Other losses (classification) have no units
 * and no normalised target; they get NaN here and keep their own per-sample loss.
 */
export function userLoss(loss: Loss, prediction: ArrayLike<number>, target: ArrayLike<number>, m: number): number {
  if (loss !== 'mse') return NaN;
  let s = 0;
  for (let k = 0; k < m; k++) { const e = prediction[k] - target[k]; s += e * e; }
  return s / m;
}

/** Mean absolute error of one sample in user units. */
export function userAbsError(prediction: ArrayLike<number>, target: ArrayLike<number>, m: number): number {
  let s = 0;
  for (let k = 0; k < m; k++) s += Math.abs(prediction[k] - target[k]);
  return s / m;
}
