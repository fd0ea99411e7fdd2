import { requireConfig } from './errors.ts';
import type { Loss } from './losses.ts';
import { RollingMean } from './rolling-mean.ts';

/**
 * Prequential (test-then-train) evaluation: every sample is scored on the prediction
 * the model made *before* learning from it, and the scores are averaged over a rolling
 * window. For classification losses it also tracks accuracy: argmax for softmax
 * outputs, 0.5 threshold for sigmoid outputs, exact sign for the perceptron.
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

/** Rolling test-then-train metrics (loss, MAE, accuracy for classifiers) over the last `window` samples, scored on predictions made before each update; its state is saved in run checkpoints. */
export class PrequentialEvaluator {
  private readonly loss: RollingMean;
  private readonly mae: RollingMean;
  private readonly accuracy: RollingMean | null;

  constructor(private readonly lossKind: Loss, window = 1000) {
    this.loss = new RollingMean(window);
    this.mae = new RollingMean(window);
    this.accuracy = lossKind === 'mse' ? null : new RollingMean(window);
  }

  /** Scores `rows` predictions (rows × m) against their targets. */
  score(outputs: Float64Array, targets: Float64Array, lossPerSample: Float64Array, rows: number, m: number): void {
    for (let r = 0; r < rows; r++) {
      const o = r * m;
      this.loss.push(lossPerSample[r]);
      let abs = 0;
      for (let k = 0; k < m; k++) abs += Math.abs(outputs[o + k] - targets[o + k]);
      this.mae.push(abs / m);
      if (this.accuracy !== null) this.accuracy.push(isCorrect(this.lossKind, outputs, targets, o, m) ? 1 : 0);
    }
  }

  /** The rolling windows, bit for bit, by name (for checkpoints: a resumed run reports the same metrics). */
  state(): Record<string, Float64Array> {
    const out: Record<string, Float64Array> = { loss: this.loss.state(), mae: this.mae.state() };
    if (this.accuracy !== null) out.accuracy = this.accuracy.state();
    return out;
  }

  /** Puts back a `state()` of an evaluator with the same loss kind and window. */
  restore(state: Readonly<Record<string, Float64Array | undefined>>): void {
    const parts: [string, RollingMean | null][] = [['loss', this.loss], ['mae', this.mae], ['accuracy', this.accuracy]];
    for (const [name, mean] of parts) {
      if ((mean === null) !== (state[name] === undefined)) throw new RangeError(`metrics state: ${name} is ${mean === null ? 'not tracked for this loss' : 'missing'}`);
    }
    for (const [name, mean] of parts) mean?.restore(state[name]!);
  }

  get window(): number {
    return this.loss.window;
  }

  /** The metrics now, as a new plain object (one per step: keep it as long as you like). */
  snapshot(): RollingMetrics {
    const window = this.loss.window, count = this.loss.count, loss = this.loss.mean, mae = this.mae.mean;
    // one literal per case: spreading a base object into a second one cost an extra object per step
    return this.accuracy === null ? { window, count, loss, mae } : { window, count, loss, mae, accuracy: this.accuracy.mean };
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

export function isCorrect(loss: Loss, a: Float64Array, y: Float64Array, o: number, m: number): boolean {
  if (loss === 'cross_entropy') return argmax(a, o, m) === argmax(y, o, m);
  for (let k = 0; k < m; k++) {
    const hit = loss === 'perceptron' ? a[o + k] === y[o + k] : (a[o + k] > 0.5) === (y[o + k] > 0.5);
    if (!hit) return false;
  }
  return true;
}

function argmax(v: Float64Array, o: number, m: number): number {
  let best = 0;
  for (let k = 1; k < m; k++) if (v[o + k] > v[o + best]) best = k;
  return best;
}
