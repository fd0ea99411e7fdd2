import { Observable, type OperatorFunction } from 'rxjs';
import { type DeadLetter, deadLetter, type DeadLetterSink } from '../core/dead-letter.ts';
import { requireConfig, StreamgradError } from '../core/errors.ts';
import type { FeatureMap } from '../core/features.ts';
import type { IngestCounters, IngestRecord } from '../core/record.ts';
import { checkSample, type Sample, type SampleShape, type TracedSample } from '../core/sample.ts';
import type { JoinedRecord } from '../core/label-join.ts';

/** Options of `validateRecords`. */
export interface ValidateRecordsOptions {
  /** How many features and targets the model takes. */
  readonly shape: SampleShape;
  /**
   * Maps named records (CSV rows, JSON objects) to ordered vectors. Without it, records
   * must be positional samples `{x: [...], y: [...]}`.
   */
  readonly features?: FeatureMap;
  /** Where rejected records go, each as one `DeadLetter`. */
  readonly deadLetters?: DeadLetterSink;
  /** Totals to keep (read, accepted, rejected by code, unknown keys, imputed). */
  readonly counters?: IngestCounters;
  /** Called for every rejection after the dead letter is written. */
  readonly onReject?: (letter: DeadLetter, error: StreamgradError) => void;
  /** Time stamps of dead letters (default `new Date()`). */
  readonly clock?: () => Date;
}

/**
 * The validation stage of ingestion: turns source records into samples the model
 * takes, and every record it cannot into a dead letter with its typed code, the field,
 * and its origin (line number or message id, the raw text); the stream goes on.
 *
 * Records a source could not parse (`SG_ERR_BAD_JSON`) arrive with their error. Named
 * records go through the `FeatureMap` (missing policy, unknown keys, one-hot classes),
 * positional ones through `checkSample`; both then must fit `shape`. Nothing is
 * coerced, padded or truncated, so every record read is either emitted once or
 * rejected once: `accepted + rejected = read`. A sample carries its record's `origin`
 * (line number or message id), so that per-sample output can name it.
 *
 * A dead-letter sink that throws (a full disk) errors the stream: a rejection is never
 * lost silently.
 *
 * @example
 * csvRecords('weather.csv').pipe(
 *   validateRecords({ shape, features, deadLetters: FileDeadLetters.open('bad.ndjson'), counters }),
 *   train(trainer),
 * )
 * @see validate the engine's check of positional samples (inside `train`)
 */
export function validateRecords(options: ValidateRecordsOptions): OperatorFunction<IngestRecord, TracedSample> {
  const { shape, features, deadLetters, counters, onReject, clock } = options;
  if (features !== undefined) {
    requireConfig(
      features.shape.inputs === shape.inputs && features.shape.outputs === shape.outputs, 'features',
      `${features.features.length} features → ${features.shape.outputs} targets do not fit a model of ${shape.inputs} inputs → ${shape.outputs} outputs`,
    );
  }
  return (source) =>
    new Observable<TracedSample>((subscriber) =>
      source.subscribe({
        next(record) {
          if (counters !== undefined) counters.read++;
          let sample: Sample | null = null;
          let error: StreamgradError | null;
          if (record.error !== undefined) error = record.error;
          else if (features !== undefined) {
            const result = features.map(record.value, record.text === true, counters);
            error = result.error ?? checkSample(result.sample, shape);
            sample = result.sample ?? null;
          } else if (record.text === true) {
            error = new StreamgradError('SG_ERR_TYPE', 'record: a row of named text cells needs a feature list (features and targets)', 'record');
          } else {
            error = checkSample(record.value, shape);
            sample = record.value as Sample;
          }
          if (error === null) {
            if (counters !== undefined) counters.accepted++;
            // a new object that names its record: per-sample output (`--predictions`) says which line it was
            // a joined delayed-labels record brings the prediction made when its features came (`joinLabels`)
            const prediction = (record as JoinedRecord).prediction;
            subscriber.next(prediction === undefined ? { x: sample!.x, y: sample!.y, origin: record.origin } : { x: sample!.x, y: sample!.y, origin: record.origin, prediction });
            return;
          }
          if (counters !== undefined) {
            counters.rejected++;
            counters.rejectedByCode[error.code] = (counters.rejectedByCode[error.code] ?? 0) + 1;
          }
          try {
            const letter = deadLetter(error, record.origin, clock?.());
            deadLetters?.write(letter);
            onReject?.(letter, error);
          } catch (failure) {
            subscriber.error(failure);
          }
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      }),
    );
}
