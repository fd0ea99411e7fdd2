import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** How the SEA stream is made: when its concept changes, and its label noise. */
export interface SeaOptions extends SimulatedOptions {
  /** The concept changes after this many samples, and again every as many (default 25,000; Infinity: never). */
  readonly every?: number;
  /** Probability that a label is flipped (default 0.1, as in the original study). */
  readonly noise?: number;
}

/** The four SEA thresholds θ, in the order the concepts follow each other. */
export const SEA_THRESHOLDS = [8, 9, 7, 9.5] as const;

/**
 * The SEA concepts (Street & Kim 2001), the classic stream with abrupt drift: three
 * features uniform in [0, 10], label 1 when x₀ + x₁ ≤ θ (x₂ is irrelevant), θ moving
 * through 8, 9, 7 and 9.5 every `every` samples; a share `noise` of labels is flipped.
 * The changes are at every multiple of `every`.
 *
 * @example new TrainingRun({ id: 'sea', trainer, source: seaSamples({ seed: 1, limit: 100_000 }) })
 */
export function seaSamples(options: SeaOptions = {}): SampleIterator {
  const { every = 25_000, noise = 0.1 } = options;
  requireConfig(every === Infinity || (Number.isSafeInteger(every) && every >= 1), 'every', `must be an integer ≥ 1 or Infinity, got ${every}`);
  requireConfig(Number.isFinite(noise) && noise >= 0 && noise <= 0.5, 'noise', `must be a probability in [0, 0.5], got ${noise}`);
  const { rng, limit } = seeded(options);
  return sampleIterator(limit, (n) => {
    const theta = SEA_THRESHOLDS[Math.floor(n / every) % SEA_THRESHOLDS.length];
    const x = [rng.uniform(0, 10), rng.uniform(0, 10), rng.uniform(0, 10)];
    const label = x[0] + x[1] <= theta;
    return { x, y: [label !== rng.next() < noise ? 1 : 0] };
  });
}

/** SEA as an Observable, in chunks that yield to the event loop. */
export function sea(options: SeaOptions = {}): Observable<Sample> {
  seaSamples(options);
  return chunked(() => seaSamples(options), options.chunkSize);
}
