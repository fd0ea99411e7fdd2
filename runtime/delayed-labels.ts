import type { OperatorFunction } from 'rxjs';
import { joinLabels } from '../operators/join-labels.ts';
import { StreamgradError } from '../core/errors.ts';
import { featurePredictor } from '../core/feature-time-prediction.ts';
import { absorbedRecords, type ExpiredPolicy, LabelJoin, type LabelJoinConfig, type LabelJoinCounters, type LabelJoinState, type LabelledRecord } from '../core/label-join.ts';
import type { FeatureMap } from '../core/features.ts';
import type { Normalizer } from '../core/normalizer.ts';
import type { IngestRecord, LabelStats } from '../core/record.ts';
import type { Trainer } from '../core/trainer.ts';
import { csvRecords } from '../sources/csv.ts';
import { mergeLabelled, tagLabels, topicMatcher } from '../sources/labelled.ts';
import { mergeArrivals } from '../sources/arrival-merge.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import type { CheckpointedState } from './checkpointed-state.ts';
import { ConfigError, oneLine } from './errors.ts';
import { openData } from './ndjson.ts';

/** The validated delayed-labels options. */
export interface LabelSettings {
  /** `--labels FILE|-`; undefined with `--labels-topic`. */
  readonly file?: string;
  readonly format: 'ndjson' | 'csv';
  /** `--labels-topic`: the MQTT topic filters labels come on. */
  readonly topics?: readonly string[];
  /** `--labels ingest`: labels come to the live server's `/ingest`. */
  readonly ingest?: true;
  readonly timeField?: string;
  readonly join: Omit<LabelJoinConfig, 'clock'>;
}

/** What a run with delayed labels needs: the merged records, the stage in front of ingestion, its checkpoint state. */
export interface DelayedLabels {
  readonly join: LabelJoin;
  /** Features and labels, merged into one pull source (labels marked). */
  readonly records: AsyncIterable<LabelledRecord>;
  /** `joinLabels` with the model's predictions, to put in front of ingestion. */
  readonly stage: OperatorFunction<LabelledRecord, IngestRecord>;
  /** The `labels` section of a checkpoint. */
  readonly state: CheckpointedState;
  /** The join's figures, for `/metrics` and the run's ingestion counters. */
  readonly stats: () => LabelStats;
}

/** What `openLabels` joins with: the features source and the run's live stages. */
export interface LabelInputs {
  readonly features: AsyncIterable<IngestRecord>;
  readonly trainer: Trainer;
  readonly featureMap?: FeatureMap;
  readonly normalizer?: Normalizer;
  /** A checkpoint's sections on a resume (its `labels` section, when it has one, is put back). */
  readonly resume?: Readonly<Record<string, unknown>>;
  /** Limits of the line reader (`--max-line-bytes`). */
  readonly maxLineBytes?: number;
  /** With `--labels ingest`: the records that come to `/ingest` (the server's `IngestRelay`). */
  readonly ingest?: AsyncIterable<IngestRecord>;
}

/**
 * Opens the labels stream (a file, standard input, or the labels topics of the MQTT
 * subscription the features come on), merges it with the features, and builds the join
 * in front of ingestion. A checkpoint without a `labels` section (written before delayed
 * labels existed, or by a run without them) starts with nothing waiting.
 */
export async function openLabels(settings: LabelSettings, inputs: LabelInputs): Promise<DelayedLabels> {
  let join: LabelJoin;
  try {
    join = new LabelJoin(settings.join);
  } catch (error) {
    throw new ConfigError(`--label-…: ${oneLine(error)}`, { cause: error });
  }
  const saved = inputs.resume?.labels as LabelJoinState | undefined;
  if (saved != null) {
    try {
      join.restore(saved);
    } catch (error) {
      throw new ConfigError(`--resume: ${oneLine(error)}`, { cause: error });
    }
  }
  let records: AsyncIterable<LabelledRecord>;
  if (settings.topics !== undefined) records = tagLabels(inputs.features, topicMatcher(settings.topics));
  else if (settings.ingest === true) {
    if (inputs.ingest === undefined) throw new Error('openLabels: --labels ingest needs the server\'s /ingest records');
    records = mergeArrivals(inputs.features, inputs.ingest, { waiting: () => join.stats().waiting });
  } else {
    const file = settings.file!;
    const input = await openData(file, '--labels');
    const source = file === '-' ? 'stdin' : file;
    const labels: AsyncIterable<IngestRecord> = settings.format === 'csv'
      ? csvRecords(input, { source, require: [settings.join.idField], maxLineBytes: inputs.maxLineBytes })
      : { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source, maxLineBytes: inputs.maxLineBytes }) };
    records = mergeLabelled(inputs.features, labels, settings.timeField === undefined ? {} : { timeField: settings.timeField });
  }
  const predict = featurePredictor({ trainer: inputs.trainer, ...(inputs.featureMap !== undefined && { features: inputs.featureMap }), ...(inputs.normalizer !== undefined && { normalizer: inputs.normalizer }) });
  return {
    join,
    records,
    stage: joinLabels(join, predict),
    state: labelsState(join),
    stats: () => join.stats(),
  };
}

/** The `labels` section of a checkpoint: everything waiting, with the predictions made when the features came. */
export function labelsState(join: LabelJoin): CheckpointedState {
  return {
    save: () => ({ labels: join.state() }),
    restore(sections) {
      const saved = sections.labels as LabelJoinState | undefined;
      if (saved != null) join.restore(saved);
    },
  };
}

/** Both states in one checkpoint. */
export function combineStates(a: CheckpointedState, b: CheckpointedState | undefined): CheckpointedState {
  if (b === undefined) return a;
  return {
    save: () => ({ ...a.save(), ...b.save() }),
    restore(sections) {
      a.restore(sections);
      b.restore(sections);
    },
  };
}

/**
 * Records of the source a checkpoint's `labels` section says the join took in without
 * passing them on to validation (0 without one): the source offset is what validation
 * read plus these.
 */
export function absorbedBy(sections: Readonly<Record<string, unknown>>): number {
  const saved = sections.labels as Partial<LabelJoinState> | null | undefined;
  if (saved == null || typeof saved !== 'object') return 0;
  const c = saved.counters as Partial<LabelJoinCounters> | undefined;
  const fine = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (c === undefined || !fine(c.joined) || !fine(c.dropped) || !Array.isArray(saved.pending) || !Array.isArray(saved.held)) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', 'sections.labels: needs counters (joined, dropped), pending and held', 'sections.labels');
  }
  return absorbedRecords({ joined: c.joined!, dropped: c.dropped! }, saved.pending.length + saved.held.length);
}

/** `labels: 120 joined (5 early, 7 out of order); 3 expired (…); …; 4 waiting`, for the closing lines. */
export function labelSummary(s: LabelStats, policy: ExpiredPolicy): string {
  const what = policy === 'drop' ? `${s.dropped} dropped` : policy === 'default' ? `${s.defaulted} trained with the default label` : 'dead-lettered';
  return `labels: ${s.features} features and ${s.labels} labels in; ${s.joined} joined (${s.early} early, ${s.outOfOrder} out of order); `
    + `${s.expired} expired (${what}${s.evicted > 0 ? `, ${s.evicted} pushed out of the full map` : ''}); `
    + `${s.duplicateFeatures} duplicate features, ${s.duplicateLabels} duplicate labels, ${s.unknownLabels} unknown ids, ${s.late} late labels, ${s.invalid} without a usable id; `
    + `${s.waiting} features and ${s.holding} labels waiting`;
}

/**
 * The ingestion settings of a run with delayed labels: the id field (a CSV of features
 * then needs no target columns) and, with `--labels-topic`, those topics subscribed to
 * besides the features' (one MQTT session carries both).
 */
export function withDelayedLabels<S extends { readonly mqtt?: { readonly topics: readonly string[] } }>(ingest: S, labels: LabelSettings | undefined): S {
  if (labels === undefined) return ingest;
  const delayed = { idField: labels.join.idField, ...(labels.file !== undefined && { labelsFile: labels.file }) };
  const mqtt = ingest.mqtt === undefined || labels.topics === undefined ? ingest.mqtt : { ...ingest.mqtt, topics: [...ingest.mqtt.topics, ...labels.topics] };
  return { ...ingest, delayed, ...(mqtt !== undefined && { mqtt }) };
}

/** What a checkpoint says about the labels stream, so that a resume with other labels is refused. */
export function labelsSource(labels: LabelSettings, absolute: (path: string) => string): Record<string, unknown> {
  return { labels: labels.ingest === true ? { ingest: true } : labels.file === undefined ? { topics: labels.topics } : { file: absolute(labels.file), format: labels.format, timeField: labels.timeField ?? null }, idField: labels.join.idField };
}
