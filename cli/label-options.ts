import { extname } from 'node:path';
import type { OperatorFunction } from 'rxjs';
import { joinLabels } from '../operators/join-labels.ts';
import { StreamgradError } from '../core/errors.ts';
import { featurePredictor } from '../core/feature-time-prediction.ts';
import { absorbedRecords, DEFAULT_PENDING_CAPACITY, EXPIRED_POLICIES, type ExpiredPolicy, LabelJoin, type LabelJoinConfig, type LabelJoinCounters, type LabelJoinState, type LabelledRecord, MAX_PENDING_CAPACITY } from '../core/label-join.ts';
import type { FeatureMap } from '../core/features.ts';
import type { Normalizer } from '../core/normalizer.ts';
import type { IngestRecord, LabelStats } from '../core/record.ts';
import type { Trainer } from '../core/trainer.ts';
import { csvRecords } from '../sources/csv.ts';
import { mergeLabelled, tagLabels, topicMatcher } from '../sources/labelled.ts';
import { mergeArrivals } from '../sources/arrival-merge.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import type { CheckpointedState } from './checkpointing.ts';
import { CliError, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { openData } from './ndjson.ts';
import { atMost, choice, integer, number, type Options, type OptionSpec, text } from './options.ts';

/** The delayed-labels options of `streamgrad train`. */
export const LABEL_SPEC: OptionSpec = {
  labels: { type: 'string' },
  'labels-topic': { type: 'string' },
  'labels-format': { type: 'string' },
  'id-field': { type: 'string' },
  'time-field': { type: 'string' },
  'label-capacity': { type: 'string' },
  'label-hold': { type: 'string' },
  'label-timeout': { type: 'string' },
  'label-timeout-seconds': { type: 'string' },
  'label-expired': { type: 'string' },
  'label-default': { type: 'string' },
};

export const LABEL_HELP = `Delayed labels (the label comes later than the features, on a stream of its own):
  --labels FILE|-      the labels: records with the id and the target(s) (NDJSON or CSV);
                       --data then holds the features with the id, and no targets
  --labels ingest      the labels come to the live server's /ingest WebSocket (needs --serve
                       and a token: Authorization: Bearer, or an auth message), as
                       {"type":"labels","labels": record or [records]} or plain records,
                       taken as they arrive; after the features end, the run waits while
                       features wait for their labels (Ctrl-C stops it)
  --labels-topic T     with --mqtt: the topic filter(s) labels come on (the rest are features)
  --id-field NAME      the field that joins a label to its features (required)
  --time-field NAME    with --labels FILE: take the records of both files in order of
                       this numeric field (a replay delivers labels as late as they came);
                       without it, the files take turns, one record each
  --labels-format F    ndjson or csv (default: csv for a .csv file, else ndjson)
  --label-capacity N   features waiting for their labels, at most (default ${DEFAULT_PENDING_CAPACITY});
                       one more pushes the oldest out, which then expires
  --label-hold N       labels that came before their features, held at most (default: the
                       capacity); 0 turns them away at once
  --label-timeout N    features expire when N more features records came before their label
  --label-timeout-seconds S  ...or S seconds of wall clock after they came (checked as records arrive)
  --label-expired P    expired features: dead-letter (default, SG_ERR_LABEL_TIMEOUT), drop
                       (counted) or default (trained with --label-default)
  --label-default JSON the label fields expired features are trained with, e.g. '{"y":[0]}'
  The model predicts when the features come; the rolling metrics score that prediction
  when the label comes (delayed prequential evaluation), before the joined sample trains.
  Duplicates (SG_ERR_DUPLICATE_ID), unknown ids (SG_ERR_UNKNOWN_ID) and late labels
  (SG_ERR_LABEL_TIMEOUT) are dead letters; what waits goes into checkpoints.
`;

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

/** Reads the delayed-labels options; undefined without `--labels` or `--labels-topic`. */
export function parseLabelOptions(options: Options, mqtt: boolean): LabelSettings | undefined {
  const file = text(options, 'labels');
  const topicList = text(options, 'labels-topic');
  if (file === undefined && topicList === undefined) {
    for (const name of Object.keys(LABEL_SPEC)) if (options.has(name)) usage(`--${name}`, 'applies to delayed labels: give --labels FILE (or --labels-topic T with --mqtt)');
    return undefined;
  }
  if (file !== undefined && topicList !== undefined) usage('--labels/--labels-topic', 'give only one');
  const ingest = file === 'ingest';
  if (ingest) {
    if (!options.has('serve') && !options.has('port')) usage('--labels', 'ingest: the labels come to the live server\'s /ingest: give --serve PORT');
    if ((text(options, 'token') ?? process.env.STREAMGRAD_TOKEN ?? '') === '') usage('--labels', 'ingest needs a token (--token or STREAMGRAD_TOKEN): /ingest takes no sender without one');
    // a file's offset cannot place a resume among labels that came live
    if (options.has('checkpoint-dir') && !mqtt) usage('--labels', 'ingest with --checkpoint-dir needs live features (--mqtt): a resume cannot tell where a file stands among labels that came live');
  }
  if (file !== undefined && !ingest && mqtt) usage('--labels', 'with --mqtt, labels come on a topic: --labels-topic T (or --labels ingest)');
  if (topicList !== undefined && !mqtt) usage('--labels-topic', 'only applies with --mqtt URL (with --data, give --labels FILE)');
  if (file === '') usage('--labels', 'must be a file path, or - for standard input');
  if (file === '-' && text(options, 'data') === '-') usage('--labels', 'standard input is already the --data: give one of them a file');
  const idField = text(options, 'id-field');
  if (idField === undefined || idField === '') usage('--id-field', 'required with delayed labels: the field that joins a label to its features');
  const timeField = text(options, 'time-field');
  if (timeField !== undefined && (file === undefined || ingest)) usage('--time-field', 'orders two files (--labels FILE); live labels come in arrival order');
  const topics = topicList?.split(',').map((t) => t.trim());
  if (topics !== undefined && topics.some((t) => t === '')) usage('--labels-topic', `must be a comma-separated list of topic filters, got ${JSON.stringify(topicList)}`);
  if (ingest && options.has('labels-format')) usage('--labels-format', 'applies to a labels file; /ingest takes JSON');
  const byExtension = file !== undefined && extname(file).toLowerCase() === '.csv' ? 'csv' : 'ndjson';
  const format = choice(options, 'labels-format', ['ndjson', 'csv'] as const, byExtension);
  const capacity = atMost(integer(options, 'label-capacity', 1, DEFAULT_PENDING_CAPACITY), 'label-capacity', MAX_PENDING_CAPACITY);
  const holdCapacity = atMost(integer(options, 'label-hold', 0, capacity), 'label-hold', MAX_PENDING_CAPACITY);
  const timeoutSamples = integer(options, 'label-timeout', 1);
  const seconds = number(options, 'label-timeout-seconds');
  if (seconds !== undefined && !(seconds > 0 && seconds <= 1e9)) usage('--label-timeout-seconds', `must be a number of seconds > 0, got ${seconds}`);
  const expired: ExpiredPolicy = choice(options, 'label-expired', EXPIRED_POLICIES, 'dead-letter');
  const rawDefault = text(options, 'label-default');
  let defaultLabel: Record<string, unknown> | undefined;
  if (rawDefault !== undefined) {
    if (expired !== 'default') usage('--label-default', 'only applies with --label-expired default');
    try {
      defaultLabel = JSON.parse(rawDefault) as Record<string, unknown>;
    } catch {
      usage('--label-default', `must be a JSON object of label fields, e.g. '{"y":[0]}', got ${JSON.stringify(rawDefault)}`);
    }
    if (typeof defaultLabel !== 'object' || defaultLabel === null || Array.isArray(defaultLabel)) usage('--label-default', `must be a JSON object of label fields, e.g. '{"y":[0]}', got ${JSON.stringify(rawDefault)}`);
  } else if (expired === 'default') usage('--label-default', 'required with --label-expired default: the label fields expired features are trained with');
  return {
    ...(file !== undefined && !ingest && { file }),
    ...(ingest && { ingest: true as const }),
    format,
    ...(topics !== undefined && { topics }),
    ...(timeField !== undefined && { timeField }),
    join: {
      idField: idField!, capacity, holdCapacity, expired,
      ...(timeoutSamples !== undefined && { timeoutSamples }),
      ...(seconds !== undefined && { timeoutMs: seconds * 1000 }),
      ...(defaultLabel !== undefined && { defaultLabel }),
    },
  };
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
    throw new CliError(`--label-…: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  }
  const saved = inputs.resume?.labels as LabelJoinState | undefined;
  if (saved != null) {
    try {
      join.restore(saved);
    } catch (error) {
      throw new CliError(`--resume: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
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
