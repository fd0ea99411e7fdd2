import { StreamgradError } from './errors.ts';

/** The whole state of a `RunningStats`, as plain numbers (JSON-safe, for checkpoints). */
export interface RunningStatsState {
  /** Values seen per dimension. */
  readonly count: number;
  readonly mean: readonly number[];
  /** Sum of squared deviations from the mean (Welford's M2), per dimension. */
  readonly m2: readonly number[];
}

/**
 * Running mean and variance of a fixed number of dimensions, one value per dimension at
 * a time, by Welford's update (numerically stable: no sum of squares that cancels).
 * Two running stats merge exactly as if one had seen both streams (Chan et al.), so
 * partial statistics can be combined. Pure arithmetic, no RxJS; the state is three
 * plain fields.
 *
 * The variance is the population variance (divided by n, as River's `StandardScaler`);
 * `scale(i)` is its square root, or 1 when it is 0 or not yet known, so that a constant
 * feature is centred and left at unit scale instead of being divided by zero.
 *
 * @example
 * const stats = new RunningStats(2);
 * stats.push([1, 10]); stats.push([3, 10]);
 * stats.mean[0]; // 2
 * stats.variance(0); // 1
 * stats.scale(1); // 1 (zero variance)
 */
export class RunningStats {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 0) throw new StreamgradError('SG_ERR_CONFIG', `size: must be an integer ≥ 0, got ${size}`, 'size');
    this.mean = new Float64Array(size);
    this.m2 = new Float64Array(size);
  }

  /** Adds one observation (all dimensions). The values must be finite: validate first. */
  push(values: ArrayLike<number>): void {
    const n = ++this.count;
    for (let i = 0; i < this.size; i++) {
      const x = values[i];
      const delta = x - this.mean[i];
      this.mean[i] += delta / n;
      this.m2[i] += delta * (x - this.mean[i]);
    }
  }

  /** Population variance of dimension `i` (0 before two values). */
  variance(i: number): number {
    return this.count > 1 ? this.m2[i] / this.count : 0;
  }

  /** Standard deviation of dimension `i`, or 1 when it is zero (a constant feature) or unknown. */
  scale(i: number): number {
    const s = Math.sqrt(this.variance(i));
    return s > 0 && Number.isFinite(s) ? s : 1;
  }

  /** Folds `other` in: afterwards this holds the statistics of both streams together. */
  merge(other: RunningStats): void {
    if (other.size !== this.size) throw new StreamgradError('SG_ERR_STATE', `merge: sizes differ (${this.size} vs ${other.size})`, 'size');
    if (other.count === 0) return;
    const na = this.count, nb = other.count, n = na + nb;
    for (let i = 0; i < this.size; i++) {
      const delta = other.mean[i] - this.mean[i];
      this.mean[i] += (delta * nb) / n;
      this.m2[i] += other.m2[i] + (delta * delta * na * nb) / n;
    }
    this.count = n;
  }

  state(): RunningStatsState {
    return { count: this.count, mean: Array.from(this.mean), m2: Array.from(this.m2) };
  }

  /** Sets the state from `state()`'s output, checking it strictly (size, finite, m2 ≥ 0). */
  restore(state: RunningStatsState, field = 'stats'): void {
    const bad = (what: string) => new StreamgradError('SG_ERR_STATE', `${field}.${what}`, field);
    if (typeof state !== 'object' || state === null) throw bad(`must be an object, got ${state === null ? 'null' : typeof state}`);
    if (!Number.isSafeInteger(state.count) || state.count < 0) throw bad(`count: must be an integer ≥ 0, got ${String(state.count)}`);
    for (const key of ['mean', 'm2'] as const) {
      const v = state[key];
      if (!Array.isArray(v) || v.length !== this.size) throw bad(`${key}: must be an array of ${this.size} numbers, got ${Array.isArray(v) ? v.length : typeof v}`);
      v.forEach((x, i) => {
        if (typeof x !== 'number' || !Number.isFinite(x) || (key === 'm2' && x < 0)) throw bad(`${key}[${i}]: must be a finite number${key === 'm2' ? ' ≥ 0' : ''}, got ${String(x)}`);
      });
    }
    this.count = state.count;
    this.mean.set(state.mean);
    this.m2.set(state.m2);
  }
}
