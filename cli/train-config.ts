import type { BackendChoice } from '../core/backend.ts';
import type { DivergenceConfig } from '../core/divergence.ts';
import type { InitScheme } from '../core/init.ts';
import type { Loss } from '../core/losses.ts';
import type { Topology } from '../core/model.ts';
import type { OptimizerConfig } from '../core/optimizers.ts';
import type { DriftConfig } from '../pipeline/drift-adaptation.ts';
import type { CheckpointSettings } from '../runtime/checkpointing.ts';
import type { LabelSettings } from '../runtime/delayed-labels.ts';
import type { IngestSettings } from '../runtime/ingestion.ts';
import type { PlanOverrides } from '../runtime/experiment-plan.ts';
import type { ExperimentConfig } from '../runtime/run-experiment.ts';
import type { ServeSettings } from '../runtime/serving.ts';
import type { ProgressSettings } from './progress.ts';

/** A validated `streamgrad train` command line. */
export interface TrainSettings {
  /** The --data file or `-`; undefined with --mqtt. */
  readonly data?: string;
  /** Format, feature names, dead letters, normalisation, MQTT. */
  readonly ingest: IngestSettings;
  /** Delayed labels (`--labels`, `--labels-topic`, `--id-field`...). */
  readonly labels?: LabelSettings;
  readonly start: { readonly file: string } | { readonly topology: Topology; readonly seed: number; readonly init: InitScheme };
  readonly save?: string;
  readonly loss: Loss;
  readonly optimizer: OptimizerConfig;
  readonly batch: number;
  readonly window: number;
  readonly clipNorm?: number;
  /** Kernel backend (`--backend`); undefined: the default (`auto`, or STREAMGRAD_BACKEND). */
  readonly backend?: BackendChoice;
  /** Serve the live view while training (`--serve PORT`). */
  readonly serve?: ServeSettings;
  /** Checkpoints and resume (`--checkpoint-dir`). */
  readonly checkpoints?: CheckpointSettings;
  /** Drift detection and reaction (`--drift-detector`, `--drift-reaction`). */
  readonly drift?: DriftConfig;
  /** `--quiet`, `--log-json`, `--status-interval`. */
  readonly progress: ProgressSettings;
  /** `--samples N`: stop after N samples. */
  readonly samples?: number;
  /** `--predictions FILE|-`: one NDJSON line per sample. */
  readonly predictions?: string;
  /** `--max-consecutive-skips`, `--max-skip-rate`, `--skip-window`. */
  readonly divergence: DivergenceConfig;
}

/** The name of `train`'s one model: its run id on the server, its checkpoint prefix (`train-*.sgck`), its lock. */
export const TRAIN_MODEL = 'train';

/**
 * `streamgrad train`'s options as an experiment config (`runExperiment`, the runtime
 * `streamgrad run` and `start` use): one model named `train`, its paths as typed (so run
 * it with `baseDir` the working folder), and what a command line adds to a config
 * (`--resume`, `--serve`) as plan overrides. Pure: it reads no file and no environment.
 *
 * Config paths → the options that set them, for messages: `TRAIN_OPTION_PATHS`.
 *
 * @example
 * const { config, overrides } = trainExperiment(parseTrainArgs(['--data', 'd.csv', '--targets', 'y', '--layers', '2,1:linear']));
 * // config.source = { csv: 'd.csv', targets: ['y'] }, config.models[0].name = 'train'
 * await runExperiment(config, { baseDir: process.cwd(), ...overrides });
 */
export function trainExperiment(settings: TrainSettings): { readonly config: ExperimentConfig; readonly overrides: PlanOverrides } {
  const { optimizer: { type, learningRate, ...optimizerRest }, start } = settings;
  const model = {
    name: TRAIN_MODEL,
    ...('file' in start ? { model: start.file } : { inputs: start.topology.inputSize, layers: start.topology.layers.map((l) => ({ units: l.units, activation: l.activation })), seed: start.seed, init: start.init }),
    loss: settings.loss,
    optimizer: { type, lr: learningRate, ...optimizerRest },
    batch: settings.batch,
    ...(settings.clipNorm !== undefined && { clipNorm: settings.clipNorm }),
    ...(Object.keys(settings.divergence).length > 0 && { divergence: { ...settings.divergence } }),
    ...(settings.backend !== undefined && { backend: settings.backend }),
    ...(settings.save !== undefined && { save: settings.save }),
    ...(settings.drift !== undefined && { drift: settings.drift }),
  };
  const c = settings.checkpoints;
  const config = {
    source: sourceOf(settings),
    models: [model],
    evaluation: { window: settings.window, ...(settings.predictions !== undefined && { predictions: settings.predictions }) },
    ...(c !== undefined && {
      checkpoints: {
        dir: c.dir, keep: c.keep,
        ...(c.everySteps !== undefined && { everySteps: c.everySteps }),
        ...(c.everySeconds !== undefined && { everySeconds: c.everySeconds }),
        ...(c.maxFailures !== undefined && { maxFailures: c.maxFailures }),
      },
    }),
    ...(settings.samples !== undefined && { limit: { trainedSamples: settings.samples } }),
    ...(settings.labels !== undefined && { labels: labelsOf(settings.labels) }),
  } as ExperimentConfig;
  const overrides: PlanOverrides = {
    ...(c?.resume === true && { resume: true }),
    // the dashboard keeps showing the final state after the run, until Ctrl-C; without a
    // token (--token, STREAMGRAD_TOKEN) train's live view is read-only: none is made for the session
    ...(settings.serve !== undefined && { serve: { ...settings.serve, keepServing: true, sessionToken: false } }),
  };
  return { config, overrides };
}

/** `--data FILE|-` (and `--format`) or `--mqtt URL --topic T`, with the record options. */
function sourceOf(settings: TrainSettings): ExperimentConfig['source'] {
  const i = settings.ingest;
  const records = {
    ...(i.features !== undefined && { features: [...i.features] }),
    ...(i.targets !== undefined && { targets: [...i.targets] }),
    ...(i.classes !== undefined && { classes: [...i.classes] }),
    // the policy is the default (reject) unless the records are named
    ...(i.targets !== undefined && i.missing !== 'reject' && { missing: i.missing }),
    ...(i.deadLetter !== undefined && { deadLetter: i.deadLetter }),
    ...(i.normalize && { normalize: true }),
    ...(i.normalizeTarget && { normalizeTarget: true }),
    ...(i.normalizeWarmup !== undefined && { normalizeWarmup: i.normalizeWarmup }),
    ...(i.normalizeClip !== undefined && { normalizeClip: i.normalizeClip === Infinity ? 'none' as const : i.normalizeClip }),
  };
  if (i.mqtt !== undefined) {
    const m = i.mqtt;
    // the settings subscribe to the labels' topics too (after the features'); the runtime adds them itself from `labels.topics`
    const topics = m.topics.slice(0, m.topics.length - (settings.labels?.topics?.length ?? 0));
    return { mqtt: { url: m.url, topics, queue: m.capacity, overflow: m.policy, ...(m.clientId !== undefined && { clientId: m.clientId }) }, ...records } as ExperimentConfig['source'];
  }
  const lines = { ...(i.maxLineBytes !== undefined && { maxLineBytes: i.maxLineBytes }), ...records };
  if (settings.data === '-') return { stdin: i.format, ...lines } as ExperimentConfig['source'];
  return { [i.format === 'csv' ? 'csv' : 'ndjson']: settings.data!, ...lines } as ExperimentConfig['source'];
}

/** `--labels FILE|ingest`, `--labels-topic`, `--id-field` and the join's options, as the `labels` section. */
function labelsOf(labels: LabelSettings): NonNullable<ExperimentConfig['labels']> {
  const j = labels.join;
  return {
    idField: j.idField,
    ...(labels.file !== undefined && { [labels.format]: labels.file }),
    ...(labels.topics !== undefined && { topics: [...labels.topics] }),
    ...(labels.ingest === true && { ingest: true as const }),
    ...(labels.timeField !== undefined && { timeField: labels.timeField }),
    ...(j.capacity !== undefined && { capacity: j.capacity }),
    ...(j.holdCapacity !== undefined && { hold: j.holdCapacity }),
    ...(j.timeoutSamples !== undefined && { timeoutSamples: j.timeoutSamples }),
    ...(j.timeoutMs !== undefined && { timeoutSeconds: j.timeoutMs / 1000 }),
    ...(j.expired !== undefined && { expired: j.expired }),
    ...(j.defaultLabel !== undefined && { default: { ...j.defaultLabel } }),
  };
}

/**
 * Config paths (`[N]` for any index) → the `train` options that set them, so that a
 * problem the runtime finds is told as the option typed (`optionMessage` in
 * config-flags.ts): `models[0].optimizer.lr: must be …` is `--lr: must be …`.
 */
export const TRAIN_OPTION_PATHS: readonly (readonly [path: string, option: string])[] = [
  ['models[N].optimizer.lr', '--lr'],
  ['models[N].optimizer.momentum', '--momentum'],
  ['models[N].optimizer.beta1', '--beta1'],
  ['models[N].optimizer.beta2', '--beta2'],
  ['models[N].optimizer.epsilon', '--epsilon'],
  ['models[N].optimizer', '--optimizer'],
  ['models[N].layers', '--layers'],
  ['models[N].inputs', '--layers'],
  ['models[N].model', '--model'],
  ['models[N].loss', '--loss'],
  ['models[N].batch', '--batch'],
  ['models[N].clipNorm', '--clip-norm'],
  ['models[N].divergence.maxConsecutiveSkips', '--max-consecutive-skips'],
  ['models[N].divergence.maxSkipRate', '--max-skip-rate'],
  ['models[N].divergence.skipWindow', '--skip-window'],
  ['models[N].backend', '--backend'],
  ['models[N].save', '--save'],
  ['models[N].drift', '--drift-detector'],
  ['source.csv', '--data'],
  ['source.ndjson', '--data'],
  ['source.stdin', '--data'],
  ['source.mqtt.url', '--mqtt'],
  ['source.mqtt.topics', '--topic'],
  ['source.mqtt.queue', '--queue'],
  ['source.mqtt.overflow', '--overflow'],
  ['source.mqtt.clientId', '--mqtt-client-id'],
  ['source.features', '--features'],
  ['source.targets', '--targets'],
  ['source.classes', '--classes'],
  ['source.missing', '--missing'],
  ['source.deadLetter', '--dead-letter'],
  ['source.maxLineBytes', '--max-line-bytes'],
  ['source.normalizeWarmup', '--normalize-warmup'],
  ['source.normalizeClip', '--normalize-clip'],
  ['evaluation.window', '--window'],
  ['evaluation.predictions', '--predictions'],
  ['checkpoints.dir', '--checkpoint-dir'],
  ['checkpoints.everySteps', '--checkpoint-every'],
  ['checkpoints.everySeconds', '--checkpoint-interval'],
  ['checkpoints.keep', '--checkpoint-keep'],
  ['checkpoints.maxFailures', '--checkpoint-failures'],
  ['limit.trainedSamples', '--samples'],
  ['labels.idField', '--id-field'],
  ['labels.ndjson', '--labels'],
  ['labels.csv', '--labels'],
  ['labels.topics', '--labels-topic'],
  ['labels.timeField', '--time-field'],
  ['labels.capacity', '--label-capacity'],
  ['labels.hold', '--label-hold'],
  ['labels.timeoutSamples', '--label-timeout'],
  ['labels.timeoutSeconds', '--label-timeout-seconds'],
  ['labels.expired', '--label-expired'],
  ['labels.default', '--label-default'],
  ['server', '--serve'],
];
