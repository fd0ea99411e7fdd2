import { map, type OperatorFunction } from 'rxjs';
import type { Normalizer } from '../core/normalizer.ts';
import type { Prediction } from './predict.ts';

/**
 * Maps predictions of a model trained on a normalised target back to original units,
 * with the normaliser's current statistics (a model without target normalisation
 * passes through unchanged, as a copy).
 *
 * @example
 * features$.pipe(map((x) => normalizer.transformInput(x)), predict(model), denormalize(normalizer))
 * @see normalize
 * @param normalizer the statistics the model was trained with
 */
export function denormalize<I>(normalizer: Normalizer): OperatorFunction<Prediction<I>, Prediction<I>> {
  return map(({ input, output }) => ({ input, output: normalizer.denormalizeOutput(output) }));
}
