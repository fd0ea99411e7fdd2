import { extname } from 'node:path';
import { DEFAULT_PENDING_CAPACITY, EXPIRED_POLICIES, type ExpiredPolicy, MAX_PENDING_CAPACITY } from '../core/label-join.ts';
import type { LabelSettings } from '../runtime/delayed-labels.ts';
import { usage } from './cli-error.ts';
import { choice, integer, integerWithin, number, type Options, type OptionSpec, text } from './options.ts';

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
  --label-default JSON the label expired features are trained with, checked at start:
                       one value per named target, e.g. '{"y":0}' or '{"weather":"sun"}';
                       for positional {"x":[...],"y":[...]} records '{"y":[0]}'
  The model predicts when the features come; the rolling metrics score that prediction
  when the label comes (delayed prequential evaluation), before the joined sample trains.
  Duplicates (SG_ERR_DUPLICATE_ID), unknown ids (SG_ERR_UNKNOWN_ID) and late labels
  (SG_ERR_LABEL_TIMEOUT) are dead letters; what waits goes into checkpoints, and at a
  stop without --checkpoint-dir it is dead-lettered (or dropped, by --label-expired).
`;

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
  const capacity = integerWithin(options, 'label-capacity', 1, MAX_PENDING_CAPACITY, DEFAULT_PENDING_CAPACITY);
  const holdCapacity = integerWithin(options, 'label-hold', 0, MAX_PENDING_CAPACITY, capacity);
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
      usage('--label-default', `must be a JSON object of the targets, e.g. '{"y":0}' (named targets) or '{"y":[0]}' (positional records), got ${JSON.stringify(rawDefault)}`);
    }
    if (typeof defaultLabel !== 'object' || defaultLabel === null || Array.isArray(defaultLabel)) usage('--label-default', `must be a JSON object of the targets, e.g. '{"y":0}' (named targets) or '{"y":[0]}' (positional records), got ${JSON.stringify(rawDefault)}`);
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

