import { extname } from 'node:path';
import { DEFAULT_NORMALIZER_CLIP, DEFAULT_NORMALIZER_WARMUP } from '../core/normalizer.ts';
import { MISSING_POLICIES, type MissingPolicy } from '../core/features.ts';
import { MAX_QUEUE, OVERFLOW_POLICIES } from '../sources/bounded-queue.ts';
import { isClientId } from '../sources/mqtt.ts';
import { checkMaxLineBytes, MAX_LINE_BYTES_LIMIT } from '../sources/lines.ts';
import type { DataFormat, IngestSettings } from '../runtime/ingestion.ts';
import { oneLine, usage } from './cli-error.ts';
import { atMost, choice, flag, integer, number, type Options, type OptionSpec, text } from './options.ts';

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
      // null prototype: `__proto__=mean` is a feature's policy like any other, not the object's prototype
      const perFeature = Object.create(null) as Record<string, MissingPolicy>;
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

