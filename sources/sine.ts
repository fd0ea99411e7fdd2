import type { Observable } from 'rxjs';
import type { Sample } from '../core/sample.ts';
import { checkNoise, checkRange, chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** Settings of the noisy sine stream; every field has a default. */
export interface SineOptions extends SimulatedOptions {
  /** Where x is drawn from, uniformly (default [-π, π]). */
  readonly range?: readonly [number, number];
  readonly amplitude?: number;
  /** Angular frequency (default 1). */
  readonly frequency?: number;
  readonly phase?: number;
  /** Standard deviation of the gaussian noise on y (default 0.05). */
  readonly noise?: number;
}

/** A noisy-sine sample: `x = [t]`, `y = [A·sin(ω·t + φ) + noise]`. */
export interface SineSample extends Sample {
  readonly x: readonly [t: number];
  readonly y: readonly [value: number];
}

/**
 * A noisy sine wave as a pull source (regression): `t` uniform in `range`, `y =
 * amplitude·sin(frequency·t + phase)` plus gaussian noise. Seeded: the same seed gives
 * the same samples.
 *
 * @example new TrainingRun({ id: 'sine', trainer, source: sineSamples({ seed: 1 }) })
 */
export function sineSamples(options: SineOptions = {}): SampleIterator<SineSample> {
  const { range = [-Math.PI, Math.PI], amplitude = 1, frequency = 1, phase = 0, noise = 0.05 } = options;
  checkRange('range', range);
  checkNoise(noise);
  for (const [field, v] of [['amplitude', amplitude], ['frequency', frequency], ['phase', phase]] as const) checkNoise(Math.abs(v), field);
  const { rng, limit } = seeded(options);
  return sampleIterator(limit, () => {
    const t = rng.uniform(range[0], range[1]);
    return { x: [t], y: [amplitude * Math.sin(frequency * t + phase) + noise * rng.normal()] };
  });
}

/** The noisy sine as an Observable, in chunks that yield to the event loop. */
export function sine(options: SineOptions = {}): Observable<SineSample> {
  sineSamples(options);
  return chunked(() => sineSamples(options), options.chunkSize);
}
