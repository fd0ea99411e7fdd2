import { Normalizer } from '../core/normalizer.ts';
import type { Trainer } from '../core/trainer.ts';
import { batchViews } from '../core/workspace.ts';
import type { Preprocessing } from '../pipeline/model-artifact.ts';
import type { PredictionsMessage } from './protocol.ts';

/**
 * How a model's outputs (and the targets it learned from) map back to the user's units
 * when its target was standardised: `y = z · scale + mean`, per output.
 */
export interface TargetScale {
  readonly mean: Float64Array;
  readonly scale: Float64Array;
}

/**
 * The target scale of a run's preprocessing (its frozen normaliser: the statistics a
 * prediction from the run's weights is mapped back with, as `POST /predict` does), or
 * null when the model learns raw targets.
 *
 * @example
 * const units = targetScaleOf(run.preprocessing(), run.trainer.model.inputSize, run.trainer.model.outputSize);
 */
export function targetScaleOf(preprocessing: Preprocessing | null, inputSize: number, outputSize: number): TargetScale | null {
  const s = preprocessing?.normalizer ?? null;
  if (s === null || s.y === null) return null;
  // the normaliser's own mapping (warm-up, zero variance and all), read at z = 0 and z = 1
  const normalizer = new Normalizer({ inputs: inputSize, outputs: outputSize, target: true, warmup: s.warmup, clip: s.clip });
  normalizer.restore({ version: 1, x: s.x, y: s.y });
  const mean = normalizer.denormalizeOutput(new Float64Array(outputSize));
  const one = normalizer.denormalizeOutput(new Float64Array(outputSize).fill(1));
  return { mean, scale: one.map((v, k) => v - mean[k]) };
}

/** Inputs go into `predictions` messages only for models with at most this many. */
export const MAX_PREDICTION_INPUTS = 16;

/**
 * The last `capacity` samples a run trained on: inputs (for small input sizes), the
 * model's outputs before it learned from them (prequential) and their targets. A fixed
 * set of Float64Array rings, written on every step and read at the clients' rate.
 */
export class PredictionRing {
  private readonly inputs: Float64Array;
  private readonly outputs: Float64Array;
  private readonly targets: Float64Array;
  private readonly keepInputs: boolean;
  /** Rows written so far (the ring holds the last min(written, capacity)). */
  private written = 0;

  constructor(readonly inputSize: number, readonly outputSize: number, readonly capacity = 128) {
    this.keepInputs = inputSize <= MAX_PREDICTION_INPUTS;
    this.inputs = new Float64Array(this.keepInputs ? capacity * inputSize : 0);
    this.outputs = new Float64Array(capacity * outputSize);
    this.targets = new Float64Array(capacity * outputSize);
  }

  get size(): number {
    return Math.min(this.written, this.capacity);
  }

  /** Rows recorded since the ring was made or cleared (it holds the last `capacity`). */
  get recorded(): number {
    return this.written;
  }

  /** Records the step `trainer` just took on `size` rows: its inputs, outputs before the update, and targets. */
  recordStep(trainer: Pick<Trainer, 'model' | 'workspace'>, size: number): void {
    const { model, workspace } = trainer;
    if (size <= 0 || size > workspace.capacity) return;
    const views = batchViews(workspace, model, size);
    this.record(views.inputs, views.activations[views.activations.length - 1], views.targets, views.rows);
  }

  /**
   * Records the last rows of a batch (`rows` of them; only the last `capacity` matter). Rows
   * holding a non-finite value are left out.
   */
  record(x: Float64Array, outputs: Float64Array, targets: Float64Array, rows: number): void {
    const n = this.inputSize, m = this.outputSize;
    for (let r = Math.max(0, rows - this.capacity); r < rows; r++) {
      if (!finiteRow(outputs, r * m, m) || !finiteRow(targets, r * m, m) || !finiteRow(x, r * n, n)) continue;
      const slot = this.written % this.capacity;
      this.outputs.set(outputs.subarray(r * m, r * m + m), slot * m);
      this.targets.set(targets.subarray(r * m, r * m + m), slot * m);
      if (this.keepInputs) this.inputs.set(x.subarray(r * n, r * n + n), slot * n);
      this.written++;
    }
  }

  /**
   * The message for the current content, oldest row first (null while empty). Values keep
   * 7 significant digits. With `units` (a model that learns a standardised target), the
   * outputs and targets are mapped back to the user's units with it, and the message
   * carries it (the page maps outputs it computes itself the same way).
   */
  message(run: string, step: number, samples: number, units: TargetScale | null = null): PredictionsMessage | null {
    const rows = this.size;
    if (rows === 0) return null;
    const first = this.written - rows;
    const n = this.inputSize, m = this.outputSize;
    const outputs: number[] = [], targets: number[] = [], inputs: number[] = [];
    for (let i = 0; i < rows; i++) {
      const slot = (first + i) % this.capacity;
      for (let k = 0; k < m; k++) {
        const scale = units === null ? 1 : units.scale[k], mean = units === null ? 0 : units.mean[k];
        outputs.push(round(this.outputs[slot * m + k] * scale + mean));
        targets.push(round(this.targets[slot * m + k] * scale + mean));
      }
      if (this.keepInputs) for (let k = 0; k < n; k++) inputs.push(round(this.inputs[slot * n + k]));
    }
    return {
      type: 'predictions', run, step, samples, rows, outputSize: m, outputs, targets,
      ...(units !== null && { units: { mean: Array.from(units.mean, round), scale: Array.from(units.scale, round) } }),
      ...(this.keepInputs && { inputs }),
    };
  }

  clear(): void {
    this.written = 0;
  }

  /** A copy of the content, to rebuild the ring elsewhere (another thread) with `load`. */
  state(): PredictionRingState {
    return { written: this.written, inputs: this.inputs.slice(), outputs: this.outputs.slice(), targets: this.targets.slice() };
  }

  /** Takes the content of a ring of the same sizes (from `state`). */
  load(state: PredictionRingState): void {
    if (state.outputs.length !== this.outputs.length || state.inputs.length !== this.inputs.length) throw new RangeError('PredictionRing.load: the sizes differ');
    this.inputs.set(state.inputs);
    this.outputs.set(state.outputs);
    this.targets.set(state.targets);
    this.written = state.written;
  }
}

/** What `PredictionRing.state` copies out (structured-clonable). */
export interface PredictionRingState {
  readonly written: number;
  readonly inputs: Float64Array;
  readonly outputs: Float64Array;
  readonly targets: Float64Array;
}

const round = (v: number) => Number(v.toPrecision(7));

function finiteRow(a: Float64Array, at: number, length: number): boolean {
  for (let k = 0; k < length; k++) if (!Number.isFinite(a[at + k])) return false;
  return true;
}
