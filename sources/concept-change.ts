import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { checkNoise, chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** Settings of the stream whose concept changes abruptly; every field has a default. */
export interface ConceptChangeOptions extends SimulatedOptions {
  /** Number of features (default 2). */
  readonly inputs?: number;
  /** The concept changes after this many samples, and again every as many (default 5000). */
  readonly every?: number;
  /** `regression` (`y = [w·x + b + noise]`) or `classification` (`y = [w·x + b > 0 ? 1 : 0]`) (default regression). */
  readonly task?: 'regression' | 'classification';
  /** Standard deviation of gaussian noise on a regression target (default 0.05). */
  readonly noise?: number;
}

/**
 * A stream with abrupt concept changes, for testing how fast a model recovers: `x`
 * uniform in [-1, 1]^inputs, the target a linear function `w·x + b` whose `w` and `b`
 * are redrawn (standard normal, from the seed) every `every` samples. Sample `n` follows
 * concept `floor(n / every)`.
 */
export function conceptChangeSamples(options: ConceptChangeOptions = {}): SampleIterator {
  const { inputs = 2, every = 5000, task = 'regression', noise = 0.05 } = options;
  requireConfig(Number.isSafeInteger(inputs) && inputs >= 1, 'inputs', `must be an integer ≥ 1, got ${inputs}`);
  requireConfig(Number.isSafeInteger(every) && every >= 1, 'every', `must be an integer ≥ 1, got ${every}`);
  requireConfig(task === 'regression' || task === 'classification', 'task', `must be regression or classification, got ${String(task)}`);
  checkNoise(noise);
  const { rng, limit } = seeded(options);
  // concepts come from their own generator, so they do not depend on how many samples were drawn
  const conceptRng = seeded({ seed: (options.seed ?? 0) + 0x5eed }).rng;
  let concept = -1;
  let w = new Array<number>(inputs).fill(0);
  let b = 0;
  return sampleIterator(limit, (n) => {
    const k = Math.floor(n / every);
    while (concept < k) {
      w = w.map(() => conceptRng.normal());
      b = conceptRng.normal() * 0.5;
      concept++;
    }
    const x = Array.from({ length: inputs }, () => rng.uniform(-1, 1));
    let z = b;
    for (let i = 0; i < inputs; i++) z += w[i] * x[i];
    return { x, y: task === 'classification' ? [z > 0 ? 1 : 0] : [z + noise * rng.normal()] };
  });
}

/** The concept-change stream as an Observable, in chunks that yield to the event loop. */
export function conceptChange(options: ConceptChangeOptions = {}): Observable<Sample> {
  conceptChangeSamples(options);
  return chunked(() => conceptChangeSamples(options), options.chunkSize);
}
