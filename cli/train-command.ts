import { BACKENDS, resolveKernels } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import { pipe } from 'rxjs';
import { ingest } from '../pipeline/ingest.ts';
import { DEFAULT_INIT, INIT_SCHEMES, initialize } from '../core/init.ts';
import { LOSSES } from '../core/losses.ts';
import type { Kernels } from '../core/kernels.ts';
import { cloneModel, createModel, type Model, topologyOf } from '../core/model.ts';
import { MAX_WINDOW } from '../core/rolling-mean.ts';
import { checkBatchFits } from '../core/workspace.ts';
import { MAX_BATCH } from '../operators/batch.ts';
import { type OptimizerConfig, OPTIMIZERS, type OptimizerType } from '../core/optimizers.ts';
import { continuePreprocessing, type Preprocessing, preprocessingOf } from '../pipeline/model-artifact.ts';
import { type IngestRecord, ingestStats } from '../core/record.ts';
import { DriftAdaptation } from '../pipeline/drift-adaptation.ts';
import { type Checkpointer, TrainingRun } from '../pipeline/run.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { stableClientId } from '../sources/mqtt.ts';
import { absolute, openCheckpoints, type RunCheckpoints } from '../runtime/checkpointing.ts';
import { CHECKPOINT_HELP, CHECKPOINT_SPEC, parseCheckpointOptions } from './checkpoint-options.ts';
import { cliErrorOf, asOptionError, CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, exitCodeOf, oneLine, usage } from './cli-error.ts';
import { DRIFT_HELP, DRIFT_SPEC, parseDriftOptions } from './drift-options.ts';
import { isDiverged, saveDivergedModel } from '../runtime/divergence.ts';
import { DIVERGENCE_FIELDS, DIVERGENCE_HELP, DIVERGENCE_SPEC, parseDivergenceOptions } from './divergence-options.ts';
import { formatMetrics, formatRate, formatSeconds, formatTrained } from './format.ts';
import { PredictionsFile } from '../runtime/predictions-file.ts';
import { parsePredictionsOption, PREDICTIONS_HELP } from './predictions-option.ts';
import { type Ingestion, ingestionState, type IngestSettings, mqttSummary, openIngestion, targetUnits } from '../runtime/ingestion.ts';
import { INGEST_HELP, INGEST_SPEC, parseIngestOptions } from './ingest-options.ts';
import { combineStates, type DelayedLabels, labelsSource, labelSummary, openLabels, withDelayedLabels } from '../runtime/delayed-labels.ts';
import { LABEL_HELP, LABEL_SPEC, parseLabelOptions } from './label-options.ts';
import { parseLayers } from '../runtime/layers.ts';
import { checkWritable, loadArtifact, preprocessingNote, saveModelFile } from '../runtime/model-io.ts';
import { atMost, choice, flag, integer, number, type OptionSpec, parseOptions, text } from './options.ts';
import { RejectionLog, recordNoun } from '../runtime/rejections.ts';
import { resumeRecords, SourceFingerprint } from '../runtime/source-identity.ts';
import { parseProgressOptions, PROGRESS_HELP, PROGRESS_SPEC, type ProgressReporter, withProgress } from './progress.ts';
import { onSignals, serverFailure, startServing, untilSignal } from '../runtime/serving.ts';
import { parseServeOptions, SERVE_HELP, SERVE_SPEC } from './serve-options.ts';
import { SavedLabels } from '../server/saved-labels.ts';
import type { TrainSettings } from './train-config.ts';
import { IngestRelay } from '../server/ingest-relay.ts';

export const TRAIN_HELP = `Usage: streamgrad train (--data FILE|- | --mqtt URL --topic T) (--model FILE | --layers SPEC) [options]

Trains a multi-layer perceptron online on newline-delimited JSON samples,
one {"x": [...], "y": [...]} per line (or named records with --features and
--targets), on a CSV file with a header row, or on an MQTT subscription, and prints
a summary on stderr.

Input and model (exactly one of --model and --layers):
  --data FILE|-        samples, one JSON object per line (or CSV, see --format);
                       - reads standard input
  --model FILE         start from a streamgrad/model@1 file; the preprocessing it was
                       saved with must match this run's (--normalize, --features...)
                       and its statistics carry on
  --layers SPEC        start from a fresh network: input size, then units:activation
                       per layer, e.g. 3,16:relu,16:relu,1:linear (at most 1048576
                       units a layer and 16777216 parameters)
                       (activations: linear, sigmoid, tanh, relu, leaky_relu, sign, softmax)
  --seed N             seed of the fresh network's weights (default 0)
  --init SCHEME        pytorch (U(±1/√fan_in), weights and biases), auto (he for relu
                       layers, xavier for the rest), xavier, he or zeros (default ${DEFAULT_INIT})
  --save FILE          write the trained model there (streamgrad/model@1, atomically),
                       with the preprocessing it was trained with (feature names, classes,
                       missing-value policy, normaliser statistics): predict applies it

Training:
  --loss NAME          mse, bce, cross_entropy or perceptron (default mse)
  --optimizer NAME     sgd, momentum, adam, rmsprop or adagrad (default sgd)
  --lr X               learning rate (default 0.01)
  --momentum X         momentum's mu (default 0.9)
  --beta1 X, --beta2 X adam's moment decay rates (default 0.9, 0.999)
  --epsilon X          adam, rmsprop, adagrad denominator term
  --batch N            samples per update (default 1, at most 65536; the last batch may
                       be smaller)
  --clip-norm X        rescale gradients whose global L2 norm exceeds X
  --window N           samples the rolling metrics cover (default 1000, at most 1000000)
  --backend NAME       kernels: auto, native, native-f32, wasm, wasm-f32 (-f32: float32
                       products) or js (default auto: native where its addon was built,
                       else WebAssembly SIMD; STREAMGRAD_BACKEND sets it)
  --samples N          stop after N samples (rejected records do not count), then end
                       as at the end of the data: checkpoint, --save
${PREDICTIONS_HELP}
${DIVERGENCE_HELP}
${INGEST_HELP}
${LABEL_HELP}
${DRIFT_HELP}
${CHECKPOINT_HELP}
${SERVE_HELP}
${PROGRESS_HELP}
Lines that are not JSON, or not a sample the model takes (wrong length, NaN or
Infinity, wrong type), are skipped, counted and reported with their line numbers.
Exit status: 0 trained, 1 the run failed (e.g. diverged), 2 bad option or input file.
`;

const SPEC: OptionSpec = {
  data: { type: 'string' },
  model: { type: 'string' },
  layers: { type: 'string' },
  seed: { type: 'string' },
  init: { type: 'string' },
  save: { type: 'string' },
  loss: { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  momentum: { type: 'string' },
  beta1: { type: 'string' },
  beta2: { type: 'string' },
  epsilon: { type: 'string' },
  batch: { type: 'string' },
  'clip-norm': { type: 'string' },
  window: { type: 'string' },
  backend: { type: 'string' },
  samples: { type: 'string' },
  predictions: { type: 'string' },
  ...DIVERGENCE_SPEC,
  ...SERVE_SPEC,
  ...INGEST_SPEC,
  ...LABEL_SPEC,
  ...DRIFT_SPEC,
  ...CHECKPOINT_SPEC,
  ...PROGRESS_SPEC,
  help: { type: 'boolean', short: 'h' },
};

/** Engine config fields → the options that set them, for error messages. */
const FIELD_OPTIONS: Readonly<Record<string, string>> = {
  loss: '--loss',
  optimizer: '--optimizer',
  'optimizer.learningRate': '--lr',
  'optimizer.momentum': '--momentum',
  'optimizer.beta1': '--beta1',
  'optimizer.beta2': '--beta2',
  'optimizer.epsilon': '--epsilon',
  clipNorm: '--clip-norm',
  ...DIVERGENCE_FIELDS,
};

/** Which optimizer-specific options each optimizer reads. */
const OPTIMIZER_OPTIONS: Readonly<Record<string, readonly OptimizerType[]>> = {
  momentum: ['momentum'],
  beta1: ['adam'],
  beta2: ['adam'],
  epsilon: ['adam', 'rmsprop', 'adagrad'],
};

export type { TrainSettings };

/** Parses and checks the options (ranges of hyper-parameters are checked by `createTrainer`). */
export function parseTrainArgs(args: readonly string[]): TrainSettings | 'help' {
  try {
    return readTrainArgs(args);
  } catch (error) {
    throw cliErrorOf(error); // the runtime's readers (--layers) throw its ConfigError
  }
}

function readTrainArgs(args: readonly string[]): TrainSettings | 'help' {
  const options = parseOptions(args, SPEC, 'streamgrad train');
  if (flag(options, 'help')) return 'help';

  const data = text(options, 'data');
  if (data === '' || (data === undefined && !options.has('mqtt'))) usage('--data', 'required: a file of NDJSON or CSV samples, or - for standard input (or --mqtt URL)');
  const modelFile = text(options, 'model');
  const layers = text(options, 'layers');
  if ((modelFile === undefined) === (layers === undefined)) {
    const what = modelFile === undefined ? 'one is required' : 'give only one';
    usage('--model/--layers', `${what}: --model FILE to continue a saved model, or --layers SPEC for a fresh network`);
  }
  let start: TrainSettings['start'];
  if (modelFile !== undefined) {
    for (const only of ['seed', 'init']) if (options.has(only)) usage(`--${only}`, 'only applies to a fresh network (--layers), not to --model');
    start = { file: modelFile };
  } else {
    start = {
      topology: parseLayers(layers!),
      seed: integer(options, 'seed', 0, 0),
      init: choice(options, 'init', INIT_SCHEMES, DEFAULT_INIT),
    };
  }

  const type = choice(options, 'optimizer', OPTIMIZERS, 'sgd');
  for (const [name, users] of Object.entries(OPTIMIZER_OPTIONS)) {
    if (options.has(name) && !users.includes(type)) {
      usage(`--${name}`, `does not apply to --optimizer ${type} (it is read by ${users.join(', ')})`);
    }
  }
  const optimizer: Record<string, unknown> = { type, learningRate: number(options, 'lr', 0.01) };
  for (const name of Object.keys(OPTIMIZER_OPTIONS)) {
    const value = number(options, name);
    if (value !== undefined) optimizer[name] = value;
  }

  const loss = choice(options, 'loss', LOSSES, 'mse');
  const labels = parseLabelOptions(options, options.has('mqtt'));
  return {
    data,
    ingest: withDelayedLabels(parseIngestOptions(options, data), labels),
    ...(labels !== undefined && { labels }),
    start,
    save: text(options, 'save'),
    loss,
    drift: parseDriftOptions(options, loss),
    optimizer: optimizer as unknown as OptimizerConfig,
    batch: atMost(integer(options, 'batch', 1, 1), 'batch', MAX_BATCH),
    window: atMost(integer(options, 'window', 1, 1000), 'window', MAX_WINDOW),
    clipNorm: number(options, 'clip-norm'),
    backend: options.has('backend') ? choice(options, 'backend', BACKENDS, 'auto') : undefined,
    serve: parseServeOptions(options),
    checkpoints: parseCheckpointOptions(options),
    progress: parseProgressOptions(options),
    samples: integer(options, 'samples', 1),
    predictions: parsePredictionsOption(options),
    divergence: parseDivergenceOptions(options),
  };
}

/** `streamgrad train`: returns the exit status; throws `CliError` for one-line failures. */
export async function trainCommand(args: readonly string[]): Promise<number> {
  const settings = parseTrainArgs(args);
  if (settings === 'help') {
    process.stdout.write(TRAIN_HELP);
    return EXIT_OK;
  }
  return withProgress(settings.progress, { command: 'train' }, (progress) => trainWith(settings, progress));
}

async function trainWith(settings: TrainSettings, progress: ProgressReporter): Promise<number> {
  let kernels: Kernels;
  try {
    kernels = resolveKernels(settings.backend);
  } catch (error) {
    throw asOptionError(error, { backend: '--backend' });
  }
  const { model, preprocessing } = await buildModel(settings, kernels);
  try {
    checkBatchFits(topologyOf(model), settings.batch);
  } catch (error) {
    throw asOptionError(error, { batch: '--batch' });
  }
  let trainer: Trainer;
  try {
    trainer = createTrainer({ model, loss: settings.loss, optimizer: settings.optimizer, clipNorm: settings.clipNorm, kernels, ...settings.divergence });
  } catch (error) {
    throw asOptionError(error, FIELD_OPTIONS);
  }
  if (settings.save !== undefined) await checkWritable(settings.save);
  const drift = settings.drift === undefined ? undefined : new DriftAdaptation(trainer, settings.drift);
  const { say, summary } = progress;
  const rejections = new RejectionLog(say);
  // with --resume, the trainer's state comes from the checkpoint before the data opens,
  // so that the ingestion (dead-letter file, statistics) resumes at the same point
  let ingestion: Ingestion | undefined;
  let delayed: DelayedLabels | null = null;
  // what the records read are, so that a resume on other data at the same path is refused
  const fingerprint = settings.data === undefined ? null : new SourceFingerprint(absolute(settings.data));
  // the version labels of the run (promote/rollback), in its checkpoints
  const versionLabels = new SavedLabels();
  // --labels ingest: the labels sensors send to the server's /ingest
  const labelsRelay = settings.labels?.ingest === true ? new IngestRelay() : undefined;
  const checkpoints = settings.checkpoints === undefined ? null : await openCheckpoints(settings.checkpoints, {
    id: 'train',
    trainer,
    window: settings.window,
    ...(drift !== undefined && { drift }),
    source: describeSource(settings),
    state: () => combineStates(combineStates(ingestionState(ingestion!, rejections), delayed?.state), versionLabels.section('train')),
    ...(fingerprint !== null && { identity: (records: number) => fingerprint.identity(records) }),
    say: progress.notice,
  });
  versionLabels.resume('train', checkpoints?.resumed?.header.sections);
  ingestion = await openIngestion(mqttSession(settings), settings.data, trainer.shape, rejections, checkpoints?.resumed?.header.sections);
  if (settings.labels !== undefined) {
    delayed = await openLabels(settings.labels, { features: ingestion.records, ...(labelsRelay !== undefined && { ingest: labelsRelay }), trainer, featureMap: ingestion.features, normalizer: ingestion.normalizer, resume: checkpoints?.resumed?.header.sections, maxLineBytes: settings.ingest.maxLineBytes })
      .catch(async (error: unknown) => {
        await ingestion!.stop();
        await ingestion!.deadLetters.close().catch(() => undefined);
        throw error;
      });
  }
  if (checkpoints?.resumed == null && 'file' in settings.start) {
    // a saved model goes on learning with the preprocessing it was trained with (a resume has its checkpoint's)
    try {
      continuePreprocessing(preprocessing, ingestion);
    } catch (error) {
      await ingestion.stop();
      await ingestion.deadLetters.close().catch(() => undefined);
      if (error instanceof StreamgradError) throw new CliError(`--model ${settings.start.file}: ${error.message}`, EXIT_USAGE, { cause: error });
      throw error;
    }
  }
  // a live source continues with new messages; a file or stdin is read past what the
  // checkpoint accounted for, and those records must be the ones it read
  const offset = checkpoints?.resume?.sourceOffset ?? 0;
  const source = delayed?.records ?? ingestion.records;
  let records = fingerprint?.wrap(source) ?? source;
  if (offset > 0 && fingerprint !== null && !ingestion.live) {
    records = await resumeRecords(records, fingerprint, offset, checkpoints!.resumed!.header.sections.sourceIdentity, `--data ${settings.data}`);
  }
  if (checkpoints?.resumeNote != null) progress.notice(checkpoints.resumeNote);
  // appended to only when the run goes on from a checkpoint (`resume` is null on a fresh start, --checkpoint-dir or not)
  const predictions = settings.predictions === undefined ? null : await PredictionsFile.open(settings.predictions, '--predictions', checkpoints?.resume != null);
  const run = trainingRun(trainer, settings, ingestion, records, checkpoints, drift, predictions, delayed);
  if (ingestion.mqtt !== undefined) say(`training on ${settings.ingest.mqtt!.url} (${settings.ingest.mqtt!.topics.join(', ')}) as MQTT client ${ingestion.mqtt.clientId} (persistent session) until Ctrl-C`);
  const server = settings.serve === undefined ? null : await startServing({ ...settings.serve, labels: versionLabels, ...(labelsRelay !== undefined && { ingest: labelsRelay }) }, [run], progress.notice);
  // Ctrl-C or SIGTERM: stop at the next step boundary, write the last checkpoint and the
  // model, and say so; a second one quits at once
  let interrupted: NodeJS.Signals | null = null;
  const signals = onSignals((signal) => {
    interrupted = signal;
    progress.notice(`${signal}: stopping after the batch in progress${checkpoints === null ? '' : ' and writing a checkpoint'} (again to quit at once)`);
    run.stop();
    void ingestion.stop();
    // labels still to come to /ingest are not waited for
    labelsRelay?.end();
  });
  const started = performance.now();
  const before = { samples: trainer.counters.samples, steps: trainer.counters.steps, skipped: trainer.counters.skipped, skippedSamples: trainer.counters.skippedSamples };
  progress.start({
    models: [{ name: run.id, trainer, batch: settings.batch, units: targetUnits(settings.ingest) }],
    source: { name: settings.data ?? settings.ingest.mqtt!.url, meter: ingestion.meter, rows: () => ingestion.counters.read, ...(settings.samples !== undefined && { samples: settings.samples }) },
  });
  progress.follow(run);
  let failure: unknown = null;
  try {
    await run.start();
  } catch (error) {
    failure = error;
  }
  const elapsed = performance.now() - started;
  await ingestion.deadLetters.close().catch((closing: unknown) => { failure ??= closing; });
  await predictions?.close().catch((closing: unknown) => { failure ??= closing; });
  const c = trainer.counters;
  const samples = c.samples - before.samples;
  if (interrupted !== null) summary(`interrupted after ${c.samples} samples`);
  const sinceResume = before.steps > 0 ? ` since the checkpoint (${c.samples} samples, ${c.steps} steps in all)` : '';
  const sinceStart = { samples, skipped: c.skipped - before.skipped, skippedSamples: c.skippedSamples - before.skippedSamples };
  summary(`${formatTrained(sinceStart)} in ${c.steps - before.steps} steps (batch ${settings.batch}) in ${formatSeconds(elapsed)}, ${formatRate(elapsed > 0 ? (samples * 1000) / elapsed : NaN)}${sinceResume}`);
  summary(`rejected ${rejections.summary(recordNoun(settings.ingest))}; skipped ${c.skipped} step${c.skipped === 1 ? '' : 's'} for non-finite values`);
  const { unknownKeys, imputed } = ingestion.counters;
  const dropped = ingestion.dropped();
  if (unknownKeys + imputed + dropped > 0) summary(`ignored ${unknownKeys} unknown field${unknownKeys === 1 ? '' : 's'} (${[...(ingestion.features?.unknownNames ?? [])].join(', ')}); imputed ${imputed} missing value${imputed === 1 ? '' : 's'}; queue dropped ${dropped}`);
  if (ingestion.mqtt !== undefined) summary(mqttSummary(ingestion.mqtt));
  if (delayed !== null) summary(labelSummary(delayed.stats(), delayed.join.expiredPolicy));
  if (settings.ingest.deadLetter !== undefined) summary(`dead letters in ${settings.ingest.deadLetter}`);
  const metrics = run.metrics.snapshot();
  const units = targetUnits(settings.ingest);
  summary(`rolling over the last ${metrics.count} samples: ${formatMetrics(metrics, settings.loss, units)}${c.clipped > 0 ? `; ${c.clipped} steps clipped` : ''}`);
  const total = run.metrics.cumulative();
  summary(`whole stream, ${total.count} samples: ${formatMetrics(total, settings.loss, units)}`);
  if (predictions !== null) summary(`predictions of ${predictions.lines} samples in ${predictions.shown}`);
  let error: CliError | null = null;
  if (failure instanceof StreamgradError && exitCodeOf(failure) === undefined) error = new CliError(`${failure.message} (${failure.code}); model not saved`, EXIT_FAILURE, { cause: failure });
  else if (failure !== null) error = new CliError(`training failed: ${oneLine(failure)}; model not saved`, EXIT_FAILURE, { cause: failure });
  const saved: string[] = [];
  if (isDiverged(failure) && settings.save !== undefined) summary(await saveDivergedModel(settings.save, trainer.model));
  if (error === null && settings.save !== undefined) {
    await saveModelFile(settings.save, trainer.model, '--save', preprocessingOf(ingestion));
    summary(`saved ${settings.save}${preprocessingNote(ingestion)}`);
    saved.push(settings.save);
  }
  if (checkpoints !== null) summary(await checkpoints.summary());
  signals.dispose();
  if (error !== null) progress.fail(error);
  progress.finish({
    outcome: error !== null ? 'failed' : interrupted !== null ? 'interrupted' : 'finished',
    rejected: { total: rejections.total, byCode: { ...ingestion.counters.rejectedByCode }, ...(settings.ingest.deadLetter !== undefined && { deadLetters: settings.ingest.deadLetter }) },
    extra: { saved, ...(ingestion.mqtt !== undefined && { mqtt: { clientId: ingestion.mqtt.clientId, ...ingestion.mqtt.stats } }), ...(delayed !== null && { labels: delayed.stats() }) },
  });
  if (server !== null && interrupted === null) {
    // the dashboard keeps showing the final state until the user is done with it
    progress.notice(`training ${error === null ? 'done' : 'stopped'}; still serving ${server.url}/ (Ctrl-C stops)`);
    await untilSignal();
  }
  run.dispose();
  await server?.close();
  if (error !== null) throw error;
  const served = serverFailure(server);
  if (served !== null) throw served;
  return EXIT_OK;
}

/** The starting model, and the preprocessing a saved one was trained with (null for a fresh one). */
async function buildModel(settings: TrainSettings, kernels: Kernels): Promise<{ model: Model; preprocessing: Preprocessing | null }> {
  const { start } = settings;
  if ('file' in start) {
    const { artifact } = await loadArtifact(start.file);
    return { model: cloneModel(artifact.model, kernels), preprocessing: artifact.preprocessing };
  }
  try {
    return { model: initialize(createModel(start.topology, kernels), start.init, start.seed), preprocessing: null };
  } catch (error) {
    if (error instanceof StreamgradError) throw new CliError(`--layers: ${error.message}`, EXIT_USAGE, { cause: error });
    throw error;
  }
}

/**
 * Records (`source`, positioned after the checkpoint's offset on a resume) → validation
 * (typed rejections to the log and the dead-letter file) → normalisation (when asked) → train, as a `TrainingRun`: it pulls one record at a time
 * (a file is read only as fast as training goes), yields to the event loop so a
 * dashboard stays live, checkpoints, and can be steered (`--serve`). Its `checkpoint`
 * command writes a checkpoint with --checkpoint-dir, else the --save model.
 */
function trainingRun(trainer: Trainer, settings: TrainSettings, ingestion: Ingestion, source: AsyncIterable<IngestRecord>, checkpoints: RunCheckpoints | null, drift: DriftAdaptation | undefined, predictions: PredictionsFile | null, delayed: DelayedLabels | null): TrainingRun {
  const save = settings.save;
  const offset = checkpoints?.resume?.sourceOffset ?? 0;
  let checkpoint: Checkpointer | undefined = checkpoints?.checkpoint;
  if (checkpoint === undefined && save !== undefined) {
    checkpoint = async () => {
      await saveModelFile(save, trainer.model, '--save', preprocessingOf(ingestion));
      return save;
    };
  }
  const stages = ingest({ trainer, features: ingestion.features, normalizer: ingestion.normalizer, deadLetters: ingestion.deadLetters, counters: ingestion.counters });
  return new TrainingRun({
    id: 'train',
    trainer,
    source,
    prepare: delayed === null ? stages : pipe(delayed.stage, stages),
    ingest: ingestStats(ingestion.counters, ingestion.dropped, delayed?.stats),
    // what `--serve`'s /predict applies to a request, as this run's stages apply it to a sample
    preprocessing: () => preprocessingOf(ingestion),
    ...(ingestion.mqtt !== undefined && { notices: ingestion.mqtt.notices }),
    train: { batch: settings.batch, window: checkpoints?.resume?.window ?? settings.window },
    sourceOffset: offset,
    ...(drift !== undefined && { drift }),
    ...(settings.samples !== undefined && { maxSamples: settings.samples }),
    ...(predictions !== null && predictions.hooks(trainer, { model: 'train', classes: ingestion.features?.classes ?? undefined })),
    ...(checkpoint !== undefined && { checkpoint }),
    ...(checkpoints !== null && { autoCheckpoint: checkpoints.autoCheckpoint }),
  });
}

/**
 * The ingestion settings with the MQTT client id filled in: --mqtt-client-id, or one
 * derived from the checkpoint folder, so that a trainer restarted on the same folder
 * resumes its broker session (and receives what was published while it was down).
 */
function mqttSession(settings: TrainSettings): IngestSettings {
  const { mqtt } = settings.ingest;
  if (mqtt === undefined || mqtt.clientId !== undefined || settings.checkpoints === undefined) return settings.ingest;
  return { ...settings.ingest, mqtt: { ...mqtt, clientId: stableClientId(`${absolute(settings.checkpoints.dir)}\u0000train`) } };
}

/** What the data is, for a checkpoint: a resume on other data is refused. */
function describeSource(settings: TrainSettings): Record<string, unknown> {
  const { ingest: i } = settings;
  const labels = settings.labels === undefined ? {} : labelsSource(settings.labels, absolute);
  if (i.mqtt !== undefined) return { mqtt: i.mqtt.url, topics: i.mqtt.topics, ...labels };
  return { data: absolute(settings.data!), format: i.format, features: i.features ?? null, targets: i.targets ?? null, classes: i.classes ?? null, ...labels };
}
