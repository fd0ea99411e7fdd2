/**
 * Samples per second over roughly the last second, from a monotonic clock. Before a
 * full second has passed it reports the rate since the first sample; after that, a
 * window only replaces the previous one's rate once it has half a window of data, so
 * the figure never rests on a sliver of time.
 */
export class Throughput {
  private windowStart = NaN;
  private windowCount = 0;
  private rate = NaN;
  private settled = false;

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
    if (elapsed > 0 && (!this.settled || elapsed >= this.windowMs / 2)) this.rate = (this.windowCount * 1000) / elapsed;
    if (elapsed >= this.windowMs) {
      this.windowStart = now;
      this.windowCount = 0;
      this.settled = true;
    }
    return this.rate;
  }
}
