/**
 * Samples per second over roughly the last second, from a monotonic clock. Before a
 * full second has passed it reports the rate since the first sample.
 */
export class Throughput {
  private windowStart = NaN;
  private windowCount = 0;
  private rate = NaN;

  constructor(private readonly clock: () => number = () => performance.now(), private readonly windowMs = 1000) {}

  /** Records `n` more samples and returns the current rate. */
  add(n: number): number {
    const now = this.clock();
    if (Number.isNaN(this.windowStart)) {
      this.windowStart = now;
      this.windowCount = 0;
      return this.rate;
    }
    this.windowCount += n;
    const elapsed = now - this.windowStart;
    if (elapsed > 0) this.rate = (this.windowCount * 1000) / elapsed;
    if (elapsed >= this.windowMs) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    return this.rate;
  }
}
