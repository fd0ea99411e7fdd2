import type { Observable } from 'rxjs';
import type { Sample } from '../core/sample.ts';
import { checkNoise, chunked, encodeLabel, type LabelEncoding, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';
import { requireConfig } from '../core/errors.ts';

/** Settings of the two-spirals classification stream; every field has a default. */
export interface SpiralsOptions extends SimulatedOptions {
  /** Turns of each spiral (default 1.5). */
  readonly turns?: number;
  /** Standard deviation of gaussian noise on the points (default 0.05). */
  readonly noise?: number;
  /** `binary` or `one-hot` labels (default one-hot). */
  readonly encoding?: LabelEncoding;
}

/**
 * The two-spirals problem as a pull source (2-D classification): two interleaved
 * spirals of radius up to 1, one per class, the second the first turned by π. Each
 * sample picks a class and a point along its spiral uniformly, plus gaussian noise.
 */
export function spiralsSamples(options: SpiralsOptions = {}): SampleIterator {
  const { turns = 1.5, noise = 0.05, encoding = 'one-hot' } = options;
  requireConfig(Number.isFinite(turns) && turns > 0, 'turns', `must be a finite number > 0, got ${turns}`);
  checkNoise(noise);
  const { rng, limit } = seeded(options);
  return sampleIterator(limit, () => {
    const label = rng.next() < 0.5 ? 0 : 1;
    const r = rng.uniform(0.05, 1);
    const angle = r * turns * 2 * Math.PI + label * Math.PI;
    const x = [r * Math.cos(angle) + noise * rng.normal(), r * Math.sin(angle) + noise * rng.normal()];
    return { x, y: encodeLabel(label, 2, encoding) };
  });
}

/** Two spirals as an Observable, in chunks that yield to the event loop. */
export function spirals(options: SpiralsOptions = {}): Observable<Sample> {
  spiralsSamples(options);
  return chunked(() => spiralsSamples(options), options.chunkSize);
}
