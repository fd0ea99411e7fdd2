import type { OperatorFunction } from 'rxjs';
import { z } from 'zod';
import { joinLabels } from '../operators/join-labels.ts';
import { featurePredictor } from '../core/feature-time-prediction.ts';
import { FeatureMap } from '../core/features.ts';
import { DEFAULT_PENDING_CAPACITY, EXPIRED_POLICIES, labelCheck, LabelJoin, type LabelJoinConfig, type LabelledRecord, MAX_PENDING_CAPACITY } from '../core/label-join.ts';
import type { Normalizer } from '../core/normalizer.ts';
import type { DeadLetterSink } from '../core/dead-letter.ts';
import type { IngestCounters, IngestRecord } from '../core/record.ts';
import type { Trainer } from '../core/trainer.ts';
import { csvRecords } from '../sources/csv.ts';
import { interruptible } from '../sources/interruptible.ts';
import { delayLabels, type DelayLabelsOptions } from '../sources/delayed-labels.ts';
import { mergeLabelled, tagLabels, topicMatcher } from '../sources/labelled.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import type { Sample } from '../core/sample.ts';
import { absolute } from './checkpointing.ts';
import type { CheckpointedState } from './checkpointed-state.ts';
import { combineStates, labelsState } from './delayed-labels.ts';
import { openData } from './ndjson.ts';

/**
 * The `labels` section of an experiment config: delayed labels, joined by id with the
 * features the source delivers. Where they come from goes with the source's kind: a file
 * (`ndjson` or `csv`) beside a file source, `topics` on the MQTT source's broker, or, for
 * a simulated source, a simulated `delay` (sample i's label comes `delay` + up to `jitter`
 * samples later, a `lost` fraction never).
 */
export const labelsSection = z.strictObject({
  idField: z.string().min(1).optional().describe('the field that joins a label to its features (default "id" for a simulated source, else required)'),
  ndjson: z.string().min(1).optional().describe('a file of label records (relative to the config file\'s folder); - reads them from standard input (beside a file source, with one model)'),
  csv: z.string().min(1).optional().describe('a CSV file of label records'),
  topics: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional().describe('with an mqtt source: the topic filter(s) labels come on'),
  ingest: z.literal(true).optional().describe('labels come to the server\'s /ingest WebSocket, with its token (needs a server; beside a file source, one model)'),
  timeField: z.string().min(1).optional().describe('with a labels file: take the records of both files in order of this numeric field'),
  delay: z.int().min(0).optional().describe('simulated: samples between a sample\'s features and its label'),
  jitter: z.int().min(0).optional().describe('simulated: up to this many samples more, at random'),
  lost: z.number().min(0).max(1).optional().describe('simulated: the fraction of labels that never come'),
  capacity: z.int().min(1).max(MAX_PENDING_CAPACITY).optional().describe(`features waiting for their labels, at most (default ${DEFAULT_PENDING_CAPACITY})`),
  hold: z.int().min(0).max(MAX_PENDING_CAPACITY).optional().describe('labels held for features still to come, at most (default: capacity; 0 turns them away)'),
  timeoutSamples: z.int().min(1).optional().describe('features expire when this many more features records came before their label'),
  timeoutSeconds: z.number().positive().max(1e9).optional().describe('...or this many seconds of wall clock after they came'),
  expired: z.enum(EXPIRED_POLICIES).optional().describe('expired features: dead-letter (default), drop or default'),
  default: z.record(z.string(), z.unknown()).optional().describe('the label fields expired features are trained with (expired: "default"), e.g. {"y": 0} for a named target (a class name for a classifier), {"y": [0]} for positional {"x": [...], "y": [...]} records'),
});

export type LabelsConfig = z.output<typeof labelsSection>;

/** Delayed labels in a plan: where they come from and how they are joined. */
export interface LabelsPlan {
  readonly join: Omit<LabelJoinConfig, 'clock' | 'checkLabel'>;
  readonly file?: { readonly shown: string; readonly path: string; readonly format: 'ndjson' | 'csv' };
  readonly topics?: readonly string[];
  /** Labels come to the server's `/ingest`. */
  readonly ingest?: true;
  readonly timeField?: string;
  readonly simulated?: Omit<DelayLabelsOptions, 'idField' | 'seed'>;
}

/**
 * Checks a `labels` section against the source it goes with (problems are added with
 * their paths) and plans it. `kind`: the source's kind; `at` resolves a file path.
 */
export function planLabels(config: LabelsConfig, kind: string, at: (p: string) => { shown: string; path: string }, add: (path: string, message: string) => void, records?: LabelTargets): LabelsPlan | undefined {
  let ok = true;
  const problem = (path: string, message: string) => {
    add(path === '' ? 'labels' : `labels.${path}`, message);
    ok = false;
  };
  const given = (['ndjson', 'csv', 'topics', 'delay', 'ingest'] as const).filter((k) => config[k] !== undefined);
  const wanted = kind === 'simulated' ? 'delay' : kind === 'mqtt' ? 'topics or ingest' : kind === 'stdin' ? 'ingest' : kind === 'csv' || kind === 'ndjson' ? 'ndjson, csv or ingest' : null;
  if (wanted === null) problem('', `delayed labels are not supported with a ${kind} source (use a file, mqtt, stdin or simulated source)`);
  else if (given.length !== 1 || !wanted.includes(given[0])) problem(given.length === 1 ? given[0] : '', `with a ${kind} source, give exactly one of: ${wanted}`);
  if (kind !== 'simulated') {
    for (const k of ['jitter', 'lost'] as const) if (config[k] !== undefined) problem(k, 'only applies to a simulated source (with delay)');
    if (config.idField === undefined) problem('idField', 'required: the field that joins a label to its features');
  }
  if (config.timeField !== undefined && config.ndjson === undefined && config.csv === undefined) problem('timeField', 'orders a labels file with the source file');
  const defaultGiven = (config.expired === 'default') === (config.default !== undefined);
  if (!defaultGiven) problem('default', config.default === undefined ? 'required with expired: "default"' : 'only applies with expired: "default"');
  else if (config.default !== undefined && records !== undefined) {
    const wrong = defaultLabelProblem(config.default, records);
    if (wrong !== null) problem('default', wrong);
  }
  // the id joins a label to its features: a target (or a feature) as the id would be a value
  // the join takes apart, not a name both records carry
  const idField = config.idField ?? 'id';
  const role = records?.targets?.includes(idField) ? 'a target' : records?.features?.includes(idField) ? 'a feature' : null;
  if (role !== null) problem('idField', `${JSON.stringify(idField)} is ${role}: the id must be a field of its own, which both the features and the labels carry`);
  if (!ok) return undefined;
  const join: LabelsPlan['join'] = {
    idField: config.idField ?? 'id',
    capacity: config.capacity ?? DEFAULT_PENDING_CAPACITY,
    holdCapacity: config.hold ?? config.capacity ?? DEFAULT_PENDING_CAPACITY,
    expired: config.expired ?? 'dead-letter',
    ...(config.timeoutSamples !== undefined && { timeoutSamples: config.timeoutSamples }),
    ...(config.timeoutSeconds !== undefined && { timeoutMs: config.timeoutSeconds * 1000 }),
    ...(config.default !== undefined && { defaultLabel: config.default }),
  };
  const file = config.ndjson ?? config.csv;
  return {
    join,
    // `-`: the labels come on standard input, beside a file of features (`train --labels -`)
    ...(file !== undefined && { file: { ...(file === '-' ? { shown: '-', path: '-' } : at(file)), format: config.csv !== undefined ? 'csv' : 'ndjson' } }),
    ...(config.topics !== undefined && { topics: typeof config.topics === 'string' ? [config.topics] : config.topics }),
    ...(config.ingest === true && { ingest: true as const }),
    ...(config.timeField !== undefined && { timeField: config.timeField }),
    ...(config.delay !== undefined && { simulated: { delay: config.delay, ...(config.jitter !== undefined && { jitter: config.jitter }), ...(config.lost !== undefined && { lost: config.lost }) } }),
  };
}

/** What the records carry as targets: named fields (with their classes), or positional `{x, y}` samples (`targets` undefined). */
export interface LabelTargets {
  readonly features?: readonly string[];
  readonly targets?: readonly string[];
  readonly classes?: readonly string[];
  /** The number of outputs, when known (null: positional records of a size the models fix). */
  readonly shape: { readonly outputs: number } | null;
}

/**
 * What is wrong with a default label (`labels.default`, `--label-default`) for these
 * records, or null. It is checked at start, as a label record would be at each expiry:
 * a default the records cannot take would otherwise fail at every expiry, each one
 * dead-lettered while the summary counted it as trained with the default label.
 * Named targets take one value each (a number, or a class name); positional records a
 * `y` array of numbers; a field that is not a target is refused (the join keeps only the
 * targets of a label, so it would never be used).
 *
 * @example
 * defaultLabelProblem({ y: [0] }, { targets: ['y'], shape: { outputs: 1 } }); // 'y: must be a number, got an array (…)'
 * defaultLabelProblem({ y: 0 }, { targets: ['y'], shape: { outputs: 1 } }); // null
 */
export function defaultLabelProblem(label: Readonly<Record<string, unknown>>, records: LabelTargets): string | null {
  const { targets } = records;
  const fields = targets ?? ['y'];
  const extra = Object.keys(label).filter((k) => !fields.includes(k));
  if (extra.length > 0) return `${extra.map((k) => JSON.stringify(k)).join(', ')} ${extra.length === 1 ? 'is not a target' : 'are not targets'} (the targets: ${fields.join(', ')}); give ${example(records)}`;
  const absent = fields.filter((k) => !Object.hasOwn(label, k));
  if (absent.length > 0) return `lacks the target${absent.length === 1 ? '' : 's'} ${absent.map((k) => JSON.stringify(k)).join(', ')}; give ${example(records)}`;
  if (targets === undefined) {
    const y = label.y;
    const outputs = records.shape?.outputs;
    if (!Array.isArray(y) || !y.every((v) => typeof v === 'number' && Number.isFinite(v))) return `y: must be an array of finite numbers (positional {"x": [...], "y": [...]} records), got ${JSON.stringify(y)}; give ${example(records)}`;
    if (outputs !== undefined && y.length !== outputs) return `y: has ${y.length} value${y.length === 1 ? '' : 's'}, the model has ${outputs} outputs; give ${example(records)}`;
    return null;
  }
  // the targets as the training records' own check reads them (a class name, a finite number)
  // (one stand-in feature: a FeatureMap needs one, and a label brings none)
  const stand = '\u0000feature';
  const map = new FeatureMap({ features: [stand], targets, ...(records.classes !== undefined && { classes: records.classes }) });
  const result = map.map({ ...label, [stand]: 0 });
  if (result.error === undefined) return null;
  const got = result.error.message;
  const hint = Object.values(label).some(Array.isArray) ? ` (named targets take one value each; '{"y":[0]}' is for positional {"x": [...], "y": [...]} records)` : '';
  return `${got}${hint}; give ${example(records)}`;
}

/** A default label these records take, for a message. */
function example(records: LabelTargets): string {
  if (records.targets === undefined) return `e.g. ${JSON.stringify({ y: Array(records.shape?.outputs ?? 1).fill(0) })}`;
  if (records.classes !== undefined) return `e.g. ${JSON.stringify({ [records.targets[0]]: records.classes[0] })}`;
  return `e.g. ${JSON.stringify(Object.fromEntries(records.targets.map((t) => [t, 0])))}`;
}

/** What a checkpoint records of the labels (a resume with other labels is refused). */
export function checkpointLabels(labels: LabelsPlan): Record<string, unknown> {
  return { labels: { ...labels.join, file: labels.file === undefined ? null : absolute(labels.file.path), topics: labels.topics ?? null, timeField: labels.timeField ?? null, simulated: labels.simulated ?? null, ...(labels.ingest === true && { ingest: true }) } };
}

/**
 * One model's reader of a file source, merged with its own reader of the labels file, and
 * how to give up the labels' pending read: labels on standard input (`--labels -`) may be
 * open and idle, and a stop must not wait for a line that may never come (`interruptible`).
 */
export async function mergedReader(labels: LabelsPlan, features: AsyncIterable<IngestRecord>, maxLineBytes?: number, wrapLabels: (labels: AsyncIterable<IngestRecord>) => AsyncIterable<IngestRecord> = (l) => l): Promise<{ readonly records: AsyncIterable<LabelledRecord>; readonly interrupt: () => void }> {
  const file = labels.file!;
  // opened by the name shown (relative to the working folder): a message names it as the person wrote it
  const input = await openData(file.shown, `labels.${file.format}`);
  let reader: AsyncIterable<IngestRecord> = file.format === 'csv'
    ? csvRecords(input, { source: file.shown, require: [labels.join.idField], maxLineBytes })
    : { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source: file.shown, maxLineBytes }) };
  let interrupt = () => undefined as void;
  if (file.path === '-') {
    const reading = interruptible(reader, () => process.stdin.destroy());
    reader = reading.records;
    interrupt = () => reading.interrupt();
  }
  return { records: mergeLabelled(features, wrapLabels(reader), labels.timeField === undefined ? {} : { timeField: labels.timeField }), interrupt };
}

/** The MQTT subscription's records, labels (on `labels.topics`) marked. */
export const taggedLive = (labels: LabelsPlan, records: AsyncIterable<IngestRecord>): AsyncIterable<LabelledRecord> => tagLabels(records, topicMatcher(labels.topics!));

/** A simulated stream as features now and labels later (seeded like the stream). */
export const simulatedLabels = (labels: LabelsPlan, samples: Iterable<Sample>, seed: number): Iterable<LabelledRecord> => delayLabels(samples, { ...labels.simulated!, seed, idField: labels.join.idField });

/** A model's join and the stage in front of its ingestion (predictions made with its own trainer). */
export function joinStage(labels: LabelsPlan, trainer: Trainer, features?: FeatureMap, normalizer?: Normalizer): { join: LabelJoin; stage: OperatorFunction<LabelledRecord, IngestRecord> } {
  // a label brings the targets only: training sees the features the prediction was made with;
  // a waiting record keeps only the inputs (a field the model ignores may be megabytes), and a
  // label held for features still to come only targets that passed training's own check
  const join = new LabelJoin({ ...labels.join, labelFields: features?.targets ?? ['y'], keepFields: features?.features ?? ['x'], checkLabel: labelCheck(trainer.model.outputSize, features) });
  const predict = featurePredictor({ trainer, ...(features !== undefined && { features }), ...(normalizer !== undefined && { normalizer }) });
  return { join, stage: joinLabels(join, predict) };
}

/** A feed's checkpoint state with its join's, when it joins labels. */
export function withLabelsState(state: CheckpointedState, join: LabelJoin | undefined): CheckpointedState {
  return join === undefined ? state : combineStates(state, labelsState(join));
}

/**
 * One dead-letter sink for several models that join labels on one stream: every model
 * turns away the same records in the same order (the join does not depend on the
 * predictions), but not in line order (a time-out names a features line long past), so
 * letters are told apart by their number in a model's sequence (its `counters.rejected`,
 * counted before the letter is written) rather than by position: letter k is written by
 * the first model to reach it. `already`: the letters a resumed run's file holds.
 */
export function lettersOnce(sink: DeadLetterSink, already = 0): (counters: IngestCounters) => DeadLetterSink {
  let written = already;
  return (counters) => ({
    write(letter) {
      if (counters.rejected <= written) return;
      written = counters.rejected;
      sink.write(letter);
    },
    close: () => Promise.resolve(),
  });
}

/** `labels: delayed, joined by "id" ...`, for `run --check`. */
export function describeLabels(labels: LabelsPlan): string {
  const j = labels.join;
  const from = labels.file !== undefined ? `from ${labels.file.shown}${labels.timeField === undefined ? ' (taking turns with the source)' : ` (in order of ${JSON.stringify(labels.timeField)})`}`
    : labels.topics !== undefined ? `on ${labels.topics.join(', ')}`
    : labels.ingest === true ? 'at the server\'s /ingest, as they arrive'
    : `simulated ${labels.simulated!.delay}${labels.simulated!.jitter ? `-${labels.simulated!.delay + labels.simulated!.jitter}` : ''} samples late${labels.simulated!.lost ? `, ${labels.simulated!.lost * 100}% lost` : ''}`;
  const timeout = [j.timeoutSamples === undefined ? '' : `${j.timeoutSamples} features records`, j.timeoutMs === undefined ? '' : `${j.timeoutMs / 1000} s`].filter(Boolean).join(' or ');
  return `labels: delayed, ${from}, joined by ${JSON.stringify(j.idField)}; at most ${j.capacity} features waiting and ${j.holdCapacity} labels held${timeout === '' ? '' : `; time-out ${timeout}`}; expired: ${j.expired}; scored on the predictions made when the features came`;
}
