import { requireConfig } from './errors.ts';
import type { FeatureTimePrediction } from './feature-time-prediction.ts';
import { type Loss, lossValue } from './losses.ts';
import { RollingMean } from './rolling-mean.ts';
import type { Sample, TargetUnits, TracedSample } from './sample.ts';
import { userAbsError, userLoss } from './target-units.ts';

/**
 * Prequential (test-then-train) evaluation: every sample is scored on the prediction
 * the model made *before* learning from it, and the scores are averaged over a rolling
 * window. For classification losses it also tracks accuracy: argmax for softmax
 * outputs, 0.5 threshold for sigmoid outputs, exact sign for the perceptron.
 *
 * When the target is normalised (a sample carries `units`, see `normalize`), the loss
 * (for `mse`) and the MAE are scored in the target's own units: the prediction is mapped
 * back with the statistics that sample was standardised with and compared with the target
 * as it arrived. The training loss itself stays in z-units.
 */
export interface RollingMetrics {
  /** How many samples the window holds at most, and holds now. */
  readonly window: number;
  readonly count: number;
  /** Mean per-sample loss over the window. */
  readonly loss: number;
  /** Mean absolute error over the window (averaged over outputs). */
  readonly mae: number;
  /** Fraction of the window classified right; present for classification losses only. */
  readonly accuracy?: number;
}

/** The same metrics over the whole stream: every sample scored since the start (a resume goes on from the checkpoint's totals). */
export interface CumulativeMetrics {
  readonly count: number;
  readonly loss: number;
  readonly mae: number;
  readonly accuracy?: number;
}

/** Rolling test-then-train metrics (loss, MAE, accuracy for classifiers) over the last `window` samples, scored on predictions made before each update; its state is saved in run checkpoints. */
export class PrequentialEvaluator {
  private readonly loss: RollingMean;
  private readonly mae: RollingMean;
  private readonly accuracy: RollingMean | null;
  /** Whole-stream sums: samples, loss, absolute error, right answers. */
  private readonly totals = new Float64Array(4);
  private user: Float64Array = new Float64Array(0);
  /** One sample's loss (`lossValue` writes per-sample losses into an array). */
  private readonly one = new Float64Array(1);

  constructor(private readonly lossKind: Loss, window = 1000) {
    this.loss = new RollingMean(window);
    this.mae = new RollingMean(window);
    this.accuracy = lossKind === 'mse' ? null : new RollingMean(window);
  }

  /**
   * Scores `rows` predictions (rows × m) against their targets. `samples` (the batch's,
   * optional) lets a sample with a normalised target be scored in its own units.
   */
  score(outputs: Float64Array, targets: Float64Array, lossPerSample: Float64Array, rows: number, m: number, samples?: readonly Sample[]): void {
    for (let r = 0; r < rows; r++) {
      const o = r * m;
      const traced = samples === undefined ? undefined : (samples[r] as TracedSample);
      if (traced?.prediction !== undefined) {
        this.scoreEarlier(traced.prediction, traced.units, targets, o, m);
        continue;
      }
      const units = traced?.units;
      let loss: number, mae: number;
      if (units === undefined) {
        loss = lossPerSample[r];
        let abs = 0;
        for (let k = 0; k < m; k++) abs += Math.abs(outputs[o + k] - targets[o + k]);
        mae = abs / m;
      } else {
        const user = this.userRow(m);
        for (let k = 0; k < m; k++) user[k] = outputs[o + k] * units.scale[k] + units.mean[k];
        const inUnits = userLoss(this.lossKind, user, units.y, m);
        loss = Number.isNaN(inUnits) ? lossPerSample[r] : inUnits;
        mae = userAbsError(user, units.y, m);
      }
      this.record(loss, mae, this.accuracy !== null && isCorrect(this.lossKind, outputs, targets, o, m));
    }
  }

  /**
   * Delayed labels: scores the prediction made when the sample's features arrived
   * (`joinLabels`) against its target, instead of the one made now, with the same loss
   * function (from the stored pre-activations) and, for a normalised target, in the
   * target's units with the statistics of that moment.
   */
  private scoreEarlier(p: FeatureTimePrediction, units: TargetUnits | undefined, targets: Float64Array, o: number, m: number): void {
    const y = targets.subarray(o, o + m);
    let loss: number, mae: number;
    if (units !== undefined && p.user !== undefined) {
      const inUnits = userLoss(this.lossKind, p.user, units.y, m);
      if (Number.isNaN(inUnits)) {
        lossValue(this.lossKind, p.z, p.a, y, 1, m, this.one);
        loss = this.one[0];
      } else loss = inUnits;
      mae = userAbsError(p.user, units.y, m);
    } else {
      lossValue(this.lossKind, p.z, p.a, y, 1, m, this.one);
      loss = this.one[0];
      mae = userAbsError(p.a, y, m);
    }
    this.record(loss, mae, this.accuracy !== null && isCorrect(this.lossKind, p.a, y, 0, m));
  }

  /** One scored sample into the windows and the running totals (`hit` counts only for classifiers). */
  private record(loss: number, mae: number, hit: boolean): void {
    const totals = this.totals;
    this.loss.push(loss);
    this.mae.push(mae);
    totals[0]++;
    totals[1] += loss;
    totals[2] += mae;
    if (this.accuracy !== null) {
      this.accuracy.push(hit ? 1 : 0);
      totals[3] += hit ? 1 : 0;
    }
  }

  /** A row of m values to map a prediction back into (grown once, reused). */
  private userRow(m: number): Float64Array {
    if (this.user.length < m) this.user = new Float64Array(m);
    return this.user;
  }

  /** The metrics over every sample scored since the start (a new object). */
  cumulative(): CumulativeMetrics {
    const [count, loss, mae, correct] = this.totals;
    const mean = (sum: number) => (count === 0 ? NaN : sum / count);
    return this.accuracy === null ? { count, loss: mean(loss), mae: mean(mae) } : { count, loss: mean(loss), mae: mean(mae), accuracy: mean(correct) };
  }

  /** The rolling windows, bit for bit, by name (for checkpoints: a resumed run reports the same metrics). */
  state(): Record<string, Float64Array> {
    const out: Record<string, Float64Array> = { loss: this.loss.state(), mae: this.mae.state(), total: this.totals.slice() };
    if (this.accuracy !== null) out.accuracy = this.accuracy.state();
    return out;
  }

  /**
   * Puts back a `state()` of an evaluator with the same loss kind and window. A state
   * without `total` (written before whole-stream metrics existed) restarts those at zero.
   */
  restore(state: Readonly<Record<string, Float64Array | undefined>>): void {
    const total = state.total;
    if (total !== undefined && total.length !== this.totals.length) throw new RangeError(`metrics state: total holds ${total.length} values, expected ${this.totals.length}`);
    const parts: [string, RollingMean | null][] = [['loss', this.loss], ['mae', this.mae], ['accuracy', this.accuracy]];
    for (const [name, mean] of parts) {
      if ((mean === null) !== (state[name] === undefined)) throw new RangeError(`metrics state: ${name} is ${mean === null ? 'not tracked for this loss' : 'missing'}`);
    }
    for (const [name, mean] of parts) mean?.restore(state[name]!);
    if (total !== undefined) this.totals.set(total);
    else this.totals.fill(0);
  }

  get window(): number {
    return this.loss.window;
  }

  /** The metrics now, as a new plain object (one per step: keep it as long as you like). */
  snapshot(): RollingMetrics {
    const window = this.loss.window, count = this.loss.count, loss = this.loss.mean, mae = this.mae.mean;
    // one object per case (spreading a base object into a second one cost an extra object
    // per step), built by a constructor: an object literal's allocation site can be
    // pretenured for good (see CountersCopy in pipeline/train.ts)
    return this.accuracy === null ? new Metrics(window, count, loss, mae) : new MetricsWithAccuracy(window, count, loss, mae, this.accuracy.mean);
  }
}

// Fields are `declare`d and set in the constructor only: a class field of its own would
// first be defined as undefined and then assigned, twice the stores per step.

/** `RollingMetrics` of a regression loss (no `accuracy` field at all, as before). */
class Metrics implements RollingMetrics {
  declare readonly window: number;
  declare readonly count: number;
  declare readonly loss: number;
  declare readonly mae: number;
  constructor(window: number, count: number, loss: number, mae: number) {
    this.window = window;
    this.count = count;
    this.loss = loss;
    this.mae = mae;
  }
}

/** `RollingMetrics` of a classification loss: a regression's, and `accuracy`. */
class MetricsWithAccuracy extends Metrics {
  declare readonly accuracy: number;
  constructor(window: number, count: number, loss: number, mae: number, accuracy: number) {
    super(window, count, loss, mae);
    this.accuracy = accuracy;
  }
}

/**
 * Checks a `window` option when a stage is built (`prequential`, `train`), and returns
 * what gives each subscription its evaluator: for a number of samples a new evaluator,
 * so that each subscription keeps its own window; for an evaluator that one, shared, so
 * that its owner can checkpoint and restore it.
 */
export function evaluatorSource(loss: Loss, window: number | PrequentialEvaluator): () => PrequentialEvaluator {
  const size = typeof window === 'number' ? window : window.window;
  requireConfig(Number.isSafeInteger(size) && size >= 1, 'window', `must be an integer ≥ 1 (samples), got ${String(size)}`);
  return typeof window === 'number' ? () => new PrequentialEvaluator(loss, window) : () => window;
}

/** Whether row `o..o+m` of `a` gets its target `y` right (argmax, 0.5 threshold, or exact sign). */
export function isCorrect(loss: Loss, a: Float64Array, y: Float64Array, o: number, m: number): boolean {
  if (loss === 'cross_entropy') return argmax(a, o, m) === argmax(y, o, m);
  for (let k = 0; k < m; k++) {
    const hit = loss === 'perceptron' ? a[o + k] === y[o + k] : (a[o + k] > 0.5) === (y[o + k] > 0.5);
    if (!hit) return false;
  }
  return true;
}

/** Index of the largest of `v[o..o+m)` (the first one on ties). */
export function argmax(v: Float64Array, o: number, m: number): number {
  let best = 0;
  for (let k = 1; k < m; k++) if (v[o + k] > v[o + best]) best = k;
  return best;
}
