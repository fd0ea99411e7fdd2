import { type DetectorState, type DriftDetector, type DriftLevel, requireParameter, requireState, requireValue } from './detector.ts';

/** ADWIN's parameters (River's, in camelCase), every one optional. */
export interface AdwinOptions {
  /** Significance δ of the test that cuts the window (default 0.002). */
  readonly delta?: number;
  /** Test for a cut every this many values (default 32). */
  readonly clock?: number;
  /** Buckets of each size kept before two are merged (default 5). */
  readonly maxBuckets?: number;
  /** Fewest values on each side of a cut (default 5). */
  readonly minWindowLength?: number;
  /** Values seen before the first test (default 10). */
  readonly gracePeriod?: number;
}

/** One row of ADWIN's exponential histogram: buckets of 2^row values, oldest first. */
interface Row {
  readonly totals: number[];
  readonly variances: number[];
}

/** ADWIN's learned state: the histogram and its running sums. */
export interface AdwinState extends DetectorState {
  readonly kind: 'adwin';
  readonly rows: readonly Row[];
  readonly width: number;
  readonly total: number;
  readonly variance: number;
  readonly tick: number;
  readonly detections: number;
  readonly drifted: boolean;
  readonly direction: number;
}

/**
 * ADWIN, adaptive windowing (Bifet & Gavaldà 2007), as ADWIN2 with its exponential
 * histogram: keeps a window of recent values in O(log W) buckets, and every `clock`
 * values tries every cut of the window into an older and a newer part; when their means
 * differ by more than a bound that holds with probability 1 − δ, the older part is
 * dropped and a drift is reported. No warning level. Parameters, defaults and the order
 * of its arithmetic are River's `drift.ADWIN`, so River's documented alarm positions hold.
 *
 * @example
 * const adwin = new Adwin();
 * for (const [i, loss] of losses.entries()) if (adwin.update(loss) === 'drift') console.log('change at', i, 'mean now', adwin.mean);
 */
export class Adwin implements DriftDetector {
  readonly kind = 'adwin';
  readonly delta: number;
  readonly clock: number;
  readonly maxBuckets: number;
  readonly minWindowLength: number;
  readonly gracePeriod: number;
  private rows: Row[] = [{ totals: [], variances: [] }];
  private width = 0;
  private total = 0;
  private variance = 0;
  private tick = 0;
  private detections = 0;
  private drifted = false;
  /** +1 when the newer part's mean is above the dropped older part's, −1 below (at the last drift). */
  private direction = 0;

  constructor(options: AdwinOptions = {}) {
    const { delta = 0.002, clock = 32, maxBuckets = 5, minWindowLength = 5, gracePeriod = 10 } = options;
    requireParameter(delta > 0 && delta < 1, this.kind, 'delta', 'must be in (0, 1)', delta);
    requireParameter(Number.isSafeInteger(clock) && clock >= 1, this.kind, 'clock', 'must be an integer ≥ 1', clock);
    requireParameter(Number.isSafeInteger(maxBuckets) && maxBuckets >= 2, this.kind, 'maxBuckets', 'must be an integer ≥ 2', maxBuckets);
    requireParameter(Number.isSafeInteger(minWindowLength) && minWindowLength >= 1, this.kind, 'minWindowLength', 'must be an integer ≥ 1', minWindowLength);
    requireParameter(Number.isSafeInteger(gracePeriod) && gracePeriod >= 0, this.kind, 'gracePeriod', 'must be an integer ≥ 0', gracePeriod);
    this.delta = delta;
    this.clock = clock;
    this.maxBuckets = maxBuckets;
    this.minWindowLength = minWindowLength;
    this.gracePeriod = gracePeriod;
  }

  /** How many values the window holds now. */
  get windowWidth(): number {
    return this.width;
  }

  /** The mean of the window: the current estimate of the stream's mean. */
  get mean(): number {
    return this.width === 0 ? 0 : this.total / this.width;
  }

  update(x: number): DriftLevel {
    requireValue(x, this.kind);
    // River starts the window over after reporting a drift: the newer part it kept goes too
    if (this.drifted) this.reset();
    this.insert(x);
    const before = this.mean;
    this.drifted = this.detectChange();
    // the cut dropped the older part: the mean now is the newer part's
    if (this.drifted) this.direction = this.mean >= before ? 1 : -1;
    return this.drifted ? 'drift' : 'none';
  }

  private insert(x: number): void {
    const row = this.rows[0];
    row.totals.push(x);
    row.variances.push(0);
    this.width += 1;
    if (this.width > 1) {
      const d = x - this.total / (this.width - 1);
      this.variance += ((this.width - 1) * d * d) / this.width;
    }
    this.total += x;
    this.compress();
  }

  /** Merges the two oldest buckets of a full row into one of the next row, row after row. */
  private compress(): void {
    for (let i = 0; i < this.rows.length; i++) {
      const row = this.rows[i];
      if (row.totals.length !== this.maxBuckets + 1) break;
      if (i + 1 === this.rows.length) this.rows.push({ totals: [], variances: [] });
      const next = this.rows[i + 1];
      const n = 2 ** i;
      const mu1 = row.totals[0] / n, mu2 = row.totals[1] / n;
      next.totals.push(row.totals[0] + row.totals[1]);
      next.variances.push(row.variances[0] + row.variances[1] + n * 0.5 * (mu1 - mu2) * (mu1 - mu2));
      row.totals.splice(0, 2);
      row.variances.splice(0, 2);
      if (next.totals.length <= this.maxBuckets) break;
    }
  }

  /** Drops the oldest bucket; returns how many values it held. */
  private deleteOldest(): number {
    const last = this.rows.length - 1;
    const row = this.rows[last];
    const n = 2 ** last;
    const u = row.totals[0], v = row.variances[0];
    const mu = u / n;
    this.width -= n;
    this.total -= u;
    const muWindow = this.total / this.width;
    this.variance -= v + (n * this.width * (mu - muWindow) * (mu - muWindow)) / (n + this.width);
    row.totals.shift();
    row.variances.shift();
    if (row.totals.length === 0) this.rows.pop();
    return n;
  }

  private detectChange(): boolean {
    let changed = false;
    this.tick += 1;
    if (this.tick % this.clock !== 0 || this.width <= this.gracePeriod) return false;
    let reduce = true;
    while (reduce) {
      reduce = false;
      let n0 = 0, n1 = this.width, u0 = 0, u1 = this.total;
      let done = false;
      // every cut between buckets, from the oldest: W0 (older) grows, W1 (newer) shrinks
      for (let i = this.rows.length - 1; i >= 0 && !done; i--) {
        const row = this.rows[i];
        const size = 2 ** i;
        for (let k = 0; k < row.totals.length; k++) {
          n0 += size;
          n1 -= size;
          u0 += row.totals[k];
          u1 -= row.totals[k];
          if (i === 0 && k === row.totals.length - 1) {
            done = true;
            break;
          }
          if (n1 >= this.minWindowLength && n0 >= this.minWindowLength && this.cut(n0, n1, u0 / n0 - u1 / n1)) {
            reduce = true;
            changed = true;
            if (this.width > 0) {
              n0 -= this.deleteOldest();
              done = true;
              break;
            }
          }
        }
      }
    }
    if (changed) this.detections += 1;
    return changed;
  }

  /** ADWIN2's cut test: |μ0 − μ1| > ε_cut for sub-windows of n0 and n1 values. */
  private cut(n0: number, n1: number, deltaMean: number): boolean {
    const deltaPrime = Math.log((2 * Math.log(this.width)) / this.delta);
    const mRecip = 1 / (n0 - this.minWindowLength + 1) + 1 / (n1 - this.minWindowLength + 1);
    const epsilon = Math.sqrt(2 * mRecip * (this.variance / this.width) * deltaPrime) + (2 / 3) * deltaPrime * mRecip;
    return Math.abs(deltaMean) > epsilon;
  }

  evidence(): Readonly<Record<string, number>> {
    return { width: this.width, mean: this.mean, variance: this.width > 0 ? this.variance / this.width : 0, detections: this.detections, direction: this.direction };
  }

  state(): AdwinState {
    const rows = this.rows.map((r) => ({ totals: [...r.totals], variances: [...r.variances] }));
    return { kind: this.kind, rows, width: this.width, total: this.total, variance: this.variance, tick: this.tick, detections: this.detections, drifted: this.drifted, direction: this.direction };
  }

  restore(state: DetectorState): void {
    requireState(state, this.kind);
    const s = state as AdwinState;
    this.rows = s.rows.map((r) => ({ totals: [...r.totals], variances: [...r.variances] }));
    this.width = s.width;
    this.total = s.total;
    this.variance = s.variance;
    this.tick = s.tick;
    this.detections = s.detections;
    this.drifted = s.drifted;
    this.direction = s.direction;
  }

  reset(): void {
    this.rows = [{ totals: [], variances: [] }];
    this.width = 0;
    this.total = 0;
    this.variance = 0;
    this.tick = 0;
    this.detections = 0;
    this.drifted = false;
    this.direction = 0;
  }
}
