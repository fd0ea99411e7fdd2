/**
 * Mean of the last `window` values pushed, in O(1) per push and fixed memory (a ring
 * buffer). The running sum is rebuilt from the ring once per lap so that rounding
 * errors cannot pile up over an endless stream, and at once when a value leaves that
 * would spoil it by subtraction: a non-finite one (Inf − Inf is NaN) or one that
 * dwarfs what remains (1e300 − 1e300 loses every small value added meanwhile).
 */
export class RollingMean {
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;
  private sum = 0;

  constructor(readonly window: number) {
    if (!Number.isSafeInteger(window) || window < 1) throw new RangeError(`window must be a positive integer, got ${window}`);
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

  /** The mean, NaN before the first value. */
  get mean(): number {
    return this.filled === 0 ? NaN : this.sum / this.filled;
  }
}
