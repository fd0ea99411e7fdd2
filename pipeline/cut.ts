import type { Observable } from 'rxjs';
import type { BatchConfig } from '../operators/batch.ts';

/**
 * A source item that is not a record but a place in the stream: a `TrainingRun` that
 * pulls it trains the partial batch it holds at once (a smaller batch), without counting
 * it as a record. A live source whose producer went quiet marks the stream with it, so
 * that the last records are not held until the batch fills; because the mark is in the
 * data, the batches stay a function of the data (replaying the stream with its marks
 * gives the same batches, bit for bit), where a batch by time would depend on timing.
 *
 * @example
 * const run = new TrainingRun({ id: 'r', trainer, source: [s1, s2, CUT, s3], train: { batch: 16 } }); // batches [s1, s2], [s3]
 */
export const CUT: unique symbol = Symbol.for('streamgrad.cut');

/** The type of `CUT`. */
export type Cut = typeof CUT;

/**
 * `batch` (a size or a `BatchConfig`, default 1) with `cuts` ending its partial batches.
 *
 * @example train(trainer, { batch: withCuts(16, cuts$) })
 */
export function withCuts(batch: number | BatchConfig | undefined, cuts: Observable<unknown>): BatchConfig {
  return typeof batch === 'object' ? { ...batch, cut: cuts } : { count: batch ?? 1, cut: cuts };
}
