import type { StepResult } from '../pipeline/train.ts';
import type { ScalarsMessage } from './protocol.ts';

/** The columns a run's scalar history keeps per point, in this order (see `ScalarsMessage`). */
export const SCALAR_COLUMNS = ['step', 'time', 'loss', 'batchLoss', 'mae', 'accuracy', 'gradNorm', 'learningRate'] as const;
/** One of `SCALAR_COLUMNS`. */
export type ScalarColumn = (typeof SCALAR_COLUMNS)[number];
const WIDTH = SCALAR_COLUMNS.length;

/** Points a run's scalar history keeps (a whole run at an even spacing; ≈ 8 numbers each). */
export const SCALAR_HISTORY_POINTS = 1024;

/**
 * Points recorded on one thread for a history on another (`RunPublisher` → `RunMirror`):
 * row-major, `WIDTH` numbers per point, `count` points.
 */
export interface ScalarBatch {
  readonly count: number;
  readonly values: Float64Array;
}

/** A step's scalars as one row of `SCALAR_COLUMNS` (time: ms since the epoch; non-finite values stay NaN). */
export function scalarRow(result: StepResult, time: number, out: Float64Array = new Float64Array(WIDTH), offset = 0): Float64Array {
  const m = result.metrics;
  out[offset] = result.counters.steps;
  out[offset + 1] = time;
  out[offset + 2] = m.loss;
  out[offset + 3] = result.loss;
  out[offset + 4] = m.mae;
  out[offset + 5] = m.accuracy ?? Number.NaN;
  out[offset + 6] = result.gradNorm;
  out[offset + 7] = result.learningRate;
  return out;
}

/**
 * A run's scalar history — rolling loss, batch loss, MAE, accuracy, gradient norm and
 * learning rate by step and time — for dashboards that open late, reload, or open after
 * the run ended, to draw the whole curve at once (`scalars` message, PROTOCOL.md).
 *
 * Every step is kept while the run is short; once `capacity` points are held, every point
 * whose step is not a multiple of twice the stride is dropped (the first point stays) and
 * the stride doubles: the history keeps the steps that are multiples of `stride`, so it
 * spans the whole run at an even spacing in fixed memory (`capacity × 8` float64s), however
 * long the run goes. The newest step is always kept besides (the "tip"), so the curve ends
 * where the run is. Because the rule depends on the step alone, another thread can filter
 * with the same stride before it sends (`accepts`).
 *
 * @example
 * const history = new ScalarHistory();
 * run.results.subscribe((result) => history.record(scalarRow(result, Date.now())));
 * connection.send(history.encoded(run.id));
 */
export class ScalarHistory {
  private readonly rows: Float64Array;
  private count = 0;
  private readonly tip = new Float64Array(WIDTH);
  private hasTip = false;
  private strideValue = 1;
  /** Bumped on every change (the encoded message is cached per version). */
  private version = 0;
  private cached: { readonly version: number; readonly run: string; readonly data: Buffer } | null = null;

  constructor(readonly capacity = SCALAR_HISTORY_POINTS) {
    if (!Number.isSafeInteger(capacity) || capacity < 4) throw new RangeError(`scalar history capacity must be an integer ≥ 4, got ${capacity}`);
    this.rows = new Float64Array(capacity * WIDTH);
  }

  /** Points kept (the tip included). */
  get size(): number {
    return this.count + (this.hasTip ? 1 : 0);
  }

  /** The history keeps the steps that are multiples of this (a power of two). */
  get stride(): number {
    return this.strideValue;
  }

  /** Whether a point at `step` would be kept beyond the tip (for a sender that filters first). */
  accepts(step: number, stride = this.strideValue): boolean {
    return step % stride === 0;
  }

  /** The newest step recorded (−1 when empty). */
  get lastStep(): number {
    if (this.hasTip) return this.tip[0];
    return this.count === 0 ? -1 : this.rows[(this.count - 1) * WIDTH];
  }

  /**
   * Records one point (a row of `SCALAR_COLUMNS` at `offset`). A step at or before the
   * newest one recorded is ignored (a late duplicate).
   */
  record(row: ArrayLike<number>, offset = 0): void {
    const step = row[offset];
    if (!Number.isFinite(step) || step <= this.lastStep) return;
    this.version++;
    if (this.count > 0 && this.accepts(step) && this.count >= this.capacity) this.thin();
    if (this.count > 0 && !this.accepts(step)) {
      for (let k = 0; k < WIDTH; k++) this.tip[k] = row[offset + k];
      this.hasTip = true;
      return;
    }
    this.hasTip = false;
    const at = this.count * WIDTH;
    for (let k = 0; k < WIDTH; k++) this.rows[at + k] = row[offset + k];
    this.count++;
  }

  /** Records every point of a batch (from another thread). */
  append(batch: ScalarBatch): void {
    for (let i = 0; i < batch.count; i++) this.record(batch.values, i * WIDTH);
  }

  clear(): void {
    this.count = 0;
    this.hasTip = false;
    this.strideValue = 1;
    this.version++;
  }

  /** The `scalars` message of the whole history (null while empty). */
  message(run: string): ScalarsMessage | null {
    const n = this.size;
    if (n === 0) return null;
    const column = (k: number, round: (v: number) => number | null): (number | null)[] => {
      const out: (number | null)[] = new Array(n);
      for (let i = 0; i < this.count; i++) out[i] = round(this.rows[i * WIDTH + k]);
      if (this.hasTip) out[n - 1] = round(this.tip[k]);
      return out;
    };
    const t0 = this.rows[1];
    const time = column(1, (v) => (Number.isFinite(v) ? Math.round(v - t0) : null));
    return {
      type: 'scalars',
      run,
      points: n,
      stride: this.strideValue,
      t0,
      step: column(0, (v) => v) as number[],
      time,
      loss: column(2, significant),
      batchLoss: column(3, significant),
      mae: column(4, significant),
      accuracy: column(5, significant),
      gradNorm: column(6, significant),
      learningRate: column(7, significant),
    };
  }

  /**
   * The `scalars` message as one UTF-8 buffer, encoded at most once per change and shared
   * by every client that gets it (a burst of new connections costs one encoding). Null while empty.
   */
  encoded(run: string): Buffer | null {
    if (this.cached !== null && this.cached.version === this.version && this.cached.run === run) return this.cached.data;
    const message = this.message(run);
    if (message === null) return null;
    this.cached = { version: this.version, run, data: Buffer.from(JSON.stringify(message), 'utf8') };
    return this.cached.data;
  }

  /** Keeps the first point and those on multiples of twice the stride; doubles the stride. */
  private thin(): void {
    while (this.count >= this.capacity) {
      const stride = this.strideValue * 2;
      let kept = 1;
      for (let i = 1; i < this.count; i++) {
        if (this.rows[i * WIDTH] % stride !== 0) continue;
        if (kept !== i) this.rows.copyWithin(kept * WIDTH, i * WIDTH, (i + 1) * WIDTH);
        kept++;
      }
      this.count = kept;
      this.strideValue = stride;
    }
  }
}

/** A batch of points recorded on the training thread, filtered by the stride the history last reported. */
export class ScalarRecorder {
  private values = new Float64Array(64 * WIDTH);
  private count = 0;
  private readonly tip = new Float64Array(WIDTH);
  private hasTip = false;
  /** The history's stride, as last reported by the thread that keeps it. */
  stride = 1;

  /** Records a step (only steps on the stride, and always the newest as the tip). */
  record(result: StepResult, time: number): void {
    if (result.counters.steps % this.stride !== 0) {
      scalarRow(result, time, this.tip);
      this.hasTip = true;
      return;
    }
    this.hasTip = false;
    if ((this.count + 1) * WIDTH > this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    scalarRow(result, time, this.values, this.count * WIDTH);
    this.count++;
  }

  /** The points since the last take (the tip last), or null when none; starts a new batch. */
  take(): ScalarBatch | null {
    const count = this.count + (this.hasTip ? 1 : 0);
    if (count === 0) return null;
    const values = new Float64Array(count * WIDTH);
    values.set(this.values.subarray(0, this.count * WIDTH));
    if (this.hasTip) values.set(this.tip, this.count * WIDTH);
    this.count = 0;
    this.hasTip = false;
    // a burst (a stride not yet reported) must not keep a large buffer alive
    if (this.values.length > 4096 * WIDTH) this.values = new Float64Array(64 * WIDTH);
    return { count, values };
  }
}

/** 5 significant digits (enough for a curve), null for NaN and ±Infinity (JSON has neither). */
function significant(v: number): number | null {
  return Number.isFinite(v) ? Number(v.toPrecision(5)) : null;
}
