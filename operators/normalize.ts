import { Observable, type OperatorFunction } from 'rxjs';
import type { Normalizer } from '../core/normalizer.ts';
import type { TracedSample } from '../core/sample.ts';

/**
 * Standardises each sample with running statistics, prequentially: the sample is
 * transformed with the statistics of the samples before it and passed on, and only
 * once downstream is done with it (with a batch of 1, the model has predicted on it and
 * learned from it) is it added to the statistics. A normalised target travels with
 * the mean and scale it was standardised with (`TracedSample.units`), so that metrics
 * and predictions can be read in the target's own units. Put it after validation: a sample
 * that reaches it must be finite and of the right shape.
 *
 * The statistics live in `normalizer`, not in the subscription (STYLE 3): re-subscribing
 * goes on from them, and `normalizer.state()` / `restore()` checkpoint them.
 *
 * @example
 * const normalizer = new Normalizer({ inputs: 4 });
 * records$.pipe(validateRecords({ shape }), normalize(normalizer), train(trainer));
 * @see Normalizer
 * @param normalizer the statistics to use and update
 */
export function normalize(normalizer: Normalizer): OperatorFunction<TracedSample, TracedSample> {
  return (source) =>
    new Observable<TracedSample>((subscriber) =>
      source.subscribe({
        next(sample) {
          let scaled: TracedSample;
          try {
            scaled = normalizer.transform(sample);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          subscriber.next(scaled);
          if (!subscriber.closed) normalizer.learn(sample);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      }),
    );
}
