import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** How the rotating hyperplane is made: its dimension, rotations and label noise. */
export interface HyperplaneOptions extends SimulatedOptions {
  /** Number of features (default 4). */
  readonly inputs?: number;
  /** A rotation starts every this many samples (default 25,000; Infinity: never). */
  readonly every?: number;
  /** Samples over which a rotation turns the plane from one orientation to the next (default 5,000: gradual drift). */
  readonly width?: number;
  /** Probability that a label is flipped (default 0.05). */
  readonly noise?: number;
}

/**
 * A rotating hyperplane (after Hulten et al. 2001), a classification stream with gradual
 * drift: features uniform in [0, 1]^d, label 1 when w·x ≥ ½ Σw. Every `every` samples the
 * weights start turning, linearly over `width` samples, to a new random orientation, so
 * the boundary slides instead of jumping. The drifts start at every multiple of `every`.
 *
 * @example new TrainingRun({ id: 'plane', trainer, source: hyperplaneSamples({ seed: 1, limit: 100_000 }) })
 */
export function hyperplaneSamples(options: HyperplaneOptions = {}): SampleIterator {
  const { inputs = 4, every = 25_000, width = 5_000, noise = 0.05 } = options;
  requireConfig(Number.isSafeInteger(inputs) && inputs >= 2, 'inputs', `must be an integer ≥ 2, got ${inputs}`);
  requireConfig(every === Infinity || (Number.isSafeInteger(every) && every >= 1), 'every', `must be an integer ≥ 1 or Infinity, got ${every}`);
  requireConfig(Number.isSafeInteger(width) && width >= 1 && width <= every, 'width', `must be an integer in [1, every], got ${width}`);
  requireConfig(Number.isFinite(noise) && noise >= 0 && noise <= 0.5, 'noise', `must be a probability in [0, 0.5], got ${noise}`);
  const { rng, limit } = seeded(options);
  // orientations come from their own generator: the same planes whatever the samples drawn
  const planes = seeded({ seed: (options.seed ?? 0) + 0x91a4e }).rng;
  const orientations: number[][] = [];
  const orientation = (k: number): number[] => {
    while (orientations.length <= k) orientations.push(Array.from({ length: inputs }, () => planes.uniform(-1, 1)));
    return orientations[k];
  };
  return sampleIterator(limit, (n) => {
    // segment k (k ≥ 1) starts by turning plane k − 1 into plane k over `width` samples
    const k = every === Infinity ? 0 : Math.floor(n / every);
    const t = Math.min(1, (n - k * every) / width);
    const w = k === 0 ? orientation(0) : orientation(k - 1).map((v, i) => v + (orientation(k)[i] - v) * t);
    const x = Array.from({ length: inputs }, () => rng.next());
    let dot = 0, half = 0;
    for (let i = 0; i < inputs; i++) {
      dot += w[i] * x[i];
      half += w[i] / 2;
    }
    return { x, y: [dot >= half !== rng.next() < noise ? 1 : 0] };
  });
}

/** The rotating hyperplane as an Observable, in chunks that yield to the event loop. */
export function hyperplane(options: HyperplaneOptions = {}): Observable<Sample> {
  hyperplaneSamples(options);
  return chunked(() => hyperplaneSamples(options), options.chunkSize);
}
