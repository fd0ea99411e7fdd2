import { requireConfig } from '../core/errors.ts';

/** How fast `paced` lets samples through. */
export interface PacedOptions {
  /** Samples per second (> 0). */
  readonly samplesPerSecond: number;
  /** Wake-ups per second: samples are released in small groups this often (default 30). */
  readonly ticksPerSecond?: number;
  /**
   * Most samples owed after a stall (a paused run that pulls nothing, a busy event loop)
   * that are released at once (default: one second's worth); the rest are forgotten, so a
   * resumed run continues at the pace instead of rushing through a backlog.
   */
  readonly maxBurst?: number;
}

/**
 * A pull source released at a human pace: the samples of `source` (any iterable, e.g. a
 * seeded simulation) come out at about `samplesPerSecond`, in groups at `ticksPerSecond`,
 * sleeping on a timer in between — so a demo that trains a few hundred samples a second
 * costs a few percent of a core, and a person can follow the curves. The pace is kept over
 * time (a late wake-up releases what is owed, up to `maxBurst`).
 *
 * @example
 * new TrainingRun({ id: 'deep', trainer, source: paced(kineticsDriftSamples({ every: 18_000 }), { samplesPerSecond: 300 }) })
 */
export async function* paced<T>(source: Iterable<T>, options: PacedOptions): AsyncGenerator<T, void, undefined> {
  const rate = options.samplesPerSecond;
  requireConfig(Number.isFinite(rate) && rate > 0, 'samplesPerSecond', `must be a number > 0, got ${rate}`);
  const ticks = options.ticksPerSecond ?? 30;
  requireConfig(Number.isFinite(ticks) && ticks > 0, 'ticksPerSecond', `must be a number > 0, got ${ticks}`);
  const maxBurst = options.maxBurst ?? Math.max(1, Math.ceil(rate));
  requireConfig(Number.isFinite(maxBurst) && maxBurst >= 1, 'maxBurst', `must be a number ≥ 1, got ${maxBurst}`);
  const periodMs = 1000 / ticks;
  let start = performance.now();
  let released = 0;
  for (const sample of source) {
    for (;;) {
      const owed = Math.floor(((performance.now() - start) * rate) / 1000) - released;
      if (owed > maxBurst) {
        // a stall: restart the schedule from now, with one burst owed
        start = performance.now() - (maxBurst * 1000) / rate;
        released = 0;
      }
      if (owed >= 1) break;
      await new Promise<void>((resolve) => setTimeout(resolve, periodMs));
    }
    released++;
    yield sample;
  }
}
