/** Calls closer together than this (ms) make the clock be read less often; see `Throughput`. */
const FAST_CALL_MS = 0.01;
/** Calls further apart than this (ms) make it be read on every call again. */
const SLOW_CALL_MS = 0.1;
/** The clock is read at least every this many calls. */
const MAX_STRIDE = 8;

/**
 * Samples per second over roughly the last second, from a monotonic clock. Before a
 * full second has passed it reports the rate since the first sample; after that, a
 * window only replaces the previous one's rate once it has half a window of data, so
 * the figure never rests on a sliver of time.
 *
 * Reading the clock (`performance.now`) costs ~45 ns, a few percent of a batch-1 step
 * with the wasm kernels. So when calls come more than 100,000 a second, the clock is
 * read only every second, fourth, then eighth call, and the calls in between return the
 * rate of the last reading (their samples count all the same). A reading that finds the
 * calls have slowed to less than 10,000 a second goes back to reading on every call: a
 * stream that turns slow gets a figure at most 7 calls late.
 */
export class Throughput {
  private windowStart = NaN;
  private windowCount = 0;
  private rate = NaN;
  private settled = false;
  /** The clock is read every `stride` calls; `due` calls are left until the next reading. */
  private stride = 1;
  private due = 0;
  private lastReading = NaN;

  constructor(private readonly clock: () => number = () => performance.now(), private readonly windowMs = 1000) {}

  /** Records `n` more samples and returns the current rate. */
  add(n: number): number {
    if (--this.due > 0) {
      this.windowCount += n;
      return this.rate;
    }
    const now = this.clock();
    this.pace(now);
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

  /** Sets how many calls until the next reading, from the time per call since the last one. */
  private pace(now: number): void {
    const perCall = (now - this.lastReading) / this.stride; // NaN at the first reading: no change
    this.lastReading = now;
    if (perCall < FAST_CALL_MS) this.stride = Math.min(2 * this.stride, MAX_STRIDE);
    else if (perCall > SLOW_CALL_MS) this.stride = 1;
    this.due = this.stride;
  }
}
