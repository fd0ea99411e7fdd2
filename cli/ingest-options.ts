import { extname } from 'node:path';
import { countLetters, FileDeadLetters, resumeDeadLetterFile } from '../pipeline/dead-letter-file.ts';
import { afterPosition, type DeadLetter, type DeadLetterSink, skipLetters, teeDeadLetters } from '../core/dead-letter.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap, type FeatureMapState, MISSING_POLICIES, type MissingPolicy } from '../core/features.ts';
import { preprocessingOf, preprocessingToJSON } from '../pipeline/model-artifact.ts';
import { DEFAULT_NORMALIZER_CLIP, DEFAULT_NORMALIZER_WARMUP, Normalizer, type NormalizerConfig, type NormalizerState } from '../core/normalizer.ts';
import { createIngestCounters, type IngestCounters, type IngestRecord } from '../core/record.ts';
import type { SampleShape } from '../core/sample.ts';
import { MAX_QUEUE, OVERFLOW_POLICIES, type OverflowPolicy } from '../sources/bounded-queue.ts';
import { csvRecords, discoverClasses } from '../sources/csv.ts';
import { isClientId, MqttSource } from '../sources/mqtt.ts';
import { checkMaxLineBytes, MAX_LINE_BYTES_LIMIT } from '../sources/lines.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { interruptible } from '../sources/interruptible.ts';
import type { CheckpointedState } from './checkpointing.ts';
import { CliError, EXIT_USAGE, oneLine, usage } from './cli-error.ts';
import { byteMeter, type ByteMeter, openData } from './ndjson.ts';
import { atMost, choice, flag, integer, number, type Options, type OptionSpec, text } from './options.ts';
import type { RejectionLog } from './rejections.ts';

/** The ingestion options of `streamgrad train`. */
export const INGEST_SPEC: OptionSpec = {
  format: { type: 'string' },
  features: { type: 'string' },
  targets: { type: 'string' },
  classes: { type: 'string' },
  missing: { type: 'string' },
  'dead-letter': { type: 'string' },
  normalize: { type: 'boolean' },
  'normalize-target': { type: 'boolean' },
  'normalize-warmup': { type: 'string' },
  'normalize-clip': { type: 'string' },
  mqtt: { type: 'string' },
  topic: { type: 'string' },
  queue: { type: 'string' },
  overflow: { type: 'string' },
  'mqtt-client-id': { type: 'string' },
  'max-line-bytes': { type: 'string' },
};

/** The help of --max-line-bytes (train, predict, run). */
export const MAX_LINE_HELP = `  --max-line-bytes N   longest data line (or CSV record) read, in bytes (default
                       16777216 = 16 MiB, at most ${MAX_LINE_BYTES_LIMIT}); a longer one is
                       rejected (SG_ERR_LINE_TOO_LONG), skipped to its line break and never
                       held in memory
`;

export const INGEST_HELP = `Data (one of --data and --mqtt):
  --format F           ndjson or csv (default: csv for a .csv file, else ndjson)
  --features A,B,...   named inputs, in model order: CSV columns or JSON keys
                       (default for CSV: every column but the targets)
  --targets Y,...      named targets (required for CSV); with --classes, one column
                       of class labels, one-hot encoded
  --classes C1,C2,...  class labels, in output order (default for a CSV file: the
                       sorted distinct labels of the target column)
  --missing POLICY     a missing feature: reject, mean (running mean) or last (last
                       value); per feature: a=mean,b=last (others reject); default reject
  --dead-letter FILE   write every rejected line or message there as NDJSON
                       {time, code, field, message, line|messageId, raw}
  --normalize          standardise the features online (running mean and variance)
  --normalize-target   also standardise the regression target (predictions are mapped
                       back to original units); the statistics are saved in the --save
                       model (its preprocessing section) and in every checkpoint
  --normalize-warmup N samples seen before values are standardised; until then they
                       map to 0, never raw units (default ${DEFAULT_NORMALIZER_WARMUP}, at least 2)
  --normalize-clip X   clip z-scores to ±X, and to ±√n while n < X² samples have been
                       seen; none: no clipping (default ${DEFAULT_NORMALIZER_CLIP})
  --mqtt URL           train on an MQTT subscription (mqtt://host:port), QoS 1, until
                       Ctrl-C; each message one JSON sample or named record
  --topic FILTER       the topic filter(s) to subscribe to, comma-separated (with --mqtt)
  --queue N            samples the live queue holds (default 1024, at most 1048576)
  --overflow POLICY    a full queue: drop-oldest (default), drop-newest, error or block
  --mqtt-client-id ID  the MQTT session's name at the broker (default: derived from
                       --checkpoint-dir, so a restarted trainer resumes its session and
                       gets what was published meanwhile; without it, a random id)
${MAX_LINE_HELP}`;


/**
 * `--max-line-bytes N`: the line reader's bound (`sources/lines.ts`), an integer within
 * the documented range; undefined when absent (the default, 16 MiB, applies).
 */
export function maxLineBytesOption(options: Options): number | undefined {
  const value = integer(options, 'max-line-bytes', 0);
  if (value === undefined) return undefined;
  try {
    return checkMaxLineBytes(value, '--max-line-bytes');
  } catch (error) {
    return usage('--max-line-bytes', oneLine(error).replace(/^--max-line-bytes: /, ''));
  }
}

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

/** The validated ingestion options. */
export interface IngestSettings extends RecordSettings {
  readonly format: DataFormat;
  readonly deadLetter?: string;
  readonly mqtt?: { readonly url: string; readonly topics: readonly string[]; readonly capacity: number; readonly policy: OverflowPolicy; readonly clientId?: string };
  /** `--max-line-bytes`: the longest line read (undefined: the reader's default, 16 MiB). */
  readonly maxLineBytes?: number;
  /**
   * Delayed labels (`cli/label-options.ts`): the id field, and the labels file. A CSV of
   * features then holds the id and the features, not the targets (they come with the labels).
   */
  readonly delayed?: { readonly idField: string; readonly labelsFile?: string };
}

const list = (raw: string | undefined, option: string): string[] | undefined => {
  if (raw === undefined) return undefined;
  const names = raw.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) usage(option, `must be a comma-separated list of names, got ${JSON.stringify(raw)}`);
  if (new Set(names).size !== names.length) usage(option, 'names must be distinct');
  return names;
};

/** Reads the ingestion options; `data` is the --data value (undefined with --mqtt). */
export function parseIngestOptions(options: Options, data: string | undefined): IngestSettings {
  const mqttUrl = text(options, 'mqtt');
  if (mqttUrl !== undefined && data !== undefined) usage('--data/--mqtt', 'give only one source');
  if (mqttUrl === undefined) {
    for (const only of ['topic', 'queue', 'overflow', 'mqtt-client-id']) if (options.has(only)) usage(`--${only}`, 'only applies with --mqtt URL');
  } else if (options.has('max-line-bytes')) usage('--max-line-bytes', 'applies to --data (a line of a file or standard input), not to --mqtt');
  const maxLineBytes = maxLineBytesOption(options);
  const byExtension: DataFormat = data !== undefined && extname(data).toLowerCase() === '.csv' ? 'csv' : 'ndjson';
  const format = choice<DataFormat>(options, 'format', ['ndjson', 'csv'], byExtension);
  if (format === 'csv' && mqttUrl !== undefined) usage('--format', 'csv does not apply to --mqtt (payloads are JSON)');
  const features = list(text(options, 'features'), '--features');
  const targets = list(text(options, 'targets'), '--targets');
  const classes = list(text(options, 'classes'), '--classes');
  if (format === 'csv' && targets === undefined) usage('--targets', 'required for CSV data: the column(s) to predict');
  if (targets === undefined && features !== undefined) usage('--targets', 'required with --features');
  if (features === undefined && targets !== undefined && format !== 'csv') usage('--features', 'required with --targets for JSON records');
  if (classes !== undefined && targets === undefined) usage('--classes', 'needs --targets (the column of labels)');
  if (classes !== undefined && targets!.length !== 1) usage('--classes', `a categorical target is one column, got --targets ${targets!.join(',')}`);

  let missing: IngestSettings['missing'] = 'reject';
  const rawMissing = text(options, 'missing');
  if (rawMissing !== undefined) {
    if (targets === undefined) usage('--missing', 'applies to named features (--features/--targets)');
    if (!rawMissing.includes('=')) missing = choice(options, 'missing', MISSING_POLICIES, 'reject');
    else {
      const perFeature: Record<string, MissingPolicy> = {};
      for (const part of rawMissing.split(',')) {
        const [name, policy] = part.split('=').map((s) => s.trim());
        if (!name || !MISSING_POLICIES.includes(policy as MissingPolicy)) usage('--missing', `${JSON.stringify(part)}: use NAME=POLICY with ${MISSING_POLICIES.join(', ')}`);
        perFeature[name] = policy as MissingPolicy;
      }
      missing = perFeature;
    }
  }
  const deadLetter = text(options, 'dead-letter');
  if (deadLetter === '') usage('--dead-letter', 'must be a file path');
  const normalizeTarget = flag(options, 'normalize-target');
  if (normalizeTarget && classes !== undefined) usage('--normalize-target', 'is for a regression target, not class labels');
  const normalize = flag(options, 'normalize') || normalizeTarget;
  for (const only of ['normalize-warmup', 'normalize-clip']) if (options.has(only) && !normalize) usage(`--${only}`, 'only applies with --normalize or --normalize-target');
  const normalizeWarmup = integer(options, 'normalize-warmup', 2);
  const rawClip = text(options, 'normalize-clip');
  const normalizeClip = rawClip === 'none' ? Infinity : number(options, 'normalize-clip');
  if (normalizeClip !== undefined && !(normalizeClip > 0)) usage('--normalize-clip', `must be a number > 0 or none, got ${JSON.stringify(rawClip)}`);

  let mqtt: IngestSettings['mqtt'];
  if (mqttUrl !== undefined) {
    if (!/^mqtts?:\/\/[^/]+/.test(mqttUrl)) usage('--mqtt', `must be a broker URL such as mqtt://127.0.0.1:1883, got ${JSON.stringify(mqttUrl)}`);
    const topics = list(text(options, 'topic'), '--topic');
    if (topics === undefined) usage('--topic', 'required with --mqtt: the topic filter(s) to subscribe to');
    const clientId = text(options, 'mqtt-client-id');
    if (clientId !== undefined && !isClientId(clientId)) usage('--mqtt-client-id', `must be 1 to 128 printable ASCII characters without spaces, got ${JSON.stringify(clientId)}`);
    mqtt = { url: mqttUrl, topics, capacity: atMost(integer(options, 'queue', 1, 1024), 'queue', MAX_QUEUE), policy: choice(options, 'overflow', OVERFLOW_POLICIES, 'drop-oldest'), ...(clientId !== undefined && { clientId }) };
  }
  return {
    format, features, targets, classes, missing, deadLetter,
    normalize, normalizeTarget,
    ...(normalizeWarmup !== undefined && { normalizeWarmup }),
    ...(normalizeClip !== undefined && { normalizeClip }),
    ...(mqtt !== undefined && { mqtt }),
    ...(maxLineBytes !== undefined && { maxLineBytes }),
  };
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
      throw new CliError(`--mqtt ${url}: ${oneLine(error).replace(/^mqtt \S+: /, '')}`, EXIT_USAGE, { cause: error });
    }
    records = mqtt = source;
    dropped = () => source.queue.dropped;
    stop = () => source.close();
  } else if (settings.format === 'csv') {
    const targets = settings.targets!;
    const input = await openData(data!);
    meter = byteMeter(input);
    const header = await readCsvHeader(data!);
    if (features === undefined && header === null) usage('--features', 'required for CSV on standard input (its header cannot be read ahead)');
    const delayed = settings.delayed;
    features ??= header!.filter((c) => !targets.includes(c) && c !== delayed?.idField);
    const required = delayed === undefined ? [...features, ...targets] : [...features, delayed.idField];
    const absent = header === null ? [] : required.filter((c) => !header.includes(c));
    if (absent.length > 0) usage(absent.some((c) => targets.includes(c)) ? '--targets' : '--features', `no column ${absent.map((a) => JSON.stringify(a)).join(', ')} in ${data} (it has ${header!.join(', ')})`);
    // with delayed labels the class column is in the labels file (when it is a CSV file)
    const labelled = delayed === undefined ? data : delayed.labelsFile !== undefined && extname(delayed.labelsFile).toLowerCase() === '.csv' ? delayed.labelsFile : undefined;
    if (classes === undefined && shape.outputs > 1 && targets.length === 1 && labelled !== undefined && labelled !== '-') {
      classes = await discoverClasses(labelled, targets[0], { maxLineBytes: settings.maxLineBytes }).catch((error: unknown) => usage('--classes', oneLine(error)));
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
      usage('--features/--targets', `${inputs} feature${inputs === 1 ? '' : 's'} and ${what} do not fit the model (${shape.inputs} inputs → ${shape.outputs} outputs)`);
    }
  }
  const sinks: DeadLetterSink[] = [rejectionSink(rejections)];
  let deadLetterFile: FileDeadLetters | undefined;
  if (settings.deadLetter !== undefined) {
    let file: FileDeadLetters;
    try {
      file = FileDeadLetters.open(settings.deadLetter, { append: resume !== undefined });
    } catch (error) {
      throw new CliError(`--dead-letter ${settings.deadLetter}: cannot write: ${oneLine(error).replace(/^.*cannot open: /, '')}`, EXIT_USAGE, { cause: error });
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
      throw new CliError(`--resume: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
    }
  }
  return ingestion;
}

/** `mqtt client sg-…: 4020 messages, 20 redelivered copies skipped; 1 disconnection, 0 sessions lost`. */
export function mqttSummary(mqtt: MqttSource): string {
  const s = mqtt.stats;
  const plural = (n: number, word: string, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;
  return `mqtt client ${mqtt.clientId}: ${plural(s.received, 'message')} received, ${plural(s.duplicates, 'redelivered copy', 'redelivered copies')} skipped; ${plural(s.disconnects, 'disconnection')}, ${plural(s.sessionsLost, 'session')} lost${s.sessionsLost > 0 ? ' (messages published meanwhile are lost)' : ''}`;
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
  return new CliError(`${option}: ${error.message}`, EXIT_USAGE, { cause: error });
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
