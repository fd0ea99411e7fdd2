import { StreamgradError } from './errors.ts';

/**
 * Mean of the last `window` values pushed, in O(1) per push and fixed memory (a ring
 * buffer). The running sum is rebuilt from the ring once per lap so that rounding
 * errors cannot pile up over an endless stream, and at once when a value leaves that
 * would spoil it by subtraction: a non-finite one (Inf − Inf is NaN) or one that
 * dwarfs what remains (1e300 − 1e300 loses every small value added meanwhile).
 */
/**
 * The widest rolling window: 1,000,000 values (8 MB a ring; the prequential metrics keep
 * up to three, and checkpoints carry them).
 */
export const MAX_WINDOW = 1_000_000;

export class RollingMean {
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;
  private sum = 0;

  constructor(readonly window: number) {
    if (!Number.isSafeInteger(window) || window < 1) throw new StreamgradError('SG_ERR_CONFIG', `window: must be an integer ≥ 1, got ${window}`, 'window');
    if (window > MAX_WINDOW) throw new StreamgradError('SG_ERR_CONFIG', `window: must be at most ${MAX_WINDOW}, got ${window}`, 'window');
    this.ring = new Float64Array(window);
  }

  push(value: number): void {
    const ring = this.ring;
    let leaving = 0;
    if (this.filled === ring.length) leaving = ring[this.next];
    else this.filled++;
    ring[this.next] = value;
    this.sum = this.sum - leaving + value;
    const lap = ++this.next === ring.length;
    if (lap) this.next = 0;
    if (lap || !Number.isFinite(leaving) || Math.abs(leaving) > 1e4 * Math.abs(this.sum)) this.sum = this.exactSum();
  }

  private exactSum(): number {
    let s = 0;
    for (let i = 0; i < this.filled; i++) s += this.ring[i];
    return s;
  }

  /** Values currently in the window. */
  get count(): number {
    return this.filled;
  }

  /**
   * The whole state as one array, `[next, filled, sum, ...ring]`, bit for bit (the
   * running sum is not recomputed from the ring, so a restored mean continues exactly).
   */
  state(): Float64Array {
    const out = new Float64Array(3 + this.ring.length);
    out[0] = this.next;
    out[1] = this.filled;
    out[2] = this.sum;
    out.set(this.ring, 3);
    return out;
  }

  /** Puts back a `state()` of a mean with the same window; throws a RangeError otherwise. */
  restore(state: Float64Array): void {
    const window = this.ring.length;
    const [next, filled] = state;
    if (state.length !== 3 + window) throw new RangeError(`rolling mean state holds ${state.length - 3} values, the window is ${window}`);
    if (!Number.isSafeInteger(next) || !Number.isSafeInteger(filled) || next < 0 || next >= window || filled < 0 || filled > window) {
      throw new RangeError(`rolling mean state has next ${next}, filled ${filled} for a window of ${window}`);
    }
    this.next = next;
    this.filled = filled;
    this.sum = state[2];
    this.ring.set(state.subarray(3));
  }

  /** The mean, NaN before the first value. */
  get mean(): number {
    return this.filled === 0 ? NaN : this.sum / this.filled;
  }
}
