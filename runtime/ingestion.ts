import { extname } from 'node:path';
import { countLetters, FileDeadLetters, resumeDeadLetterFile } from '../pipeline/dead-letter-file.ts';
import { afterPosition, type DeadLetter, type DeadLetterSink, skipLetters, teeDeadLetters } from '../core/dead-letter.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap, type FeatureMapState, type MissingPolicy } from '../core/features.ts';
import { preprocessingOf, preprocessingToJSON } from '../pipeline/model-artifact.ts';
import { Normalizer, type NormalizerConfig, type NormalizerState } from '../core/normalizer.ts';
import { createIngestCounters, type IngestCounters, type IngestRecord } from '../core/record.ts';
import type { SampleShape } from '../core/sample.ts';
import { type OverflowPolicy } from '../sources/bounded-queue.ts';
import { csvRecords, discoverClasses } from '../sources/csv.ts';
import { MqttSource } from '../sources/mqtt.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { interruptible } from '../sources/interruptible.ts';
import type { CheckpointedState } from './checkpointed-state.ts';
import { ConfigError, invalid, oneLine } from './errors.ts';
import { byteMeter, type ByteMeter, openData } from './ndjson.ts';
import type { RejectionLog } from './rejections.ts';

export type DataFormat = 'ndjson' | 'csv';

/** How named records become samples: the settings a command line and a config file share. */
export interface RecordSettings {
  readonly features?: readonly string[];
  readonly targets?: readonly string[];
  readonly classes?: readonly string[];
  readonly missing: MissingPolicy | Readonly<Record<string, MissingPolicy>>;
  readonly normalize: boolean;
  readonly normalizeTarget: boolean;
  /** The normaliser's warm-up and z-score clip (Infinity: none); undefined: its defaults. */
  readonly normalizeWarmup?: number;
  readonly normalizeClip?: number;
}

/** The normaliser a record source's settings ask for (`inputs`, `outputs`: the model's), or none. */
export function settingsNormalizer(settings: Pick<RecordSettings, 'normalize' | 'normalizeTarget' | 'normalizeWarmup' | 'normalizeClip'>, inputs: number, outputs: number): Normalizer | undefined {
  if (!settings.normalize) return undefined;
  const config: NormalizerConfig = {
    inputs, outputs, target: settings.normalizeTarget,
    ...(settings.normalizeWarmup !== undefined && { warmup: settings.normalizeWarmup }),
    ...(settings.normalizeClip !== undefined && { clip: settings.normalizeClip }),
  };
  return new Normalizer(config);
}

/**
 * What metrics are measured in when the target is normalised (they are mapped back to
 * its units): the target's name(s), or `target` for positional samples; undefined when
 * the target is not normalised (the metrics are then in its units anyway).
 */
export function targetUnits(records: { readonly normalizeTarget: boolean; readonly targets?: readonly string[] }): string | undefined {
  if (!records.normalizeTarget) return undefined;
  return records.targets === undefined ? 'the target' : records.targets.join(', ');
}

/** The validated ingestion options. */
export interface IngestSettings extends RecordSettings {
  readonly format: DataFormat;
  readonly deadLetter?: string;
  readonly mqtt?: { readonly url: string; readonly topics: readonly string[]; readonly capacity: number; readonly policy: OverflowPolicy; readonly clientId?: string };
  /** `--max-line-bytes`: the longest line read (undefined: the reader's default, 16 MiB). */
  readonly maxLineBytes?: number;
  /**
   * Delayed labels (`runtime/delayed-labels.ts`): the id field, and the labels file. A CSV of
   * features then holds the id and the features, not the targets (they come with the labels).
   */
  readonly delayed?: { readonly idField: string; readonly labelsFile?: string };
}

/** Everything the train command needs to ingest: the records, and what validates and normalises them. */
export interface Ingestion {
  readonly records: AsyncIterable<IngestRecord>;
  readonly features?: FeatureMap;
  readonly normalizer?: Normalizer;
  readonly deadLetters: DeadLetterSink;
  /** The --dead-letter file, when there is one (synced before each checkpoint). */
  readonly deadLetterFile?: FileDeadLetters;
  readonly counters: IngestCounters;
  /** How much of the --data file has been read (a progress bar's fraction), when it is a file or stdin. */
  readonly meter?: ByteMeter;
  /** Items the live queue dropped (0 for files). */
  readonly dropped: () => number;
  /** The MQTT subscription, when that is the source (its session and connection counters). */
  readonly mqtt?: MqttSource;
  /** Stops a live source (Ctrl-C); files end by themselves. */
  readonly stop: () => Promise<void>;
  readonly live: boolean;
}

/**
 * Opens the data source and builds the ingestion stages for a model of `shape`:
 * a bad file, a CSV header without the named columns, a feature list that does not fit
 * the model, or an unreachable broker are usage errors (exit 2) before training starts.
 */
export async function openIngestion(settings: IngestSettings, data: string | undefined, shape: SampleShape, rejections: RejectionLog, resume?: Readonly<Record<string, unknown>>): Promise<Ingestion> {
  let records: AsyncIterable<IngestRecord>;
  let features = settings.features;
  let classes = settings.classes;
  let dropped = () => 0;
  let meter: ByteMeter | undefined;
  let stop: () => Promise<void> = async () => undefined;
  let mqtt: MqttSource | undefined;
  if (settings.mqtt !== undefined) {
    const { url, topics, capacity, policy, clientId } = settings.mqtt;
    let source: MqttSource;
    try {
      source = await MqttSource.connect({ url, topics, qos: 1, queue: { capacity, policy }, ...(clientId !== undefined && { clientId }), client: { connectTimeout: 5000 } });
    } catch (error) {
      throw new ConfigError(`--mqtt ${url}: ${oneLine(error).replace(/^mqtt \S+: /, '')}`, { cause: error });
    }
    records = mqtt = source;
    dropped = () => source.queue.dropped;
    stop = () => source.close();
  } else if (settings.format === 'csv') {
    const targets = settings.targets!;
    const input = await openData(data!);
    meter = byteMeter(input);
    const header = await readCsvHeader(data!);
    // the header's own faults are the file's, named as such before anything runs: not an
    // option the user never gave (--features, from a feature list made of the header), nor
    // exit 1 after a summary of nothing (the reader finds them only once training started)
    const twice = header?.find((c, i) => header.indexOf(c) !== i);
    if (twice !== undefined) invalid(data!, `header names column ${JSON.stringify(twice)} twice (line 1); column names must be distinct`);
    if (features === undefined && header === null) invalid('--features', 'required for CSV on standard input (its header cannot be read ahead)');
    const delayed = settings.delayed;
    features ??= header!.filter((c) => !targets.includes(c) && c !== delayed?.idField);
    const required = delayed === undefined ? [...features, ...targets] : [...features, delayed.idField];
    const absent = header === null ? [] : required.filter((c) => !header.includes(c));
    if (absent.length > 0) invalid(absent.some((c) => targets.includes(c)) ? '--targets' : '--features', `no column ${absent.map((a) => JSON.stringify(a)).join(', ')} in ${data} (it has ${header!.join(', ')})`);
    // with delayed labels the class column is in the labels file (when it is a CSV file)
    const labelled = delayed === undefined ? data : delayed.labelsFile !== undefined && extname(delayed.labelsFile).toLowerCase() === '.csv' ? delayed.labelsFile : undefined;
    if (classes === undefined && shape.outputs > 1 && targets.length === 1 && labelled !== undefined && labelled !== '-') {
      classes = await discoverClasses(labelled, targets[0], { maxLineBytes: settings.maxLineBytes }).catch((error: unknown) => invalid('--classes', oneLine(error)));
    }
    records = csvRecords(input, { source: data === '-' ? 'stdin' : data, require: required, maxLineBytes: settings.maxLineBytes });
  } else {
    const input = await openData(data!);
    meter = byteMeter(input);
    records = { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source: data === '-' ? 'stdin' : data, maxLineBytes: settings.maxLineBytes }) };
  }
  if (data === '-') {
    // Ctrl-C while standard input is open but idle: the pending read is given up, so the
    // run stops at its step boundary, checkpoints and saves, instead of waiting for a line
    const reading = interruptible(records, () => process.stdin.destroy());
    records = reading.records;
    stop = async () => reading.interrupt();
  }

  let featureMap: FeatureMap | undefined;
  if (settings.targets !== undefined) {
    try {
      featureMap = new FeatureMap({ features: features!, targets: settings.targets, ...(classes !== undefined && { classes }), missing: settings.missing });
    } catch (error) {
      throw optionError(error);
    }
    const { inputs, outputs } = featureMap.shape;
    if (inputs !== shape.inputs || outputs !== shape.outputs) {
      const what = classes !== undefined ? `${classes.length} classes (${classes.join(', ')})` : `${outputs} target${outputs === 1 ? '' : 's'}`;
      invalid('--features/--targets', `${inputs} feature${inputs === 1 ? '' : 's'} and ${what} do not fit the model (${shape.inputs} inputs → ${shape.outputs} outputs)`);
    }
  }
  const sinks: DeadLetterSink[] = [rejectionSink(rejections)];
  let deadLetterFile: FileDeadLetters | undefined;
  if (settings.deadLetter !== undefined) {
    let file: FileDeadLetters;
    try {
      file = FileDeadLetters.open(settings.deadLetter, { append: resume !== undefined });
    } catch (error) {
      throw new ConfigError(`--dead-letter ${settings.deadLetter}: cannot write: ${oneLine(error).replace(/^.*cannot open: /, '')}`, { cause: error });
    }
    // a resume appends after the last complete letter, and writes none of the re-read
    // records' letters twice (the tally on stderr comes back from the checkpoint instead);
    // only once the file is open, and so locked: another writer's file is not cut
    const after = resume === undefined ? null : await resumeDeadLetterFile(settings.deadLetter).catch(() => null);
    if (after !== null && settings.delayed !== undefined) {
      // delayed labels write letters out of line order (a time-out names an earlier line): skip by count
      const accounted = (resume!.counters as { rejected?: number } | null | undefined)?.rejected ?? 0;
      sinks.push(skipLetters(file, Math.max(0, await countLetters(settings.deadLetter) - accounted)));
    } else sinks.push(after === null ? file : afterPosition(file, after));
    deadLetterFile = file;
  }
  const ingestion: Ingestion = {
    records,
    features: featureMap,
    normalizer: settingsNormalizer(settings, shape.inputs, shape.outputs),
    deadLetters: teeDeadLetters(...sinks),
    ...(deadLetterFile !== undefined && { deadLetterFile }),
    ...(meter !== undefined && { meter }),
    counters: createIngestCounters(),
    dropped,
    ...(mqtt !== undefined && { mqtt }),
    stop,
    live: settings.mqtt !== undefined,
  };
  if (resume !== undefined) {
    try {
      ingestionState(ingestion, rejections).restore(resume);
    } catch (error) {
      throw new ConfigError(`--resume: ${oneLine(error)}`, { cause: error });
    }
  }
  return ingestion;
}

/** `mqtt client sg-…: 4020 messages, 20 redelivered copies skipped; 1 disconnection, 0 sessions lost`. */
export function mqttSummary(mqtt: MqttSource): string {
  const s = mqtt.stats;
  const plural = (n: number, word: string, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;
  return `mqtt client ${mqtt.clientId}: ${plural(s.received, 'message')} received, ${plural(s.duplicates, 'redelivered copy', 'redelivered copies')} skipped${s.retainedCopies > 0 ? `, ${plural(s.retainedCopies, 'retained copy', 'retained copies')} skipped` : ''}${s.overlapCopies > 0 ? `, ${plural(s.overlapCopies, 'copy', 'copies')} by overlapping topic filters skipped` : ''}${s.unsubscribedMessages > 0 ? `, ${plural(s.unsubscribedMessages, 'message')} on topics no filter of this run matches skipped (a subscription session ${mqtt.clientId} kept)` : ''}; ${plural(s.disconnects, 'disconnection')}, ${plural(s.sessionsLost, 'session')} lost${s.sessionsLost > 0 ? ' (messages published meanwhile are lost)' : ''}`;
}

/** The learned state of the stages in front of training: what a checkpoint keeps of them. */
export interface RecordStages {
  readonly normalizer?: Normalizer;
  readonly features?: FeatureMap;
  readonly counters?: IngestCounters;
  /** Synced before each checkpoint: a crash must not lose letters of records the checkpoint accounts for. */
  readonly deadLetterFile?: FileDeadLetters;
}

/**
 * The stages' part of a checkpoint: normaliser and imputation statistics and counters,
 * so that a resumed run validates, normalises and counts exactly as the uninterrupted one.
 * A normaliser in the checkpoint but not in the run (or the other way round) is refused.
 */
export function stagesState(stages: RecordStages): CheckpointedState {
  return {
    save() {
      const { counters } = stages;
      stages.deadLetterFile?.sync();
      return {
        // what the model needs to be used (`predict --model CHECKPOINT`); derived, not restored
        preprocessing: preprocessingToJSON(preprocessingOf(stages)),
        normalizer: stages.normalizer?.state() ?? null,
        features: stages.features?.state() ?? null,
        counters: counters === undefined ? null : { ...counters, rejectedByCode: { ...counters.rejectedByCode } },
      };
    },
    restore(sections) {
      const { normalizer, features, counters } = sections as { normalizer?: NormalizerState | null; features?: FeatureMapState | null; counters?: IngestCounters | null };
      if ((normalizer ?? null) === null && stages.normalizer !== undefined) {
        throw new StreamgradError('SG_ERR_CHECKPOINT', 'the checkpoint has no normaliser statistics, but this run normalises', 'normalizer');
      }
      if (normalizer != null && stages.normalizer === undefined) {
        throw new StreamgradError('SG_ERR_CHECKPOINT', 'the checkpoint has normaliser statistics, but this run does not normalise', 'normalizer');
      }
      if (normalizer != null) stages.normalizer!.restore(normalizer);
      if (features != null && stages.features !== undefined) stages.features.restore(features);
      if (counters != null && stages.counters !== undefined) {
        const { rejectedByCode, ...counts } = counters;
        Object.assign(stages.counters, counts);
        Object.assign(stages.counters.rejectedByCode, rejectedByCode);
      }
    },
  };
}

/** `stagesState` of a `train` ingestion, plus the tally of rejected lines on stderr. */
export function ingestionState(ingestion: Ingestion, rejections: RejectionLog): CheckpointedState {
  const stages = stagesState(ingestion);
  return {
    save: () => ({ ...stages.save(), rejections: { badJson: rejections.badJson, invalid: rejections.invalid } }),
    restore(sections) {
      stages.restore(sections);
      const tally = sections.rejections as { badJson: number; invalid: number } | undefined;
      if (tally !== undefined) {
        rejections.badJson = tally.badJson;
        rejections.invalid = tally.invalid;
      }
    },
  };
}

function optionError(error: unknown): unknown {
  if (!(error instanceof StreamgradError)) return error;
  const field = error.field ?? '';
  const option = field.startsWith('missing') ? '--missing' : field.startsWith('classes') ? '--classes' : field.startsWith('targets') ? '--targets' : '--features';
  return new ConfigError(`${option}: ${error.message}`, { cause: error });
}

/** The header of a CSV file (null for standard input, which cannot be read twice). */
export async function readCsvHeader(path: string): Promise<string[] | null> {
  if (path === '-') return null;
  const { open } = await import('node:fs/promises');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const first = buffer.subarray(0, bytesRead).toString('utf8').replace(/^\ufeff/, '').split(/\r?\n/, 1)[0];
    return first.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  } finally {
    await handle.close();
  }
}

/** Reports rejections on stderr through the CLI's log (line numbers, or message ids for MQTT). */
function rejectionSink(rejections: RejectionLog): DeadLetterSink {
  return {
    write(letter: DeadLetter) {
      rejections.add(letter.line ?? letter.messageId ?? '?', new StreamgradError(letter.code, letter.message, letter.field ?? undefined));
    },
    close: () => Promise.resolve(),
  };
}
