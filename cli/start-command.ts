import { DEFAULT_INIT } from '../pipeline/init.ts';
import { type LayerSpec, parameterCount } from '../pipeline/model.ts';
import { MAX_WINDOW } from '../pipeline/rolling-mean.ts';
import type { Trainer } from '../pipeline/trainer.ts';
import { MAX_BATCH } from '../operators/batch.ts';
import { BACKENDS } from '../pipeline/backend.ts';
import { type ExperimentConfig, type ModelOutcome, runExperiment } from '../runtime/run-experiment.ts';
import { EXIT_FAILURE, EXIT_OK, oneLine, usage } from './cli-error.ts';
import { asOptionProblem } from './config-flags.ts';
import { formatNumber, formatSeconds, formatStatus, formatTopology } from './format.ts';
import { atMost, choice, flag, integer, number, type OptionSpec, type Options, parseOptions } from './options.ts';
import { parseProgressOptions, PROGRESS_HELP, PROGRESS_SPEC, type ProgressReporter, withProgress } from './progress.ts';
import { parseServeOptions, SERVE_HELP, SERVE_SPEC } from './serving.ts';

export const START_HELP = `Usage: streamgrad start [options]

Races two networks of about the same size, trained online side by side on one
simulated Michaelis-Menten enzyme-kinetics stream: x = [Vmax, S, Km] drawn
uniformly from [0.5, 2] x [0, 10] x [0.5, 5], y = [Vmax*S/(Km + S) + noise]:

  wide   3 -> 70 relu -> 1 linear           (351 parameters)
  deep   3 -> 16 relu -> 16 relu -> 1 linear (353 parameters)

Both use the mse loss and Adam and are scored prequentially (each sample is
predicted before it is learned). Runs until Ctrl-C, or --samples or --steps,
showing its progress on stderr (a bar with --samples or --steps on a terminal, see
Progress below), then prints a summary.

Options:
  --samples N   stop after N samples of the stream
  --steps N     stop after N training steps of each model
  --batch N     samples per update (default 1)
  --lr X        Adam's learning rate (default 0.003)
  --seed N      seed of the stream; the models use N+1 and N+2 (default 0)
  --window N    samples the rolling metrics cover (default 1000)
  --backend B   kernels: auto, wasm, wasm-f32 or js (default auto: WebAssembly
                SIMD where available; STREAMGRAD_BACKEND sets it)

${PROGRESS_HELP}
${SERVE_HELP}  With --serve (or a PORT environment variable) each model trains as its own
  run ("wide", "deep") on its own copy of the stream, so either can be paused
  or stepped from the dashboard. Without --token or STREAMGRAD_TOKEN it makes a
  control token for the session and prints it. \`npm start\` runs \`start --serve auto\`.
`;

const SPEC: OptionSpec = {
  samples: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  window: { type: 'string' },
  backend: { type: 'string' },
  ...SERVE_SPEC,
  ...PROGRESS_SPEC,
  help: { type: 'boolean', short: 'h' },
};

/** The lecture's deep-vs-wide race: one wide hidden layer against two narrow ones, ~350 parameters each. */
const RACE: readonly { readonly name: string; readonly layers: readonly LayerSpec[] }[] = [
  { name: 'wide', layers: [{ units: 70, activation: 'relu' }, { units: 1, activation: 'linear' }] },
  { name: 'deep', layers: [{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }] },
];

/** `streamgrad start`: the live deep-vs-wide race. Resolves with the exit status once the run ends or is interrupted. */
export async function startCommand(args: readonly string[]): Promise<number> {
  const options = parseOptions(args, SPEC, 'streamgrad start');
  if (flag(options, 'help')) {
    process.stdout.write(START_HELP);
    return EXIT_OK;
  }
  return withProgress(parseProgressOptions(options), { command: 'start', intervalMs: 1000 }, (progress) => race(options, progress));
}

/** Where the config's problems come from on this command line. */
const OPTIONS_OF_PATHS = [
  ['models[N].optimizer', '--lr'],
  ['models[N].batch', '--batch'],
  ['models[N].backend', '--backend'],
  ['models[N].seed', '--seed'],
  ['source.seed', '--seed'],
  ['source.samples', '--samples'],
  ['limit.steps', '--steps'],
  ['evaluation.window', '--window'],
  ['server', '--serve'],
] as const;

/**
 * The race as an experiment config: the Michaelis-Menten stream, the two networks with
 * Adam on mse, seeds N+1 and N+2. Each model trains as its own run on its own copy of the
 * stream (the same seed gives the same samples), so with --serve either can be paused or
 * stepped from the dashboard.
 */
function raceConfig(options: Options): { config: ExperimentConfig; learningRate: number; batch: number; seed: number; samples?: number; steps?: number } {
  const samples = integer(options, 'samples', 1);
  const steps = integer(options, 'steps', 1);
  const batch = atMost(integer(options, 'batch', 1, 1), 'batch', MAX_BATCH);
  const window = atMost(integer(options, 'window', 1, 1000), 'window', MAX_WINDOW);
  const seed = integer(options, 'seed', 0, 0);
  if (seed > Number.MAX_SAFE_INTEGER - RACE.length) usage('--seed', `must be at most ${Number.MAX_SAFE_INTEGER - RACE.length}, got ${seed}`);
  const learningRate = number(options, 'lr', 0.003);
  const backend = options.has('backend') ? choice(options, 'backend', BACKENDS, 'auto') : undefined;
  const config: ExperimentConfig = {
    source: { simulated: 'michaelis-menten', seed, ...(samples !== undefined && { samples }) },
    models: RACE.map(({ name, layers }, i) => ({
      name, inputs: 3, layers: [...layers], loss: 'mse', optimizer: { type: 'adam', lr: learningRate }, batch, seed: seed + 1 + i, init: DEFAULT_INIT,
      ...(backend !== undefined && { backend }),
    })),
    evaluation: { window },
    ...(steps !== undefined && { limit: { steps } }),
  };
  return { config, learningRate, batch, seed, ...(samples !== undefined && { samples }), ...(steps !== undefined && { steps }) };
}

async function race(options: Options, progress: ProgressReporter): Promise<number> {
  const { config, learningRate, batch, seed, samples, steps } = raceConfig(options);
  const serving = parseServeOptions(options, process.env.PORT);
  const following: (() => void)[] = [];
  try {
    const result = await runExperiment(config, {
      handleSignals: true,
      ...(serving !== undefined && { serve: { ...serving, keepServing: true } }),
      hooks: {
        say: progress.say,
        notice: progress.notice,
        models(built) {
          for (const r of built) progress.say(`${label(r, 0)}: ${parameterCount(r.trainer.model)} parameters, mse loss, adam lr ${formatNumber(learningRate)}, batch ${batch}`);
        },
        started({ models }) {
          progress.say(`streaming Michaelis-Menten samples (seed ${seed})${limitText(samples, steps)}; Ctrl-C stops`);
          progress.start({
            models: models.map((r) => ({ name: r.name, trainer: r.trainer, label: label(r), batch })),
            source: { name: `michaelis-menten (seed ${seed})`, samples, steps },
          });
          for (const m of models) following.push(progress.follow(m.run));
        },
        failed: (error, model) => progress.fail(error, model),
        ended(r) {
          summarize(r.models, r.outcome, r.elapsedMs, progress);
          progress.finish({ outcome: r.outcome });
          for (const unfollow of following) unfollow();
        },
      },
    });
    return result.models.some((m) => m.failure !== undefined) ? EXIT_FAILURE : EXIT_OK;
  } catch (error) {
    throw asOptionProblem(error, OPTIONS_OF_PATHS);
  }
}

function label(racer: { readonly name: string; readonly trainer: Trainer }, width = LABEL_WIDTH): string {
  const { model } = racer.trainer;
  return `${racer.name} ${formatTopology(model.inputSize, model.layers).padEnd(width)}`;
}

const LABEL_WIDTH = Math.max(...RACE.map((r) => formatTopology(3, r.layers.map((l) => ({ outputs: l.units, activation: l.activation }))).length));

/** The closing lines (shown with --quiet too): how the race ended, each model's average rate and metrics, the leader. */
function summarize(models: readonly ModelOutcome[], how: string, elapsed: number, progress: ProgressReporter): void {
  progress.summary(`${how} after ${formatSeconds(elapsed)}`);
  for (const r of models) {
    const average = (r.trainer.counters.samples * 1000) / elapsed;
    const status = formatStatus(label(r), r.trainer.counters, r.metrics.count > 0 ? r.metrics : undefined, 'mse', average);
    progress.summary(`${status}${r.failure === undefined ? '' : ` (stopped: ${oneLine(r.failure)})`}`);
  }
  const leader = leaderLine(models);
  if (leader !== null) progress.summary(leader);
}

function leaderLine(models: readonly ModelOutcome[]): string | null {
  const scored = models.filter((r) => r.metrics.count > 0 && Number.isFinite(r.metrics.loss));
  if (scored.length < 2) return null;
  const sorted = [...scored].sort((a, b) => a.metrics.loss - b.metrics.loss);
  return `leader: ${sorted[0].name} (rolling mse ${sorted.map((r) => `${r.name} ${formatNumber(r.metrics.loss)}`).join(' vs ')})`;
}

function limitText(samples: number | undefined, steps: number | undefined): string {
  const limits = [samples === undefined ? '' : `${samples} samples`, steps === undefined ? '' : `${steps} steps`].filter(Boolean);
  return limits.length === 0 ? '' : `, stopping after ${limits.join(' or ')}`;
}
