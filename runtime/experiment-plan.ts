import { constants } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { type BackendChoice, resolveKernels } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap } from '../core/features.ts';
import type { InitScheme } from '../core/init.ts';
import type { DivergenceConfig } from '../core/divergence.ts';
import type { Kernels } from '../core/kernels.ts';
import { checkLossFits, type Loss } from '../core/losses.ts';
import { type Model, type Topology, topologyOf } from '../core/model.ts';
import type { OptimizerConfig } from '../core/optimizers.ts';
import type { DriftConfig } from '../pipeline/drift-adaptation.ts';
import type { BatchConfig } from '../operators/batch.ts';
import type { OverflowPolicy } from '../sources/bounded-queue.ts';
import { discoverClasses } from '../sources/csv.ts';
import { ConfigError, oneLine } from './errors.ts';
import { generate, type GeneratorName } from './experiment-generators.ts';
import { defaultLabelProblem, type LabelsConfig, type LabelsPlan, planLabels } from './experiment-labels.ts';
import { topicFiltersOverlap } from '../sources/topic-filter.ts';
import {
  type ClusterConfig, driftConfig,
  DEFAULT_LEARNING_RATE, type Experiment, type ExperimentSource, formatPath, type ModelConfig, type Problem,
  parseExperiment, parseSection, type RecordSourceConfig, type SimulatedSourceConfig, sourceKind,
} from './experiment-schema.ts';
import type { RecordSettings } from './ingestion.ts';
import type { ServeSettings } from './serving.ts';
import { parseLayers } from './layers.ts';
import { CONFIG_FILE_LIMIT, FileRefused, readBounded } from './bounded-file.ts';
import { loadArtifact } from './model-io.ts';
import type { Preprocessing } from '../pipeline/model-artifact.ts';

/** Whether and how a source is normalised (the `normalize*` keys; `normalizeClip` Infinity for "none"). */
type NormalizeSettings = Pick<RecordSettings, 'normalize' | 'normalizeTarget' | 'normalizeWarmup' | 'normalizeClip'>;

function normalizeSettings(s: { normalize?: boolean; normalizeTarget?: boolean; normalizeWarmup?: number; normalizeClip?: number | 'none' }): NormalizeSettings {
  return {
    normalize: s.normalize === true || s.normalizeTarget === true,
    normalizeTarget: s.normalizeTarget === true,
    ...(s.normalizeWarmup !== undefined && { normalizeWarmup: s.normalizeWarmup }),
    ...(s.normalizeClip !== undefined && { normalizeClip: s.normalizeClip === 'none' ? Infinity : s.normalizeClip }),
  };
}

/**
 * From an experiment file to a plan that can run: the JSON is parsed (a syntax error
 * names its line and column), validated against the schema, and checked against the
 * world: files readable, CSV headers holding the named columns, class labels discovered,
 * model files loaded, every model's shape fitting the source, output paths writable,
 * kernels available. Every problem found is returned, one per line, before anything starts.
 * Paths in the file are relative to the file's folder.
 */

/** Inputs and outputs of a sample. */
export interface Shape {
  readonly inputs: number;
  readonly outputs: number;
}

/** A path as written in the config and resolved against its folder. */
export interface PlannedPath {
  readonly shown: string;
  readonly path: string;
}

/** How named records become samples (files, standard input, MQTT). */
export interface RecordPlan extends RecordSettings {
  readonly deadLetter?: PlannedPath;
  /** The longest line read (`maxLineBytes`, `--max-line-bytes`; files and standard input); undefined: 16 MiB. */
  readonly maxLineBytes?: number;
  /** What the records give, when named fields fix it (null: positional `{x, y}` records). */
  readonly shape: Shape | null;
}

export interface ReplayPlan {
  readonly timeField: string;
  readonly speed: number;
  readonly unit?: 'ms' | 's';
  readonly maxGapMs?: number;
}

export type SourcePlan =
  | ({ readonly kind: 'simulated'; readonly generator: GeneratorName; readonly options: Readonly<Record<string, unknown>>; readonly seed: number; readonly samples?: number; readonly shape: Shape; readonly rate?: number } & NormalizeSettings)
  | { readonly kind: 'csv'; readonly file: PlannedPath; readonly delimiter?: string; readonly replay?: ReplayPlan; readonly records: RecordPlan }
  | { readonly kind: 'ndjson'; readonly file: PlannedPath; readonly replay?: ReplayPlan; readonly records: RecordPlan }
  | { readonly kind: 'stdin'; readonly format: 'ndjson' | 'csv'; readonly records: RecordPlan }
  | { readonly kind: 'mqtt'; readonly url: string; readonly topics: readonly string[]; readonly capacity: number; readonly policy: OverflowPolicy; readonly qos: 0 | 1 | 2; readonly clientId?: string; readonly records: RecordPlan };

export interface ModelPlan {
  /** Its run id on the server, in lines and as its checkpoints' prefix. */
  readonly name: string;
  /** `models[2]`: where it is in the config. */
  readonly at: string;
  readonly topology: Topology;
  /** The model file it starts from (instead of fresh weights). */
  readonly start?: { readonly file: PlannedPath; readonly model: Model; readonly preprocessing: Preprocessing | null };
  readonly loss: Loss;
  readonly optimizer: OptimizerConfig;
  readonly batch: number | BatchConfig;
  readonly seed: number;
  readonly init: InitScheme;
  readonly clipNorm?: number;
  /** When skipped steps stop it (`maxConsecutiveSkips`, `maxSkipRate`, `skipWindow`); undefined: the defaults. */
  readonly divergence?: DivergenceConfig;
  readonly backend?: BackendChoice;
  readonly kernels: Kernels;
  readonly save?: PlannedPath;
  /** Drift detection and reaction (the model's `drift` section). */
  readonly drift?: DriftConfig;
}

export interface ServerPlan extends ServeSettings {
  /** Keep serving the final state after the run ends, until Ctrl-C. */
  readonly keepServing: boolean;
}

export interface CheckpointsPlan {
  readonly dir: PlannedPath;
  readonly everySteps?: number;
  /** Default 60 when neither interval is given (as `streamgrad train --checkpoint-dir`). */
  readonly everySeconds?: number;
  readonly keep: number;
  readonly maxFailures: number;
}

export interface ExperimentPlan {
  /** The config file, as given and resolved; undefined for a config given as an object. */
  readonly file?: PlannedPath;
  readonly description?: string;
  readonly source: SourcePlan;
  readonly models: readonly ModelPlan[];
  /** Samples the rolling metrics cover. */
  readonly window: number;
  /** Where per-sample predictions go (`evaluation.predictions` or `--predictions`; `-`: stdout). */
  readonly predictions?: PlannedPath;
  /** `samples`: records read from the source; `steps`: each model's steps; `trainedSamples`: samples each model trains on. */
  readonly limit: { readonly samples?: number; readonly steps?: number; readonly trainedSamples?: number };
  readonly server?: ServerPlan;
  readonly checkpoints?: CheckpointsPlan;
  /** `--resume`: continue from the newest checkpoints. */
  readonly resume: boolean;
  /** Where the cluster commands find the cluster run (`streamgrad cluster`); `run` ignores it. */
  readonly cluster?: ClusterConfig;
  /** Delayed labels (the config's `labels` section). */
  readonly labels?: LabelsPlan;
}

/** What the command line adds to or overrides in the file. */
export interface PlanOverrides {
  /** `--port`: serve on this port instead of `server.port` (0: any free port). */
  readonly port?: number;
  /**
   * Serve the run (`run --serve [PORT]`, `start --serve`): added to the config's `server`
   * section, or the section when it has none (keeping serving after the run by default).
   */
  readonly serve?: ServeSettings & { readonly keepServing?: boolean };
  readonly samples?: number;
  readonly steps?: number;
  readonly resume?: boolean;
  /** `--predictions FILE|-` (relative to the working folder, not the config's). */
  readonly predictions?: string;
  /** `--max-line-bytes`: overrides `source.maxLineBytes`. */
  readonly maxLineBytes?: number;
}

/** What checking a config against the world says: the plan to run, or every problem with its path. */
export type Planned = { readonly ok: true; readonly plan: ExperimentPlan } | { readonly ok: false; readonly problems: readonly Problem[] };

/**
 * Reads, validates and checks an experiment file. An unreadable file is a `ConfigError`
 * (exit 2); everything wrong inside it comes back as problems.
 */
export async function planExperiment(configFile: string, overrides: PlanOverrides = {}): Promise<Planned> {
  let text: string;
  try {
    // bounded: `streamgrad run /dev/zero` is refused after its first bytes, not read forever
    text = (await readBounded(configFile, CONFIG_FILE_LIMIT, (head) => (/^(\ufeff|\s)*(\{|$)/.test(head.toString('utf8')) ? null : 'not a JSON config (it does not start with {)'))).toString('utf8');
  } catch (error) {
    throw new ConfigError(`${configFile}: ${error instanceof FileRefused ? 'not read' : 'cannot read'}: ${oneLine(error)}`, { cause: error });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\ufeff/, ''));
  } catch (error) {
    return { ok: false, problems: [{ path: configFile, message: jsonError(text, error) }] };
  }
  return planConfig(doc, { file: configFile }, overrides);
}

/** Where a config came from: its file (paths in it are relative to its folder), or only the folder its paths are relative to. */
export type ConfigOrigin = { readonly file: string } | { readonly baseDir: string };

/**
 * Validates and checks a config already parsed from JSON (or written in code), as
 * `planExperiment` does a file's: every problem comes back, each with its path.
 */
export async function planConfig(doc: unknown, origin: ConfigOrigin, overrides: PlanOverrides = {}): Promise<Planned> {
  const configFile = 'file' in origin ? origin.file : undefined;
  const base = 'baseDir' in origin ? resolve(origin.baseDir) : dirname(resolve(configFile!));
  const at = (written: string): PlannedPath => {
    const path = resolve(base, written);
    // messages name files as the person typing commands sees them: relative to the working directory
    return { shown: isAbsolute(written) ? written : relative(process.cwd(), path) || '.', path };
  };
  const problems: Problem[] = [];
  const add: AddProblem = (path, message, file) => problems.push({ path, message, ...(file !== undefined && { file }) });

  const parsed = parseExperiment(doc);
  if (!parsed.ok) problems.push(...parsed.problems);
  // with problems somewhere, the sections that are valid on their own are still checked against the world
  const raw = (typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? doc : {}) as Record<string, unknown>;
  const experiment: Partial<Experiment> = parsed.ok ? parsed.experiment : {
    source: parseSection('source', raw.source) as ExperimentSource | undefined,
    models: Array.isArray(raw.models) ? raw.models.map((m) => parseSection('model', m) as ModelConfig | undefined) as ModelConfig[] : undefined,
    checkpoints: parseSection('checkpoints', raw.checkpoints) as Experiment['checkpoints'],
  };

  // models first: a CSV's classes are discovered when the models have several outputs
  const models: (ModelDraft | undefined)[] = [];
  for (const [i, config] of (experiment.models ?? []).entries()) {
    models.push(config === undefined ? undefined : await draftModel(config, i, at, add));
  }
  const labelsConfig = parsed.ok ? parsed.experiment.labels : undefined;
  const source = experiment.source === undefined ? undefined : await planSource(experiment.source, at, models, add, overrides.maxLineBytes, labelsConfig);
  const labels = labelsConfig === undefined || source === undefined ? undefined : planLabels(labelsConfig, source.kind, at, add, 'records' in source ? source.records : undefined);

  const names = new Map<string, number>();
  const saves = new Map<string, number>();
  const planned: ModelPlan[] = [];
  let positional: { shape: Shape; at: string } | null = null;
  for (const [i, draft] of models.entries()) {
    if (draft === undefined) continue;
    const where = `models[${i}]`;
    const other = names.get(draft.name);
    if (other !== undefined) add(`${where}.name`, `${JSON.stringify(draft.name)} is the name of models[${other}] too: each model needs its own (it names its run and checkpoints)`);
    names.set(draft.name, i);
    if (draft.save !== undefined) {
      const before = saves.get(draft.save.path);
      if (before !== undefined) add(`${where}.save`, `models[${before}] saves to ${draft.save.shown} too`);
      saves.set(draft.save.path, i);
    }
    if (source === undefined) continue;
    const given = sourceShape(source);
    let inputSize = draft.inputSize;
    if (inputSize === undefined) {
      if (given === null) {
        add(`${where}.inputs`, 'required: the source gives positional {"x": [...], "y": [...]} samples, so the input size is not known (or name the features)');
        continue;
      }
      inputSize = given.inputs;
    }
    const topology: Topology = { inputSize, layers: draft.layers };
    const shape = { inputs: inputSize, outputs: draft.layers[draft.layers.length - 1].units };
    const field = draft.config.model !== undefined ? `${where}.model` : `${where}.layers`;
    if (given !== null && (shape.inputs !== given.inputs || shape.outputs !== given.outputs)) {
      add(field, `takes ${describeShape(shape)}, but the source gives ${describeShape(given, sourceNoun(source))}`);
      continue;
    }
    if (given === null) {
      if (positional === null) positional = { shape, at: where };
      else if (positional.shape.inputs !== shape.inputs || positional.shape.outputs !== shape.outputs) {
        add(field, `takes ${describeShape(shape)}, but ${positional.at} takes ${describeShape(positional.shape)}: models racing on one stream take the same samples`);
        continue;
      }
    }
    planned.push({ ...draft.plan, topology });
  }

  // a message on a topic both filters match comes once per subscription: each label twice
  if (labels?.topics !== undefined && source?.kind === 'mqtt') {
    for (const l of labels.topics) {
      const f = source.topics.find((t) => topicFiltersOverlap(t, l));
      if (f !== undefined) add('labels.topics', `${JSON.stringify(l)} overlaps the features' topic filter ${JSON.stringify(f)}: a message on a topic both match would come once per subscription, so each label twice (the second a SG_ERR_DUPLICATE_ID dead letter); give filters no topic matches both (e.g. plant/features/# and plant/labels/#)`);
    }
  }
  // positional records: the models fix the size a default label's y must have
  const defaultLabel = labels?.join.defaultLabel;
  if (defaultLabel !== undefined && positional !== null && source !== undefined && 'records' in source && source.records.shape === null) {
    const wrong = defaultLabelProblem(defaultLabel, { shape: { outputs: positional.shape.outputs } });
    if (wrong !== null) add('labels.default', wrong);
  }

  const c = experiment.checkpoints;
  const checkpoints: CheckpointsPlan | undefined = c === undefined ? undefined : {
    dir: at(c.dir),
    keep: c.keep,
    maxFailures: c.maxFailures,
    ...(c.everySteps !== undefined && { everySteps: c.everySteps }),
    ...(c.everySeconds !== undefined || c.everySteps === undefined ? { everySeconds: c.everySeconds ?? 60 } : {}),
  };
  if (checkpoints !== undefined) {
    const why = await folderProblem(checkpoints.dir.path);
    if (why !== null) add('checkpoints.dir', `${checkpoints.dir.shown}: ${why}`, checkpoints.dir.shown);
  }
  // --predictions is relative to the working folder, evaluation.predictions to the config's; `-` is stdout
  const predictionsWritten = overrides.predictions ?? experiment.evaluation?.predictions;
  const predictions: PlannedPath | undefined = predictionsWritten === undefined ? undefined
    : predictionsWritten === '-' ? { shown: '-', path: '-' }
    : overrides.predictions !== undefined ? { shown: overrides.predictions, path: resolve(overrides.predictions) }
    : at(predictionsWritten);
  if (predictions !== undefined && predictions.path !== '-') {
    const why = await writableProblem(predictions);
    if (why !== null) add(overrides.predictions !== undefined ? '--predictions' : 'evaluation.predictions', `${predictions.shown}: ${why}`, predictions.shown);
  }
  if (overrides.resume === true && raw.checkpoints === undefined) add('--resume', 'the config has no "checkpoints" section to resume from');
  if (overrides.port !== undefined && raw.server === undefined && overrides.serve === undefined) add('--port', 'the config has no "server" section');
  // standard input, or the labels /ingest receives, beside a file: one stream of labels, read once
  const oneReader = labels !== undefined && (labels.file?.path === '-' || (labels.ingest === true && (source?.kind === 'csv' || source?.kind === 'ndjson')));
  if (oneReader && (experiment.models?.length ?? 0) > 1) add(labels.file?.path === '-' ? `labels.${labels.file.format}` : 'labels.ingest', 'is one stream of labels, read once: with a file source it takes one model');
  if (labelsConfig?.ingest === true && raw.server === undefined && overrides.serve === undefined) add('labels.ingest', 'needs a server: the labels come to its /ingest (a "server" section, or run --serve)');
  if (overrides.maxLineBytes !== undefined && source !== undefined && source.kind !== 'csv' && source.kind !== 'ndjson' && source.kind !== 'stdin') {
    add('--max-line-bytes', `applies to a source that reads lines (csv, ndjson, stdin), not to ${source.kind}`);
  }

  if (problems.length > 0 || !parsed.ok || source === undefined) return { ok: false, problems };
  const e = parsed.experiment;
  const samples = overrides.samples ?? e.limit?.samples;
  const steps = overrides.steps ?? e.limit?.steps;
  const trainedSamples = e.limit?.trainedSamples;
  const served: ServerPlan | undefined = overrides.serve === undefined ? e.server : { keepServing: true, ...e.server, ...overrides.serve };
  const server: ServerPlan | undefined = served === undefined || overrides.port === undefined ? served : { ...served, port: overrides.port, orFreePort: false };
  return {
    ok: true,
    plan: {
      ...(configFile !== undefined && { file: { shown: configFile, path: resolve(configFile) } }),
      ...(e.description !== undefined && { description: e.description }),
      source,
      models: planned,
      window: e.evaluation.window,
      ...(predictions !== undefined && { predictions }),
      limit: { ...(samples !== undefined && { samples }), ...(steps !== undefined && { steps }), ...(trainedSamples !== undefined && { trainedSamples }) },
      ...(server !== undefined && { server }),
      ...(checkpoints !== undefined && { checkpoints }),
      ...(e.cluster !== undefined && { cluster: e.cluster }),
      resume: overrides.resume === true,
      ...(labels !== undefined && { labels }),
    },
  };
}

/** `JSON.parse`'s complaint with a line and column instead of a character position. */
function jsonError(text: string, error: unknown): string {
  const message = oneLine(error);
  const position = /at position (\d+)/.exec(message);
  const where = position !== null ? Number(position[1]) : /Unexpected end/.test(message) ? text.length : null;
  const what = message.replace(/ in JSON at position \d+.*$/, '').replace(/ of JSON input$/, ' of input');
  if (where === null) return `not valid JSON: ${what}`;
  const before = text.slice(0, where).replace(/^\ufeff/, '');
  const line = before.split('\n').length;
  const column = where - (before.lastIndexOf('\n') + 1) + 1;
  return `not valid JSON: line ${line}, column ${column}: ${what}`;
}

/** A model as far as it can be planned without the source: its layers (the input size may still be open). */
interface ModelDraft {
  readonly config: ModelConfig;
  readonly name: string;
  readonly inputSize?: number;
  readonly layers: Topology['layers'];
  readonly save?: PlannedPath;
  readonly plan: Omit<ModelPlan, 'topology'>;
}

async function draftModel(config: ModelConfig, i: number, at: (p: string) => PlannedPath, add: AddProblem): Promise<ModelDraft | undefined> {
  const where = `models[${i}]`;
  let ok = true;
  let start: ModelPlan['start'];
  let inputSize: number | undefined;
  let layers: Topology['layers'];
  if (config.model !== undefined) {
    const file = at(config.model);
    try {
      const { artifact: { model, preprocessing } } = await loadArtifact(file.path, `${where}.model`);
      start = { file, model, preprocessing };
      ({ inputSize, layers } = topologyOf(model));
      try {
        checkLossFits(config.loss, layers.map((l) => l.activation));
      } catch (error) {
        if (!(error instanceof StreamgradError)) throw error;
        add(`${where}.loss`, `${error.message.replace(/^loss: /, '')} (of ${config.model})`);
        ok = false;
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      add(`${where}.model`, error.message.replace(`${where}.model ${file.path}: `, `${config.model}: `).replaceAll(file.path, config.model), config.model);
      return undefined;
    }
  } else if (typeof config.layers === 'string') {
    ({ inputSize, layers } = parseLayers(config.layers));
  } else {
    inputSize = config.inputs;
    layers = config.layers!;
  }
  let kernels: Kernels | undefined;
  try {
    kernels = resolveKernels(config.backend);
  } catch (error) {
    if (!(error instanceof StreamgradError) && !(error instanceof Error)) throw error;
    add(`${where}.backend`, oneLine(error).replace(/^backend: /, ''));
    ok = false;
  }
  const save = config.save === undefined ? undefined : at(config.save);
  if (save !== undefined) {
    const why = await writableProblem(save);
    if (why !== null) {
      add(`${where}.save`, `${save.shown}: ${why}`, save.shown);
      ok = false;
    }
  }
  if (!ok || kernels === undefined) return undefined;
  const { type = 'sgd', lr = DEFAULT_LEARNING_RATE, ...settings } = (config.optimizer ?? {}) as { type?: OptimizerConfig['type']; lr?: number } & Record<string, number>;
  const name = config.name ?? `model${i + 1}`;
  return {
    config,
    name,
    ...(inputSize !== undefined && { inputSize }),
    layers,
    ...(save !== undefined && { save }),
    plan: {
      name,
      at: where,
      ...(start !== undefined && { start }),
      loss: config.loss,
      optimizer: { type, learningRate: lr, ...settings } as OptimizerConfig,
      batch: config.batch as number | BatchConfig,
      seed: config.seed,
      init: config.init,
      ...(config.clipNorm !== undefined && { clipNorm: config.clipNorm }),
      ...(config.divergence !== undefined && { divergence: config.divergence }),
      ...(config.backend !== undefined && { backend: config.backend }),
      ...(config.drift !== undefined && { drift: driftConfig(config.drift) }),
      kernels,
      ...(save !== undefined && { save }),
    },
  };
}

async function planSource(source: ExperimentSource, at: (p: string) => PlannedPath, models: readonly (ModelDraft | undefined)[], add: AddProblem, maxLineBytes?: number, labels?: LabelsConfig): Promise<SourcePlan | undefined> {
  const kind = sourceKind(source);
  if (kind === 'simulated') {
    const { simulated, seed = 0, samples, rate, normalize, normalizeTarget, normalizeWarmup, normalizeClip, ...options } = source as SimulatedSourceConfig;
    const first = generate(simulated, options, seed, 1).next();
    const sample = first.value!;
    return {
      kind, generator: simulated, options, seed, ...(samples !== undefined && { samples }), ...(rate !== undefined && { rate }),
      shape: { inputs: sample.x.length, outputs: sample.y.length },
      ...normalizeSettings({ normalize, normalizeTarget, normalizeWarmup, normalizeClip }),
    };
  }
  const s = source as RecordSourceConfig;
  let ok = true;
  let features = s.features;
  let classes = s.classes;
  const deadLetter = s.deadLetter === undefined ? undefined : at(s.deadLetter);
  if (deadLetter !== undefined) {
    const why = await writableProblem(deadLetter);
    if (why !== null) {
      add('source.deadLetter', `${deadLetter.shown}: ${why}`, deadLetter.shown);
      ok = false;
    }
  }
  let file: PlannedPath | undefined;
  if ('csv' in s || 'ndjson' in s) {
    file = at('csv' in s ? s.csv : s.ndjson);
    const field = 'csv' in s ? 'source.csv' : 'source.ndjson';
    const why = await readableProblem(file);
    if (why !== null) {
      add(field, `${file.shown}: ${why}`, file.shown);
      return undefined;
    }
  }
  if ('csv' in s && file !== undefined) {
    const targets = s.targets!;
    const header = await csvHeader(file.path, s.delimiter ?? ',');
    // a header that names a column twice is the file's fault, said as such before anything
    // runs: not "--features: names must be distinct" (a list the user never gave, made of
    // the header), nor exit 1 after a summary of nothing (the reader's check, with --features)
    const twice = header.find((c, i) => header.indexOf(c) !== i);
    if (twice !== undefined) {
      add('source.csv', `${file.shown}: header names column ${JSON.stringify(twice)} twice (line 1); column names must be distinct`, file.shown);
      return undefined;
    }
    // with delayed labels the features file has the id and the features; the targets come with the labels
    const idField = labels?.idField;
    features ??= header.filter((c) => !targets.includes(c) && c !== idField);
    const absent = [...features, ...(idField === undefined ? targets : [idField])].filter((c) => !header.includes(c));
    if (absent.length > 0) {
      add(absent.some((c) => targets.includes(c)) ? 'source.targets' : 'source.features', `no column ${absent.map((a) => JSON.stringify(a)).join(', ')} in ${file.shown} (it has ${header.join(', ')})`);
      return undefined;
    }
    if (features.length === 0) {
      add('source.features', `${file.shown} has no column besides the targets`);
      return undefined;
    }
    const outputs = models.find((m) => m !== undefined)?.layers.at(-1)?.units;
    if (classes === undefined && targets.length === 1 && outputs !== undefined && outputs > 1) {
      try {
        classes = await discoverClasses(idField === undefined ? file.path : labels?.csv === undefined ? file.path : at(labels.csv).path, targets[0], { delimiter: s.delimiter ?? ',' });
      } catch (error) {
        add('source.classes', `cannot discover the class labels of ${JSON.stringify(targets[0])}: ${oneLine(error)}`);
        return undefined;
      }
    }
    if (s.features === undefined || classes !== s.classes) {
      // the FeatureMap's checks again, now with the header's features and the discovered classes
      try {
        new FeatureMap({ features, targets, ...(classes !== undefined && { classes }), ...(s.missing !== undefined && { missing: s.missing }) });
      } catch (error) {
        if (!(error instanceof StreamgradError)) throw error;
        add(`source.${formatPath([error.field ?? 'features'])}`, error.message.replace(`${error.field}: `, ''));
        return undefined;
      }
    }
  }
  if (!ok) return undefined;
  const targets = s.targets;
  const lineBound = 'mqtt' in s ? undefined : maxLineBytes ?? s.maxLineBytes;
  const records: RecordPlan = {
    ...(features !== undefined && { features }),
    ...(targets !== undefined && { targets }),
    ...(classes !== undefined && { classes }),
    missing: s.missing ?? 'reject',
    ...(deadLetter !== undefined && { deadLetter }),
    ...normalizeSettings(s),
    shape: features !== undefined && targets !== undefined ? { inputs: features.length, outputs: classes?.length ?? targets.length } : null,
    ...(lineBound !== undefined && { maxLineBytes: lineBound }),
  };
  if ('csv' in s) return { kind: 'csv', file: file!, ...(s.delimiter !== undefined && { delimiter: s.delimiter }), ...(s.replay !== undefined && { replay: s.replay }), records };
  if ('ndjson' in s) return { kind: 'ndjson', file: file!, ...(s.replay !== undefined && { replay: s.replay }), records };
  if ('stdin' in s) return { kind: 'stdin', format: s.stdin, records };
  const m = s.mqtt;
  return {
    kind: 'mqtt', url: m.url, topics: typeof m.topics === 'string' ? [m.topics] : m.topics,
    capacity: m.queue ?? 1024, policy: m.overflow ?? 'drop-oldest', qos: m.qos ?? 1, ...(m.clientId !== undefined && { clientId: m.clientId }), records,
  };
}

/** The sample shape a source fixes, or null for positional records. */
export function sourceShape(source: SourcePlan): Shape | null {
  return source.kind === 'simulated' ? source.shape : source.records.shape;
}

function sourceNoun(source: SourcePlan): [string, string] {
  if (source.kind === 'simulated') return ['input', 'output'];
  return source.records.classes !== undefined ? ['feature', 'class'] : ['feature', 'target'];
}

/** `3 inputs → 1 output`. */
export function describeShape(shape: Shape, [input, output]: [string, string] = ['input', 'output']): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : word.endsWith('s') ? 'es' : 's'}`;
  return `${plural(shape.inputs, input)} → ${plural(shape.outputs, output)}`;
}

/** Adds a problem at `path`; `file`: the file it is about, as the message's first words name it. */
type AddProblem = (path: string, message: string, file?: string) => void;

/** Why `file` cannot be read as a data file, or null when it can (the system's message names it as shown, not by its absolute path). */
async function readableProblem({ path, shown }: PlannedPath): Promise<string | null> {
  try {
    const handle = await open(path, 'r');
    try {
      if ((await handle.stat()).isDirectory()) return 'cannot read: is a directory';
    } finally {
      await handle.close();
    }
    return null;
  } catch (error) {
    return `cannot read: ${oneLine(error).replaceAll(path, shown)}`;
  }
}

/** Why `file` cannot be written later (its folder is missing or read-only, or it is a folder), or null. */
async function writableProblem({ path, shown }: PlannedPath): Promise<string | null> {
  try {
    await access(dirname(path), constants.W_OK);
    if ((await stat(path).catch(() => null))?.isDirectory()) return 'cannot write: is a directory';
    return null;
  } catch (error) {
    return `cannot write: ${oneLine(error).replaceAll(dirname(path), dirname(shown))}`;
  }
}

/** Why `dir` cannot hold checkpoints (it is a file, or neither it nor the nearest existing folder above it is writable), or null. */
async function folderProblem(dir: string): Promise<string | null> {
  let path = dir;
  for (;;) {
    const info = await stat(path).catch(() => null);
    if (info !== null) {
      if (!info.isDirectory()) return path === dir ? 'is not a folder' : `${path} is not a folder`;
      try {
        await access(path, constants.W_OK);
        return null;
      } catch (error) {
        return `cannot write: ${oneLine(error)}`;
      }
    }
    const parent = dirname(path);
    if (parent === path) return 'cannot be created';
    path = parent;
  }
}

/** The header row of a CSV file (the first line, split at `delimiter`, quotes removed). */
async function csvHeader(path: string, delimiter: string): Promise<string[]> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const first = buffer.subarray(0, bytesRead).toString('utf8').replace(/^\ufeff/, '').split(/\r?\n/, 1)[0];
    return first.split(delimiter).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
  } finally {
    await handle.close();
  }
}
