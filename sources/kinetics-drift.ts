import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { checkNoise, checkRange, chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** How the drifting Michaelis–Menten sensor is made: its K_m values, when and how they change, its ranges and noise. */
export interface KineticsDriftOptions extends SimulatedOptions {
  /** The enzyme's K_m changes every this many samples (default 25,000; Infinity: never). */
  readonly every?: number;
  /** `jump`: K_m jumps to its next value at once; `ramp`: it slides there over `width` samples (default jump). */
  readonly change?: 'jump' | 'ramp';
  /** Samples a ramp takes (default 10,000). */
  readonly width?: number;
  /** The K_m values the enzyme goes through, in a cycle (default [1, 4, 0.5, 8]). */
  readonly km?: readonly number[];
  /** Where V_max and the substrate concentration are drawn from (defaults [1, 2] and [0, 10]). */
  readonly vmax?: readonly [number, number];
  readonly substrate?: readonly [number, number];
  /** Standard deviation of the gaussian noise on the rate (default 0.01). */
  readonly noise?: number;
}

/**
 * A Michaelis–Menten sensor whose enzyme changes while it is watched: `x = [V_max, S]`,
 * `y = [V_max·S / (K_m + S) + noise]`, with K_m hidden from the model and changing every
 * `every` samples — at once (`jump`: abrupt drift) or over `width` samples (`ramp`:
 * gradual drift). Regression; the changes start at every multiple of `every`.
 *
 * @example new TrainingRun({ id: 'enzyme', trainer, source: kineticsDriftSamples({ seed: 1, every: 20_000 }) })
 */
export function kineticsDriftSamples(options: KineticsDriftOptions = {}): SampleIterator {
  const { every = 25_000, change = 'jump', width = 10_000, km = [1, 4, 0.5, 8], vmax = [1, 2], substrate = [0, 10], noise = 0.01 } = options;
  requireConfig(every === Infinity || (Number.isSafeInteger(every) && every >= 1), 'every', `must be an integer ≥ 1 or Infinity, got ${every}`);
  requireConfig(change === 'jump' || change === 'ramp', 'change', `must be jump or ramp, got ${String(change)}`);
  requireConfig(Number.isSafeInteger(width) && width >= 1 && width <= every, 'width', `must be an integer in [1, every], got ${width}`);
  requireConfig(km.length >= 1 && km.every((k) => Number.isFinite(k) && k > 0), 'km', 'must be a list of numbers > 0');
  checkRange('vmax', vmax);
  checkRange('substrate', substrate);
  checkNoise(noise);
  const { rng, limit } = seeded(options);
  const kmAt = (n: number): number => {
    const k = every === Infinity ? 0 : Math.floor(n / every);
    const current = km[k % km.length];
    if (k === 0 || change === 'jump') return current;
    const previous = km[(k - 1) % km.length];
    return previous + (current - previous) * Math.min(1, (n - k * every) / width);
  };
  return sampleIterator(limit, (n) => {
    const v = rng.uniform(vmax[0], vmax[1]), s = rng.uniform(substrate[0], substrate[1]);
    return { x: [v, s], y: [(v * s) / (kmAt(n) + s) + noise * rng.normal()] };
  });
}

/** The drifting Michaelis–Menten sensor as an Observable, in chunks that yield to the event loop. */
export function kineticsDrift(options: KineticsDriftOptions = {}): Observable<Sample> {
  kineticsDriftSamples(options);
  return chunked(() => kineticsDriftSamples(options), options.chunkSize);
}
