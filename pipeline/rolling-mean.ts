/**
 * Mean of the last `window` values pushed, in O(1) per push and fixed memory (a ring
 * buffer). The running sum is rebuilt from the ring once per lap so that rounding
 * errors cannot pile up over an endless stream.
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
    if (this.filled === ring.length) this.sum -= ring[this.next];
    else this.filled++;
    ring[this.next] = value;
    this.sum += value;
    if (++this.next === ring.length) {
      this.next = 0;
      let s = 0;
      for (let i = 0; i < ring.length; i++) s += ring[i];
      this.sum = s;
    }
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
