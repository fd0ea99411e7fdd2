import { Observable, type OperatorFunction } from 'rxjs';
import type { FeaturePredictor } from '../core/feature-time-prediction.ts';
import type { JoinedRecord, LabelJoin, LabelledRecord } from '../core/label-join.ts';

/**
 * Delayed labels: joins features records with the labels that arrive later for them
 * (matched by `join.idField`), and passes the joined records on to ingestion and
 * training. When a features record arrives, `predict` makes the model's prediction *then*
 * and it is stored with the waiting entry; the joined record carries it, so that the
 * prequential metrics score the prediction made when the features arrived, not a later
 * one (MOA's delayed prequential evaluation). Records to turn away (duplicates, unknown
 * ids, time-outs with the `dead-letter` policy, records without an id) come out as error
 * records: `validateRecords` counts them and writes their dead letters.
 *
 * Labels are the records with `stream: 'labels'` (see `sources/labelled.ts` for merging
 * a features source and a labels source); the rest are features. At the end of the
 * stream every waiting entry expires by the policy (nothing vanishes); an unsubscribe (a
 * stopped run) leaves them in `join`, whose `state()` a checkpoint keeps.
 *
 * The join's state lives in `join`, not in the subscription (STYLE 3), as the
 * normaliser's does: re-subscribing goes on from it.
 *
 * @example
 * const join = new LabelJoin({ idField: 'id', timeoutSamples: 1000, expired: 'dead-letter' });
 * const predict = featurePredictor({ trainer, features, normalizer });
 * labelled$.pipe(joinLabels(join, predict), ingest({ trainer, features, normalizer, deadLetters }), train(trainer));
 * @see LabelJoin the pure state machine
 * @see featurePredictor the prediction made when features arrive
 * @param join the pending map, its policies and counters
 * @param predict the model's prediction for a features record, now
 */
export function joinLabels(join: LabelJoin, predict: FeaturePredictor): OperatorFunction<LabelledRecord, JoinedRecord> {
  return (source) =>
    new Observable<JoinedRecord>((subscriber) =>
      source.subscribe({
        next(record) {
          let out: JoinedRecord[];
          try {
            out = record.stream === 'labels' ? join.label(record) : join.features(record, predict);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          for (const joined of out) {
            if (subscriber.closed) return;
            subscriber.next(joined);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete() {
          for (const joined of join.flush()) {
            if (subscriber.closed) return;
            subscriber.next(joined);
          }
          subscriber.complete();
        },
      }),
    );
}
