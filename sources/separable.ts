import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';
import { chunked, type SampleIterator, sampleIterator, seeded, type SimulatedOptions } from './generated.ts';

/** Settings of the linearly separable stream (the perceptron's); every field has a default. */
export interface SeparableOptions extends SimulatedOptions {
  /** Number of features (default 2). */
  readonly inputs?: number;
  /** No point lies closer than this to the separating hyperplane (default 0.1). */
  readonly margin?: number;
}

/**
 * Linearly separable points with a margin, labelled −1/+1, for the perceptron: `x`
 * uniform in [−1, 1]^inputs, `y = [sign(w·x + b)]` for a unit normal `w` and offset `b`
 * drawn from the seed; points closer than `margin` to the hyperplane are drawn again. The
 * perceptron convergence theorem bounds its mistakes by (R/margin)², so a perceptron
 * learns it exactly.
 */
export function separableSamples(options: SeparableOptions = {}): SampleIterator {
  const { inputs = 2, margin = 0.1 } = options;
  requireConfig(Number.isSafeInteger(inputs) && inputs >= 1, 'inputs', `must be an integer ≥ 1, got ${inputs}`);
  requireConfig(Number.isFinite(margin) && margin >= 0 && margin < 0.5, 'margin', `must be a number in [0, 0.5), got ${margin}`);
  const { rng, limit } = seeded(options);
  const plane = new Rng((options.seed ?? 0) + 0x5e9a);
  let w = Array.from({ length: inputs }, () => plane.normal());
  const norm = Math.hypot(...w) || 1;
  w = w.map((v) => v / norm);
  const b = plane.uniform(-0.2, 0.2);
  return sampleIterator(limit, () => {
    for (;;) {
      const x = Array.from({ length: inputs }, () => rng.uniform(-1, 1));
      let z = b;
      for (let i = 0; i < inputs; i++) z += w[i] * x[i];
      if (Math.abs(z) >= margin && z !== 0) return { x, y: [z > 0 ? 1 : -1] };
    }
  });
}

/** Separable points as an Observable, in chunks that yield to the event loop. */
export function separable(options: SeparableOptions = {}): Observable<Sample> {
  separableSamples(options);
  return chunked(() => separableSamples(options), options.chunkSize);
}
