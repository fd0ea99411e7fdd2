import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import type { Sample } from '../core/sample.ts';
import { chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** How the SINE concepts stream is made: when its concept changes. */
export interface SineConceptsOptions extends SimulatedOptions {
  /** The concept changes after this many samples, and again every as many (default 25,000; Infinity: never). */
  readonly every?: number;
}

/**
 * The SINE concepts (Gama et al. 2004), a classification stream with abrupt drift: two
 * features uniform in [0, 1]; the label says whether the point lies below a curve, and the
 * concept moves every `every` samples through SINE1 (x₁ < sin x₀), SINE1 reversed, SINE2
 * (x₁ < 0.5 + 0.3 sin 3πx₀) and SINE2 reversed. A reversal flips every label: the
 * hardest abrupt drift there is.
 *
 * @example new TrainingRun({ id: 'sine', trainer, source: sineConceptSamples({ seed: 1, limit: 100_000 }) })
 */
export function sineConceptSamples(options: SineConceptsOptions = {}): SampleIterator {
  const { every = 25_000 } = options;
  requireConfig(every === Infinity || (Number.isSafeInteger(every) && every >= 1), 'every', `must be an integer ≥ 1 or Infinity, got ${every}`);
  const { rng, limit } = seeded(options);
  return sampleIterator(limit, (n) => {
    const concept = Math.floor(n / every) % 4;
    const x = [rng.next(), rng.next()];
    const curve = concept < 2 ? Math.sin(x[0]) : 0.5 + 0.3 * Math.sin(3 * Math.PI * x[0]);
    const below = x[1] < curve;
    return { x, y: [below !== (concept % 2 === 1) ? 1 : 0] };
  });
}

/** The SINE concepts as an Observable, in chunks that yield to the event loop. */
export function sineConcepts(options: SineConceptsOptions = {}): Observable<Sample> {
  sineConceptSamples(options);
  return chunked(() => sineConceptSamples(options), options.chunkSize);
}
