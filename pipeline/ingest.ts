import { type OperatorFunction, pipe } from 'rxjs';
import { normalize } from '../operators/normalize.ts';
import { validateRecords } from '../operators/validate-record.ts';
import type { DeadLetter, DeadLetterSink } from '../core/dead-letter.ts';
import type { StreamgradError } from '../core/errors.ts';
import type { FeatureMap } from '../core/features.ts';
import type { Normalizer } from '../core/normalizer.ts';
import type { IngestCounters, IngestRecord } from '../core/record.ts';
import type { TracedSample } from '../core/sample.ts';
import type { Trainer } from '../core/trainer.ts';

/** Options of `ingest`. */
export interface IngestOptions {
  /** The trainer the samples are for: its shape; its `rejected` counter counts ingestion rejections too. */
  readonly trainer: Trainer;
  /** Named records → ordered vectors; without it records must be `{x, y}`. */
  readonly features?: FeatureMap;
  /** Standardise features (and the target) with running statistics before training. */
  readonly normalizer?: Normalizer;
  readonly deadLetters?: DeadLetterSink;
  readonly counters?: IngestCounters;
  readonly onReject?: (letter: DeadLetter, error: StreamgradError) => void;
}

/**
 * The ingestion stages in front of `train`: `validateRecords` (typed rejections to the
 * dead letters, feature mapping, missing policy) then, when asked, `normalize`
 * (prequential running standardisation). Works as an operator over an Observable of
 * records and as a `TrainingRun`'s `prepare` over a pull source.
 *
 * @example
 * csvFile('weather.csv').pipe(ingest({ trainer, features, normalizer, deadLetters }), train(trainer))
 */
export function ingest(options: IngestOptions): OperatorFunction<IngestRecord, TracedSample> {
  const { trainer, features, normalizer, deadLetters, counters, onReject } = options;
  const validation = validateRecords({
    shape: trainer.shape,
    features,
    deadLetters,
    counters,
    onReject: (letter, error) => {
      trainer.counters.rejected++;
      onReject?.(letter, error);
    },
  });
  return normalizer === undefined ? validation : pipe(validation, normalize(normalizer));
}
