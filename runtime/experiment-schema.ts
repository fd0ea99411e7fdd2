import { z } from 'zod';
import { type Activation, ACTIVATIONS } from '../core/activations.ts';
import { BACKENDS } from '../core/backend.ts';
import { DRIFT_SIGNALS, type DriftConfig, driftSettings, REACTIONS } from '../pipeline/drift-adaptation.ts';
import { DETECTOR_KINDS } from '../core/drift/detector.ts';
import { createDivergenceGuard } from '../core/divergence.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap, MISSING_POLICIES } from '../core/features.ts';
import { DEFAULT_INIT, INIT_SCHEMES } from '../core/init.ts';
import { checkLossFits, LOSSES } from '../core/losses.ts';
import { checkTopology, type Topology } from '../core/model.ts';
import { OPTIMIZERS, type OptimizerSettings, optimizerSettings, type OptimizerType } from '../core/optimizers.ts';
import { batch } from '../operators/batch.ts';
import { resolveOptions } from '../server/options.ts';
import { MAX_WINDOW } from '../core/rolling-mean.ts';
import { checkBatchFits } from '../core/workspace.ts';
import { MAX_QUEUE, OVERFLOW_POLICIES } from '../sources/bounded-queue.ts';
import { MAX_LINE_BYTES_LIMIT, MIN_LINE_BYTES_LIMIT } from '../sources/lines.ts';
import { isClientId } from '../sources/mqtt.ts';
import { ConfigError } from './errors.ts';
import { MAX_TIMER_SECONDS } from './timer-limit.ts';
import { generate, GENERATOR_NAMES, GENERATORS } from './experiment-generators.ts';
import { labelsSection } from './experiment-labels.ts';
import { parseLayers } from './layers.ts';
import { nearest } from './suggest.ts';

/**
 * The schema of an experiment file (`streamgrad run experiment.json`), in zod 4.
 *
 * Objects are strict (an unknown key is an error naming its path), and the allowed values
 * come from the engine's own lists (`ACTIVATIONS`, `LOSSES`, `OPTIMIZERS`, ...). Ranges
 * and cross-field rules are the engine's own checks, run inside the schema
 * (`checkTopology`, `checkLossFits`, `optimizerSettings`, `batch`, `FeatureMap`, the
 * generators, the server's `resolveOptions`), so a config is held to exactly what the
 * engine will accept, and every problem in it is reported at once, each with its path:
 * `models[0].layers[1].activation: unknown value "relux"; use linear, sigmoid, ...`.
 */

// ---------------------------------------------------------------------------------------
// engine checks inside the schema

/** What the checks need of zod's refinement context. */
interface Ctx {
  addIssue(issue: { code: 'custom'; message: string; path?: PropertyKey[]; input: unknown }): void;
}

/** The message of a `requireConfig` error without its `field: ` prefix. */
function detail(error: StreamgradError): string {
  const prefix = `${error.field}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}

/**
 * Runs an engine check; a `StreamgradError` becomes an issue at the path `where` gives for
 * its field (relative to the value being refined).
 */
function engine(ctx: Ctx, check: () => void, where: (field: string) => PropertyKey[] = () => []): void {
  try {
    check();
  } catch (error) {
    if (!(error instanceof StreamgradError)) throw error;
    ctx.addIssue({ code: 'custom', message: detail(error), path: where(error.field ?? ''), input: undefined });
  }
}

/** `layers[1].activation` → `['layers', 1, 'activation']`. */
function fieldPath(field: string): PropertyKey[] {
  const path: PropertyKey[] = [];
  for (const [, key, index] of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) path.push(index !== undefined ? Number(index) : key);
  return path;
}

const distinct = (list: readonly string[], ctx: Ctx) => {
  const seen = new Set<string>();
  list.forEach((name, i) => {
    if (seen.has(name)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(name)} is listed twice`, path: [i], input: name });
    seen.add(name);
  });
};

// ---------------------------------------------------------------------------------------
// source

const file = z.string().min(1).describe('a file path (relative to the config file\'s folder)');
const names = z.array(z.string().min(1)).min(1).superRefine(distinct);

/** What every record source (files, stdin, MQTT) takes: named fields, missing values, dead letters, normalisation. */
const recordFields = {
  features: names.optional().describe('the model\'s inputs, in order: CSV columns or JSON keys'),
  targets: names.optional(),
  classes: names.optional(),
  missing: z.union([z.enum(MISSING_POLICIES), z.record(z.string(), z.enum(MISSING_POLICIES))]).optional(),
  deadLetter: file.optional(),
  normalize: z.boolean().optional(),
  normalizeTarget: z.boolean().optional(),
  ...normalizerFields(),
};

/** The normaliser's settings, as `--normalize-warmup` and `--normalize-clip` (see `NormalizerConfig`). */
function normalizerFields() {
  return {
    normalizeWarmup: z.int().min(2).optional().describe('samples seen before values are standardised (until then they map to 0)'),
    normalizeClip: z.union([z.number().positive(), z.literal('none')]).optional().describe('clip z-scores to ±X (and to ±√n while n < X²); "none": no clipping'),
  };
}

/** The normaliser's settings only mean something with `normalize` or `normalizeTarget`. */
function checkNormalizerFields(s: { normalize?: boolean; normalizeTarget?: boolean; normalizeWarmup?: number; normalizeClip?: unknown }, ctx: Ctx): void {
  if (s.normalize === true || s.normalizeTarget === true) return;
  for (const key of ['normalizeWarmup', 'normalizeClip'] as const) {
    if (s[key] !== undefined) ctx.addIssue({ code: 'custom', message: 'only applies with normalize or normalizeTarget', path: [key], input: s[key] });
  }
}

interface RecordFields {
  readonly features?: readonly string[];
  readonly targets?: readonly string[];
  readonly classes?: readonly string[];
  readonly missing?: unknown;
  readonly normalize?: boolean;
  readonly normalizeTarget?: boolean;
  readonly normalizeWarmup?: number;
  readonly normalizeClip?: unknown;
}

/** The rules `streamgrad train` applies to --features/--targets/--classes/--missing, and the `FeatureMap`'s own checks. */
function checkRecordFields(s: RecordFields, ctx: Ctx, format: 'csv' | 'json', fromStdin = false): void {
  checkNormalizerFields(s, ctx);
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', message, path: [path], input: undefined });
  if (s.targets === undefined) {
    if (format === 'csv') issue('targets', 'required for CSV data: the column(s) to predict');
    else if (s.features !== undefined) issue('targets', 'required with features');
    if (s.classes !== undefined) issue('classes', 'needs targets (the column of labels)');
    if (s.missing !== undefined) issue('missing', 'applies to named features (features and targets)');
    return;
  }
  if (s.features === undefined && format !== 'csv') issue('features', 'required with targets for JSON records');
  if (s.features === undefined && fromStdin) issue('features', 'required for CSV on standard input (its header cannot be read ahead)');
  if (s.classes !== undefined && s.targets.length !== 1) issue('classes', `a categorical target is one column, got targets ${s.targets.join(', ')}`);
  if (s.normalizeTarget === true && s.classes !== undefined) issue('normalizeTarget', 'is for a regression target, not class labels');
  if (s.features !== undefined) {
    engine(ctx, () => new FeatureMap({
      features: s.features!, targets: s.targets!,
      ...(s.classes !== undefined && { classes: s.classes }),
      ...(s.missing !== undefined && { missing: s.missing as never }),
    }), fieldPath);
  }
}

const replay = z.strictObject({
  timeField: z.string().min(1).describe('the field holding each record\'s time'),
  speed: z.number().positive().describe('1 replays at the recorded pace, N at N times that pace'),
  unit: z.enum(['ms', 's']).optional(),
  maxGapMs: z.number().positive().optional(),
});

/** The line reader's bound (`--max-line-bytes`): sources that read lines (files, standard input). */
const maxLineBytes = z.int().min(MIN_LINE_BYTES_LIMIT).max(MAX_LINE_BYTES_LIMIT).optional()
  .describe('the longest line (or CSV record) read, in bytes (default 16 MiB); a longer one is rejected as SG_ERR_LINE_TOO_LONG');

const csvSource = z.strictObject({
  csv: file,
  delimiter: z.string().length(1).optional(),
  replay: replay.optional(),
  maxLineBytes,
  ...recordFields,
}).superRefine((s, ctx) => checkRecordFields(s, ctx, 'csv'));

const ndjsonSource = z.strictObject({
  ndjson: file,
  replay: replay.optional(),
  maxLineBytes,
  ...recordFields,
}).superRefine((s, ctx) => checkRecordFields(s, ctx, 'json'));

const stdinSource = z.strictObject({
  stdin: z.enum(['ndjson', 'csv']),
  maxLineBytes,
  ...recordFields,
}).superRefine((s, ctx) => checkRecordFields(s, ctx, s.stdin === 'csv' ? 'csv' : 'json', s.stdin === 'csv'));

const mqttSource = z.strictObject({
  mqtt: z.strictObject({
    url: z.string().regex(/^mqtts?:\/\/[^/]+/, { error: (iss) => `must be a broker URL such as mqtt://127.0.0.1:1883, got ${JSON.stringify(iss.input)}` }),
    topics: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    queue: z.int().min(1).max(MAX_QUEUE).optional(),
    overflow: z.enum(OVERFLOW_POLICIES).optional(),
    qos: z.literal([0, 1, 2]).optional(),
    clientId: z.string().refine(isClientId, { error: (iss) => `must be 1 to 128 printable ASCII characters without spaces, got ${JSON.stringify(iss.input)}` }).optional()
      .describe('the MQTT session name at the broker (default: derived from checkpoints.dir, else random)'),
  }),
  ...recordFields,
}).superRefine((s, ctx) => checkRecordFields(s, ctx, 'json'));

/** The fastest pace a simulated stream's `rate` asks for (samples a second); faster is `rate` left out: as fast as training goes. */
export const MAX_SIMULATED_RATE = 1_000_000;

const simulatedFields = {
  seed: z.int().optional(),
  rate: z.number().positive().max(MAX_SIMULATED_RATE).optional().describe('samples a second: the stream is paced, so a person can follow the dashboard (default: as fast as training goes)'),
  samples: z.int().min(1).optional().describe('how many samples the stream has (default: endless)'),
  normalize: z.boolean().optional(),
  normalizeTarget: z.boolean().optional(),
  ...normalizerFields(),
};

const simulatedSource = z.discriminatedUnion('simulated', GENERATOR_NAMES.map((name) => {
  const own = Object.fromEntries(Object.entries(GENERATORS[name].options).map(([key, schema]) => [key, (schema as z.ZodType).optional()]));
  return z.strictObject({ simulated: z.literal(name), ...simulatedFields, ...own }).superRefine((s, ctx) => {
    // the generator's own checks (ranges, noise ≥ 0, ...), by drawing one sample
    checkNormalizerFields(s as Parameters<typeof checkNormalizerFields>[0], ctx);
    const { simulated: _name, seed = 0, samples: _samples, rate: _rate, normalize: _n, normalizeTarget: _t, normalizeWarmup: _w, normalizeClip: _c, ...options } = s as Record<string, unknown> & { seed?: number };
    engine(ctx, () => generate(name, options, seed, 1).next(), (field) => (field === 'limit' ? ['samples'] : field.split('.')));
  });
}) as unknown as [z.ZodObject, ...z.ZodObject[]]);

/** The keys that say what kind of source a `source` object is; it must have exactly one. */
export const SOURCE_KINDS = ['csv', 'ndjson', 'stdin', 'mqtt', 'simulated'] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

const SOURCES = { csv: csvSource, ndjson: ndjsonSource, stdin: stdinSource, mqtt: mqttSource, simulated: simulatedSource } as const;

const SOURCE_HINT = `{"csv": FILE}, {"ndjson": FILE}, {"stdin": "ndjson"|"csv"}, {"mqtt": {"url": ..., "topics": ...}} or {"simulated": ${GENERATOR_NAMES.map((n) => JSON.stringify(n)).join('|')}}`;

/**
 * The source schema for a raw `source` value: the one of its kind (so that errors are
 * about that kind's fields), or one that says which kind keys are allowed.
 */
function sourceSchemaFor(raw: unknown): z.ZodType {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return z.object({}).describe(`where the samples come from: ${SOURCE_HINT}`);
  const kinds = SOURCE_KINDS.filter((k) => Object.hasOwn(raw, k));
  if (kinds.length === 1) return SOURCES[kinds[0]];
  const message = kinds.length === 0 ? `needs one of the keys ${SOURCE_KINDS.join(', ')}: ${SOURCE_HINT}` : `give only one of ${kinds.join(', ')}`;
  return z.custom(() => false, { error: message });
}

// ---------------------------------------------------------------------------------------
// models

/** Which optimizer reads which setting (checked against the engine's types). */
const OPTIMIZER_SETTINGS = {
  sgd: [],
  momentum: ['momentum'],
  adam: ['beta1', 'beta2', 'epsilon'],
  rmsprop: ['alpha', 'epsilon'],
  adagrad: ['epsilon'],
} as const satisfies Record<OptimizerType, readonly Exclude<keyof OptimizerSettings, 'type'>[]>;

export const DEFAULT_LEARNING_RATE = 0.01;

const optimizer = z.discriminatedUnion('type', OPTIMIZERS.map((type) => z.strictObject({
  type: z.literal(type),
  lr: z.number().optional().describe('learning rate'),
  ...Object.fromEntries(OPTIMIZER_SETTINGS[type].map((key) => [key, z.number().optional()])),
})) as unknown as [z.ZodObject, ...z.ZodObject[]]).superRefine((o, ctx) => {
  const { type, lr = DEFAULT_LEARNING_RATE, ...rest } = o as { type: OptimizerType; lr?: number } & Record<string, number>;
  engine(ctx, () => optimizerSettings({ type, learningRate: lr, ...rest } as never), (field) => {
    const key = field.replace(/^optimizer\.?/, '');
    return [key === '' ? 'type' : key === 'learningRate' ? 'lr' : key];
  });
});

/** A structured layer: `{"units": 16, "activation": "relu"}`. */
const layer = z.strictObject({ units: z.int(), activation: z.enum(ACTIVATIONS) }); // units ≥ 1: checkTopology

const layers = z.union([
  z.string().superRefine((spec, ctx) => {
    try {
      parseLayers(spec, 'layers');
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      ctx.addIssue({ code: 'custom', message: error.message.replace(/^layers: /, ''), input: spec });
    }
  }).describe('a layers spec like "3,16:relu,1:linear"'),
  z.array(layer).min(1).superRefine((list, ctx) => {
    engine(ctx, () => checkTopology({ inputSize: 1, layers: list }), (field) => fieldPath(field).slice(1));
  }).describe('a list of layers like [{"units": 16, "activation": "relu"}, {"units": 1, "activation": "linear"}]'),
]);

const batchSchema = z.union([
  z.int(),
  z.strictObject({ count: z.int().optional(), timeMs: z.number().optional(), maxSize: z.int().optional(), partial: z.enum(['emit', 'drop']).optional() }),
]).superRefine((b, ctx) => {
  engine(ctx, () => batch(b), (field) => (typeof b === 'number' || field === 'batch' ? [] : fieldPath(field).slice(1)));
});

/**
 * Drift detection and reaction: `{"detector": "adwin", "reaction": "boost-lr"}`, or with
 * parameters, `{"detector": {"kind": "page-hinkley", "threshold": 20}, "reaction":
 * {"kind": "boost-lr", "factor": 3}}`. The parameters are checked by the engine
 * (`driftSettings`) with the model's loss.
 */
const drift = z.strictObject({
  detector: z.union([z.enum(DETECTOR_KINDS), z.looseObject({ kind: z.enum(DETECTOR_KINDS) })]).optional().describe(`a detector: ${DETECTOR_KINDS.join(', ')}, or {"kind": ..., parameters}`),
  reaction: z.union([z.enum(REACTIONS), z.looseObject({ kind: z.enum(REACTIONS) })]).optional().describe(`what the model does at a drift: ${REACTIONS.join(', ')}, or {"kind": ..., parameters}`),
  signal: z.enum(DRIFT_SIGNALS as ['loss', 'error', 'large-error']).optional().describe('what the detector watches: the per-sample loss, 0/1 errors (classifiers), or 0/1 large errors (loss above a quantile of a reference window; any model)'),
  largeError: z.strictObject({
    quantile: z.number().optional().describe('a loss is large above this quantile of the reference window (default 0.9)'),
    reference: z.int().optional().describe('losses in the reference window (default 500)'),
    settle: z.int().optional().describe('losses skipped after a drift before the reference window begins (default 0)'),
    refresh: z.int().optional().describe('without a drift, the threshold is estimated afresh every this many losses (default 5000; 0: never)'),
  }).optional().describe('settings of the large-error signal'),
  react: z.enum(['up', 'both']).optional().describe('react to drifts where the signal went up (default), or to both directions'),
});

/** The engine's drift config from a config file's `drift` section. */
export function driftConfig(section: z.output<typeof drift>): DriftConfig {
  const named = <T>(v: string | T | undefined) => (typeof v === 'string' ? { kind: v } : v);
  return { ...section, detector: named(section.detector), reaction: named(section.reaction) } as DriftConfig;
}

/** A run id on the server and a checkpoint file prefix: letters, digits, `.`, `_`, `-`. */
const NAME = /^[\w.-]{1,64}$/;

/** When skipped (non-finite) steps stop a model with SG_ERR_DIVERGED (`core/divergence.ts`); checked by the engine. */
const divergence = z.strictObject({
  maxConsecutiveSkips: z.int().optional().describe('skipped steps in a row (default 10)'),
  maxSkipRate: z.number().optional().describe('fraction of the last skipWindow steps (default 0.01)'),
  skipWindow: z.int().optional().describe('steps (default 1000)'),
}).superRefine((d, ctx) => {
  engine(ctx, () => createDivergenceGuard(d), (field) => [field]);
});

const model = z.strictObject({
  name: z.string().regex(NAME, { error: (iss) => `must be 1 to 64 letters, digits, ".", "_" or "-", got ${JSON.stringify(iss.input)}` }).optional(),
  layers: layers.optional(),
  inputs: z.int().min(1).optional(),
  model: file.optional().describe('a streamgrad/model@1 file to start from'),
  loss: z.enum(LOSSES).default('mse'),
  optimizer: optimizer.optional(),
  batch: batchSchema.default(1),
  seed: z.int().min(0).default(0),
  init: z.enum(INIT_SCHEMES).default(DEFAULT_INIT),
  // the engine's words (createTrainer), so that train --clip-norm and a config say the same
  clipNorm: z.number().positive({ error: (iss) => `must be a finite number > 0, got ${String(iss.input)}` }).optional(),
  divergence: divergence.optional(),
  backend: z.enum(BACKENDS).optional(),
  save: file.optional(),
  drift: drift.optional(),
}).superRefine((m, ctx) => {
  if (m.drift !== undefined) {
    const section = m.drift;
    engine(ctx, () => driftSettings(driftConfig(section), m.loss), (field) => {
      // detector parameters are reported by name (`delta`); the rest as `drift.reaction.factor`
      const path = fieldPath(field);
      return path[0] === 'drift' ? path : ['drift', 'detector', ...path];
    });
  }
  const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', message, path: [path], input: undefined });
  if ((m.layers === undefined) === (m.model === undefined)) {
    issue(m.layers === undefined ? 'layers' : 'model', m.layers === undefined
      ? 'required (or "model": a model file to start from)'
      : 'give either layers (a fresh network) or model (a model file), not both');
    return;
  }
  if (m.model !== undefined) {
    if (m.inputs !== undefined) issue('inputs', 'only applies to a fresh network (layers)');
    return;
  }
  if (typeof m.layers === 'string' && m.inputs !== undefined) issue('inputs', 'not with a layers spec: its first number is already the input size');
  let topology: Topology;
  try {
    topology = typeof m.layers === 'string' ? parseLayers(m.layers) : { inputSize: m.inputs ?? 1, layers: m.layers! };
  } catch {
    return; // the layers spec's own problem is reported already
  }
  const activations: readonly Activation[] = topology.layers.map((l) => l.activation);
  engine(ctx, () => checkLossFits(m.loss, activations), () => ['loss']);
  // a batch size and a layer width that fit alone may not fit together
  const rows = typeof m.batch === 'number' ? m.batch : m.batch.count ?? m.batch.maxSize ?? 1024;
  if (Number.isSafeInteger(rows) && rows >= 1) engine(ctx, () => checkBatchFits(topology, rows), () => ['batch']);
});

// ---------------------------------------------------------------------------------------
// the rest

/** Checks one setting of the server with `serve()`'s own checks (each on its own, so that every bad one is reported). */
function serverCheck(field: 'port' | 'host' | 'token' | 'allowedOrigins') {
  return (value: unknown, ctx: Ctx) => {
    try {
      resolveOptions({ [field]: value });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      ctx.addIssue({ code: 'custom', message: error.message.replace(/^serve: \w+ /, ''), input: value });
    }
  };
}

/** What the runs are about, for the dashboard's header (`ExperimentInfo`: the protocol's `hello.experiment`). */
const experimentInfo = z.strictObject({
  description: z.string().max(1000).optional().describe('a sentence for people: what the stream is and what the models do'),
  task: z.string().max(1000).optional().describe('e.g. "regression: predict the reaction rate from [Vmax, S]"'),
  target: z.string().max(200).optional().describe('the target\'s name and unit, e.g. "reaction rate v (µM/s)": the axes of prediction plots'),
});

const server = z.strictObject({
  port: z.int().superRefine(serverCheck('port')).describe('a port number (0: any free port)'),
  host: z.string().superRefine(serverCheck('host')).optional(),
  token: z.string().superRefine(serverCheck('token')).optional(),
  allowedOrigins: z.array(z.string()).superRefine(serverCheck('allowedOrigins')).optional(),
  keepServing: z.boolean().default(true),
  experiment: experimentInfo.optional().describe('what the dashboard\'s header says about the experiment'),
});

const checkpoints = z.strictObject({
  dir: file,
  everySteps: z.int().min(1).optional(),
  everySeconds: z.number().positive().max(MAX_TIMER_SECONDS).optional(),
  keep: z.int().min(1).default(3),
  maxFailures: z.int().min(1).default(3).describe('failed writes in a row that stop training'),
});

/** The `cluster` section: where `streamgrad cluster worker|publish|status` find the cluster run (cluster/ on NATS JetStream). */
const cluster = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, { error: '1 to 32 of A-Z a-z 0-9 _ -' }).describe('the cluster run: names its stream, buckets and subjects'),
  partitions: z.int().min(1).max(1024).describe('fixed when the cluster run is created'),
  nats: z.string().min(1).default('127.0.0.1:4222').describe('nats-server address(es): host:port, comma-separated'),
  key: z.string().min(1).optional().describe('the record field naming its sensor or stream: one key, one partition (default: round robin)'),
  leaseTtlSeconds: z.number().min(0.5).max(60).default(3),
  checkpointEverySeconds: z.number().positive().max(MAX_TIMER_SECONDS).default(1),
  publishBatch: z.int().min(1).max(10_000).default(50).describe('records per published message'),
  publishLingerSeconds: z.number().min(0).max(60).default(0.02).describe('a live source\'s partial message is published this long after its first record (0: only full ones); files publish full messages only, so a replay is de-duplicated'),
  trainLingerSeconds: z.number().min(0).max(MAX_TIMER_SECONDS).default(1).describe('a partition quiet this long has its partial training batch trained (a cut marker in the stream; 0: only full batches)'),
  backoff: z.strictObject({
    baseSeconds: z.number().min(0.01).max(MAX_TIMER_SECONDS).default(1).describe('the wait after a partition\'s first failure, doubled after each further one'),
    maxSeconds: z.number().min(0.01).max(MAX_TIMER_SECONDS).default(60).describe('the longest wait'),
    maxFailures: z.int().min(1).max(1000).default(5).describe('failures in a row after which the partition is parked until `streamgrad cluster unpark`'),
  }).optional().describe('how a partition whose training keeps failing backs off, and when it is parked'),
});

/** A config's `cluster` section, validated. */
export type ClusterConfig = z.output<typeof cluster>;

const limit = z.strictObject({
  samples: z.int().min(1).optional().describe('records read from the source'),
  steps: z.int().min(1).optional().describe('training steps of each model'),
  trainedSamples: z.int().min(1).optional().describe('samples each model trains on (rejected records do not count; as streamgrad train --samples), then it ends as at the end of the stream'),
}).refine((l) => l.samples !== undefined || l.steps !== undefined || l.trainedSamples !== undefined, { error: 'give samples, steps, trainedSamples or a mix' });

function experimentSchema<S extends z.ZodType>(source: S) {
  return z.strictObject({
    $schema: z.string().optional(),
    description: z.string().optional(),
    source: source.describe(`where the samples come from: ${SOURCE_HINT}`),
    models: z.array(model).min(1).describe('the models to train, e.g. [{"layers": "2,8:tanh,1:sigmoid", "loss": "bce"}]'),
    evaluation: z.strictObject({
      window: z.int().min(1).max(MAX_WINDOW).default(1000),
      predictions: file.optional().describe('a file (or "-": standard output) of one NDJSON line per sample: its prediction before learning from it, target, loss'),
    }).default({ window: 1000 }),
    server: server.optional(),
    checkpoints: checkpoints.optional(),
    limit: limit.optional(),
    cluster: cluster.optional(),
    labels: labelsSection.optional().describe('delayed labels: joined by id with the features the source delivers (README "Delayed labels")'),
  });
}

/** The schema with every kind of source: its output is the `Experiment` type. */
const fullSchema = experimentSchema(z.union([csvSource, ndjsonSource, stdinSource, mqttSource, simulatedSource]));

/** Where the JSON Schema of config files is published (`$id`), and what `$schema` in a config may name. */
export const EXPERIMENT_SCHEMA_ID = 'https://unpkg.com/streamgrad/experiment.schema.json';

/**
 * The JSON Schema (draft 2020-12) of a config file, generated from this zod schema, for
 * editors to complete and check configs (`"$schema": "…/experiment.schema.json"`). It
 * holds the structure (keys, types, enums, ranges that are plain bounds); the engine's
 * cross-field checks (`checkTopology`, `FeatureMap`, ...) are `streamgrad run --check`'s.
 */
export function experimentJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(fullSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return { $id: EXPERIMENT_SCHEMA_ID, title: 'streamgrad experiment config', ...schema };
}

/** A config as the schema checked it, defaults filled in: what the plan is made of. */
export type Experiment = z.output<typeof fullSchema>;
/** A config as written (defaults not yet filled in): what `runExperiment` takes. */
export type ExperimentInput = z.input<typeof fullSchema>;
export type ExperimentSource = Experiment['source'];
export type ModelConfig = Experiment['models'][number];
export type CsvSourceConfig = z.output<typeof csvSource>;
export type NdjsonSourceConfig = z.output<typeof ndjsonSource>;
export type StdinSourceConfig = z.output<typeof stdinSource>;
export type MqttSourceConfig = z.output<typeof mqttSource>;
export type RecordSourceConfig = CsvSourceConfig | NdjsonSourceConfig | StdinSourceConfig | MqttSourceConfig;
export type SimulatedSourceConfig = { readonly simulated: keyof typeof GENERATORS; readonly seed?: number; readonly samples?: number; readonly rate?: number; readonly normalize?: boolean; readonly normalizeTarget?: boolean; readonly normalizeWarmup?: number; readonly normalizeClip?: number | 'none' } & Readonly<Record<string, unknown>>;

/** The kind of a (valid) source. */
export function sourceKind(source: ExperimentSource): SourceKind {
  return SOURCE_KINDS.find((k) => Object.hasOwn(source, k))!;
}

// ---------------------------------------------------------------------------------------
// parsing and problems

/** One thing wrong with a config: where (`models[0].layers[1].activation`) and what. */
export interface Problem {
  readonly path: string;
  readonly message: string;
  /**
   * The file the problem is about, as the message's first words name it (`data.csv: cannot
   * read: …`), so that a command line can say it as typed: `--data data.csv: cannot read: …`.
   */
  readonly file?: string;
}

/** What `parseExperiment` says: the checked config, or every problem with its path. */
export type Parsed = { readonly ok: true; readonly experiment: Experiment } | { readonly ok: false; readonly problems: readonly Problem[] };

/**
 * Validates a parsed JSON document against the schema (structure, types, ranges and the
 * engine's checks of each section; not the world: files, columns, ports are
 * `checkExperiment`'s); every problem is reported.
 *
 * @example
 * const parsed = parseExperiment(JSON.parse(readFileSync('experiment.json', 'utf8')));
 * if (!parsed.ok) for (const p of parsed.problems) console.error(`${p.path}: ${p.message}`);
 */
export function parseExperiment(doc: unknown): Parsed {
  const raw = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>).source : undefined;
  const schema = experimentSchema(sourceSchemaFor(raw));
  const result = schema.safeParse(doc, { error: errorMap, reportInput: true });
  if (result.success) return { ok: true, experiment: result.data as Experiment };
  return { ok: false, problems: problemsOf(result.error.issues) };
}

/**
 * One section parsed on its own: its value, or undefined when it has problems (which
 * `parseExperiment` reports). Lets the sections that are fine be checked further while
 * others have problems, so that one pass reports everything.
 */
export function parseSection(section: 'source' | 'model' | 'checkpoints', raw: unknown): unknown {
  if (raw === undefined) return undefined;
  const schema = section === 'source' ? sourceSchemaFor(raw) : section === 'model' ? model : checkpoints;
  const result = schema.safeParse(raw);
  return result.success ? result.data : undefined;
}

/** `models[0].layers[1].activation`, `source.missing["temp max"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? '(the config)' : out;
}

/** A value as a message shows it: `"abc"`, `-1`, `null`, `a list`, `an object`. */
function shown(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

const EXPECTED: Readonly<Record<string, string>> = {
  number: 'a number', int: 'an integer', string: 'a string', boolean: 'true or false', array: 'a list', object: 'an object', tuple: 'a list',
};

function isInteger(schema: unknown): boolean {
  const format = (schema as { _zod?: { def?: { format?: string } } } | undefined)?._zod?.def?.format;
  return format === 'safeint' || format === 'int32';
}

/** Messages in streamgrad's style for zod's issues (before they get their paths). */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) {
        const about = (iss.inst as { description?: string } | undefined)?.description;
        return about === undefined ? 'required' : `required: ${about}`;
      }
      const about = (iss.inst as { description?: string } | undefined)?.description;
      const expected = isInteger(iss.inst) ? EXPECTED.int : EXPECTED[iss.expected] ?? iss.expected;
      return `must be ${expected}, got ${shown(iss.input)}${about === undefined ? '' : ` (${about})`}`;
    }
    case 'too_small':
    case 'too_big': {
      const small = iss.code === 'too_small';
      const bound = Number(small ? iss.minimum : iss.maximum);
      if (iss.origin === 'array') return small ? `must list at least ${bound} item${bound === 1 ? '' : 's'}` : `must list at most ${bound} items`;
      if (iss.origin === 'string') {
        if (iss.exact === true) return `must be exactly ${bound} character${bound === 1 ? '' : 's'}, got ${shown(iss.input)}`;
        return small ? (bound === 1 ? 'must not be empty' : `must be at least ${bound} characters`) : `must be at most ${bound} characters`;
      }
      const op = small ? (iss.inclusive === false ? '>' : '≥') : (iss.inclusive === false ? '<' : '≤');
      return `must be ${isInteger(iss.schema) ? 'an integer' : 'a number'} ${op} ${bound}, got ${shown(iss.input)}`;
    }
    case 'invalid_value': {
      const values = iss.values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
      if (values.length === 1) return `must be ${JSON.stringify(iss.values[0])}, got ${shown(iss.input)}`;
      if (typeof iss.input === 'string') return `unknown value ${JSON.stringify(iss.input)}; use ${values.join(', ')}`;
      return `must be one of ${values.join(', ')}, got ${shown(iss.input)}`;
    }
    case 'unrecognized_keys': {
      const shape = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
      return `allowed: ${Object.keys(shape ?? {}).join(', ')}`;
    }
    case 'invalid_union': {
      if (iss.note === 'No matching discriminator' || iss.discriminator !== undefined) {
        const options = ((iss.options ?? []) as unknown[]).map(String);
        const input = iss.input as Record<string, unknown> | undefined;
        const value = typeof input === 'object' && input !== null && typeof iss.discriminator === 'string' ? input[iss.discriminator] : undefined;
        if (value === undefined) return `required: one of ${options.join(', ')}`;
        return typeof value === 'string' ? `unknown value ${JSON.stringify(value)}; use ${options.join(', ')}` : `must be one of ${options.join(', ')}, got ${shown(value)}`;
      }
      const about = (iss.inst as { description?: string } | undefined)?.description;
      const expected = [...new Set(((iss.errors ?? []) as z.core.$ZodIssue[][]).flatMap((branch) => branch.filter((i) => i.path.length === 0 && i.code === 'invalid_type').map((i) => EXPECTED[(i as { expected: string }).expected] ?? (i as { expected: string }).expected)))];
      if (iss.input === undefined) return about === undefined ? 'required' : `required: ${about}`;
      if (expected.length === 0) return about === undefined ? `not valid: ${shown(iss.input)}` : `must be ${about}, got ${shown(iss.input)}`;
      return `must be ${expected.join(' or ')}, got ${shown(iss.input)}${about === undefined ? '' : ` (${about})`}`;
    }
    default:
      return undefined;
  }
};

/** An issue that says the value is of another type than the schema's (so a union's other branch was meant). */
function mismatch(issue: z.core.$ZodIssue): boolean {
  if (issue.code === 'invalid_type') return true;
  if (issue.code === 'invalid_value') return issue.values.length > 0 && typeof issue.input !== typeof issue.values[0];
  return false;
}

/**
 * zod's issues as problems, one per line: an unknown key is one problem per key (with a
 * "did you mean"), and a union (`layers` as a string or a list) reports the problems of
 * the branch the value was meant for rather than "invalid input".
 */
export function problemsOf(issues: readonly z.core.$ZodIssue[], base: readonly PropertyKey[] = []): Problem[] {
  const problems: Problem[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      const allowed = issue.message.replace(/^allowed: /, '').split(', ').filter((k) => k !== '');
      for (const key of issue.keys) {
        const near = nearest(key, allowed);
        problems.push({ path: formatPath([...path, key]), message: `unknown key${near !== undefined ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; allowed here: ${allowed.join(', ')}` });
      }
      continue;
    }
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // the branches whose type fitted the value: their problems are the real ones
      const fitting = issue.errors.filter((branch) => !branch.some((i) => i.path.length === 0 && mismatch(i)));
      if (fitting.length === 1) {
        problems.push(...problemsOf(fitting[0], path));
        continue;
      }
    }
    problems.push({ path: formatPath(path), message: issue.message });
  }
  return problems;
}
