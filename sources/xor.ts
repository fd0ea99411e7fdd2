import type { Observable } from 'rxjs';
import type { Sample } from '../core/sample.ts';
import { checkNoise, chunked, encodeLabel, type LabelEncoding, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** Settings of the XOR classification stream; every field has a default. */
export interface XorOptions extends SimulatedOptions {
  /** Standard deviation of gaussian noise added to the inputs after labelling (default 0). */
  readonly noise?: number;
  /** `binary` (`y = [0|1]`, for a sigmoid + bce) or `one-hot` (`y = [1,0]|[0,1]`, softmax) (default binary). */
  readonly encoding?: LabelEncoding;
}

/**
 * The XOR problem as a pull source (2-D classification): `x` uniform in [-1, 1]², the
 * label is 1 when the two coordinates have opposite signs. No line separates the
 * classes: a network needs a hidden layer.
 */
export function xorSamples(options: XorOptions = {}): SampleIterator {
  const { noise = 0, encoding = 'binary' } = options;
  checkNoise(noise);
  const { rng, limit } = seeded(options);
  return sampleIterator(limit, () => {
    const a = rng.uniform(-1, 1);
    const b = rng.uniform(-1, 1);
    const label = (a < 0) !== (b < 0) ? 1 : 0;
    const x = noise > 0 ? [a + noise * rng.normal(), b + noise * rng.normal()] : [a, b];
    return { x, y: encodeLabel(label, 2, encoding) };
  });
}

/** XOR as an Observable, in chunks that yield to the event loop. */
export function xor(options: XorOptions = {}): Observable<Sample> {
  xorSamples(options);
  return chunked(() => xorSamples(options), options.chunkSize);
}
