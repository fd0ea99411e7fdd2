import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { checkNoise, chunked, encodeLabel, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** Settings of the gaussian-blobs classification stream; every field has a default. */
export interface BlobsOptions extends SimulatedOptions {
  /** Number of blobs, one class each (default 3). */
  readonly classes?: number;
  /** Standard deviation of each blob (default 0.5). */
  readonly spread?: number;
  /** Distance of the blob centres from the origin (default 2); centres sit evenly on that circle. */
  readonly radius?: number;
}

/**
 * Gaussian blobs as a pull source (2-D classification): `classes` isotropic gaussian
 * clouds with centres evenly spaced on a circle of `radius`; each sample picks a class
 * uniformly and `y` is one-hot over the classes.
 */
export function blobsSamples(options: BlobsOptions = {}): SampleIterator {
  const { classes = 3, spread = 0.5, radius = 2 } = options;
  requireConfig(Number.isSafeInteger(classes) && classes >= 2, 'classes', `must be an integer ≥ 2, got ${classes}`);
  checkNoise(spread, 'spread');
  checkNoise(radius, 'radius');
  const centres = Array.from({ length: classes }, (_, k) => [radius * Math.cos((2 * Math.PI * k) / classes), radius * Math.sin((2 * Math.PI * k) / classes)]);
  const { rng, limit } = seeded(options);
  return sampleIterator(limit, () => {
    const label = Math.min(classes - 1, Math.floor(rng.next() * classes));
    const [cx, cy] = centres[label];
    return { x: [cx + spread * rng.normal(), cy + spread * rng.normal()], y: encodeLabel(label, classes, 'one-hot') };
  });
}

/** Gaussian blobs as an Observable, in chunks that yield to the event loop. */
export function blobs(options: BlobsOptions = {}): Observable<Sample> {
  blobsSamples(options);
  return chunked(() => blobsSamples(options), options.chunkSize);
}
