import { BACKENDS } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import { DEFAULT_INIT, INIT_SCHEMES } from '../core/init.ts';
import { LOSSES } from '../core/losses.ts';
import { MAX_WINDOW } from '../core/rolling-mean.ts';
import { MAX_BATCH } from '../operators/batch.ts';
import { type OptimizerConfig, OPTIMIZERS, type OptimizerType } from '../core/optimizers.ts';
import { type ExperimentResult, runExperiment } from '../runtime/run-experiment.ts';
import { withDelayedLabels } from '../runtime/delayed-labels.ts';
import { parseLayers } from '../runtime/layers.ts';
import { CHECKPOINT_HELP, CHECKPOINT_SPEC, parseCheckpointOptions } from './checkpoint-options.ts';
import { cliErrorOf, CliError, EXIT_FAILURE, EXIT_OK, exitCodeOf, oneLine, usage } from './cli-error.ts';
import { asOptionProblem, optionWords } from './config-flags.ts';
import { DRIFT_HELP, DRIFT_SPEC, parseDriftOptions } from './drift-options.ts';
import { DIVERGENCE_HELP, DIVERGENCE_SPEC, parseDivergenceOptions } from './divergence-options.ts';
import { parsePredictionsOption, PREDICTIONS_HELP } from './predictions-option.ts';
import { INGEST_HELP, INGEST_SPEC, parseIngestOptions } from './ingest-options.ts';
import { LABEL_HELP, LABEL_SPEC, parseLabelOptions } from './label-options.ts';
import { atMost, choice, flag, integer, number, type OptionSpec, parseOptions, text } from './options.ts';
import { parseProgressOptions, PROGRESS_HELP, PROGRESS_SPEC, type ProgressReporter, withProgress } from './progress.ts';
import { parseServeOptions, SERVE_HELP, SERVE_SPEC } from './serve-options.ts';
import { TRAIN_OPTION_PATHS, trainExperiment, type TrainSettings } from './train-config.ts';
import { type CountersAtStart, trainSummary } from './train-summary.ts';

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

/**
 * Runs the experiment train's options compile into (`trainExperiment`) on the library's
 * runtime, and shows it as train always has: the MQTT line, the progress (status line or
 * bar with the byte meter, rows and the `--samples` total), the closing lines
 * (`trainSummary`), and a failed run as one line ending "; model not saved" (exit 1).
 */
async function trainWith(settings: TrainSettings, progress: ProgressReporter): Promise<number> {
  const { config, overrides } = trainExperiment(settings);
  const { say, summary } = progress;
  let before: CountersAtStart = { samples: 0, steps: 0, skipped: 0, skippedSamples: 0 };
  let error: CliError | null = null;
  try {
    await runExperiment(config, {
      baseDir: process.cwd(),
      handleSignals: true,
      ...overrides,
      hooks: {
        say,
        // the runtime names config paths (`models[0].save`); train's person typed options
        notice: (line) => progress.notice(optionWords(line, TRAIN_OPTION_PATHS)),
        started({ models: [m], source, mqtt }) {
          const c = m.trainer.counters;
          before = { samples: c.samples, steps: c.steps, skipped: c.skipped, skippedSamples: c.skippedSamples };
          const i = settings.ingest;
          if (mqtt !== undefined) say(`training on ${i.mqtt!.url} (${i.mqtt!.topics.join(', ')}) as MQTT client ${mqtt.clientId} (persistent session) until Ctrl-C`);
          progress.start({
            models: [{ name: m.name, trainer: m.trainer, batch: settings.batch, units: m.units }],
            source: { name: settings.data ?? i.mqtt!.url, ...(source.meter !== undefined && { meter: source.meter }), ...(source.rows !== undefined && { rows: source.rows }), ...(settings.samples !== undefined && { samples: settings.samples }) },
          });
          progress.follow(m.run);
        },
        ended(result) {
          for (const line of trainSummary(result, settings, before, { interrupted: result.outcome === 'interrupted' })) summary(line);
          error = failureOf(result);
          if (error !== null) progress.fail(error);
          const [m] = result.models;
          const i = result.ingest;
          progress.finish({
            outcome: error !== null ? 'failed' : result.outcome,
            rejected: { total: i?.rejected ?? 0, byCode: { ...i?.byCode }, ...(settings.ingest.deadLetter !== undefined && { deadLetters: settings.ingest.deadLetter }) },
            extra: {
              saved: m.saved === undefined ? [] : [settings.save!],
              ...(result.mqtt !== undefined && { mqtt: { clientId: result.mqtt.clientId, ...result.mqtt.stats } }),
              ...(m.labels !== undefined && { labels: m.labels.stats }),
            },
          });
        },
      },
    });
  } catch (thrown) {
    throw cliErrorOf(asOptionProblem(thrown, TRAIN_OPTION_PATHS));
  }
  if (error !== null) throw error;
  return EXIT_OK;
}

/** Why the run failed, as train says it (the model is then not saved), or null. */
function failureOf(result: ExperimentResult): CliError | null {
  const [m] = result.models;
  const failure = m.failure ?? (m.savedNote !== undefined && m.saved === undefined && !m.savedNote.startsWith('diverged') ? m.savedNote : undefined) ?? result.problems[0];
  if (failure === undefined) return null;
  if (failure instanceof StreamgradError && exitCodeOf(failure) === undefined) return new CliError(`${failure.message} (${failure.code}); model not saved`, EXIT_FAILURE, { cause: failure });
  return new CliError(`training failed: ${optionWords(oneLine(failure), TRAIN_OPTION_PATHS)}; model not saved`, EXIT_FAILURE, { cause: failure });
}
