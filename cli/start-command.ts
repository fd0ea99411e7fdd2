import { BACKENDS, type BackendChoice } from '../core/backend.ts';
import { parameterCount } from '../core/model.ts';
import { MAX_WINDOW } from '../core/rolling-mean.ts';
import { MAX_BATCH } from '../operators/batch.ts';
import { checkExperiment, ExperimentConfigError, type ExperimentModel, type ExperimentResult, type ModelOutcome, runPlan } from '../runtime/run-experiment.ts';
import { EXIT_FAILURE, EXIT_OK, oneLine, usage } from './cli-error.ts';
import { asOptionProblem } from './config-flags.ts';
import { formatNumber, formatSeconds, formatStatus, formatTopology } from './format.ts';
import { atMost, choice, flag, integer, number, type OptionSpec, type Options, parseOptions } from './options.ts';
import { parseProgressOptions, PROGRESS_HELP, PROGRESS_SPEC, type ProgressReporter, withProgress } from './progress.ts';
import { RACE, type RaceSettings, raceConfig } from './start-scene.ts';
import { parseServeOptions, SERVE_HELP, SERVE_SPEC } from './serve-options.ts';

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
  --backend B   kernels: auto, native, native-f32, wasm, wasm-f32 or js (default
                auto: native where built, else WebAssembly SIMD; STREAMGRAD_BACKEND sets it)
  --fast        with --serve: the sensor scene at full speed instead of 300
                samples a second

${PROGRESS_HELP}
${SERVE_HELP}  With --serve (or a PORT environment variable) each model trains as its own
  run ("wide", "deep") on its own copy of the stream, so either can be paused
  or stepped from the dashboard. Without --token or STREAMGRAD_TOKEN it makes a
  control token for the session and prints it. \`npm start\` runs \`start --serve auto\`.

  Served, the race is a scene a person can follow: a Michaelis-Menten sensor
  reporting 300 samples a second, x = [Vmax, S], whose enzyme's Km (hidden)
  changes every 18,000 samples (about a minute: 1 -> 4 -> 0.5 -> 8); the wide
  (2 -> 84 relu -> 1) and the deep (2 -> 16 relu -> 16 relu -> 1) network, 337
  parameters each, watch their loss with Page-Hinkley; at an alarm a copy learning
  3x faster runs beside each for 1,000 samples and replaces it only if clearly better;
  alarms and reactions are markers on the page (docs/drift.md).
  The scene is examples/drifting-sensor.json: streamgrad run shows it too.

The race is an experiment config run by the library's runtime (streamgrad/runtime),
as streamgrad run runs a config file.
`;

const SPEC: OptionSpec = {
  samples: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  window: { type: 'string' },
  backend: { type: 'string' },
  fast: { type: 'boolean' },
  ...SERVE_SPEC,
  ...PROGRESS_SPEC,
  help: { type: 'boolean', short: 'h' },
};

/** The config paths the options set: a problem the runtime's checks find is told as the option. */
const OPTION_PATHS = [
  ['models[N].optimizer', '--lr'],
  ['models[N].batch', '--batch'],
  ['models[N].backend', '--backend'],
  ['models[N].seed', '--seed'],
  ['source.seed', '--seed'],
  ['evaluation.window', '--window'],
  ['limit.samples', '--samples'],
  ['limit.steps', '--steps'],
  ['server', '--serve'],
] as const;

/** `streamgrad start`: the live deep-vs-wide race. Resolves with the exit status once the run ends or is interrupted. */
export async function startCommand(args: readonly string[]): Promise<number> {
  const options = parseOptions(args, SPEC, 'streamgrad start');
  if (flag(options, 'help')) {
    process.stdout.write(START_HELP);
    return EXIT_OK;
  }
  return withProgress(parseProgressOptions(options), { command: 'start', intervalMs: 1000 }, (progress) => race(options, progress));
}

/** The race: its options compiled into a config (`raceConfig`), run by the library's runtime, shown here. */
async function race(options: Options, progress: ProgressReporter): Promise<number> {
  const seed = integer(options, 'seed', 0, 0);
  if (seed > Number.MAX_SAFE_INTEGER - RACE.length) usage('--seed', `must be at most ${Number.MAX_SAFE_INTEGER - RACE.length}, got ${seed}`);
  const samples = integer(options, 'samples', 1);
  const steps = integer(options, 'steps', 1);
  const serving = parseServeOptions(options, process.env.PORT);
  const settings: RaceSettings = {
    seed,
    ...(samples !== undefined && { samples }),
    ...(steps !== undefined && { steps }),
    batch: atMost(integer(options, 'batch', 1, 1), 'batch', MAX_BATCH),
    window: atMost(integer(options, 'window', 1, 1000), 'window', MAX_WINDOW),
    learningRate: number(options, 'lr', 0.003),
    ...(options.has('backend') && { backend: choice<BackendChoice>(options, 'backend', BACKENDS, 'auto') }),
    // served, the race is the sensor scene (start-scene.ts): two inputs, drift on, paced
    scene: serving !== undefined,
    fast: flag(options, 'fast'),
  };
  const planned = await checkExperiment(raceConfig(settings), serving === undefined ? {} : { serve: serving });
  if (!planned.ok) throw asOptionProblem(new ExperimentConfigError(planned.problems), OPTION_PATHS);

  const following: (() => void)[] = [];
  let width = 0;
  const result = await runPlan(planned.plan, {
    handleSignals: true,
    hooks: {
      say: progress.say,
      notice: progress.notice,
      models(built) {
        width = Math.max(...built.map((m) => topology(m).length));
        for (const m of built) progress.say(`${label(m)}: ${parameterCount(m.trainer.model)} parameters, mse loss, adam lr ${formatNumber(settings.learningRate)}, batch ${settings.batch}`);
      },
      started({ models }) {
        const what = settings.scene
          ? `a drifting Michaelis-Menten sensor (seed ${seed}, ${settings.fast ? 'full speed' : '300 samples/s; --fast for full speed'})`
          : `Michaelis-Menten samples (seed ${seed})`;
        progress.say(`streaming ${what}${limitText(samples, steps)}; Ctrl-C stops`);
        progress.start({
          models: models.map((m) => ({ name: m.name, trainer: m.trainer, label: label(m, width), batch: settings.batch })),
          source: { name: `michaelis-menten (seed ${seed})`, samples, steps },
        });
        for (const m of models) following.push(progress.follow(m.run));
      },
      failed: (error, model) => progress.fail(error, model),
      ended(r) {
        summarize(r, (m) => label(m, width), progress);
        progress.finish({ outcome: r.outcome });
        for (const unfollow of following) unfollow();
      },
    },
  });
  return result.failed ? EXIT_FAILURE : EXIT_OK;
}

function topology(m: Pick<ExperimentModel, 'trainer'>): string {
  const { model } = m.trainer;
  return formatTopology(model.inputSize, model.layers);
}

/** `deep 3→16 relu→16 relu→1 linear`, the topology padded to `width` (the widest of the race, for the columns of the summary). */
function label(m: Pick<ExperimentModel, 'name' | 'trainer'>, width = 0): string {
  return `${m.name} ${topology(m).padEnd(width)}`;
}

/** The closing lines (shown with --quiet too): how the race ended, each model's average rate and metrics, the leader. */
function summarize(r: ExperimentResult, labelOf: (m: ModelOutcome) => string, progress: ProgressReporter): void {
  progress.summary(`${r.outcome} after ${formatSeconds(r.elapsedMs)}`);
  for (const m of r.models) {
    const average = (m.trainer.counters.samples * 1000) / r.elapsedMs;
    const status = formatStatus(labelOf(m), m.trainer.counters, m.metrics.count > 0 ? m.metrics : undefined, 'mse', average);
    progress.summary(`${status}${m.failure === undefined ? '' : ` (stopped: ${oneLine(m.failure)})`}`);
  }
  const leader = leaderLine(r.models);
  if (leader !== null) progress.summary(leader);
}

function leaderLine(models: readonly ModelOutcome[]): string | null {
  const scored = models.filter((m) => m.metrics.count > 0 && Number.isFinite(m.metrics.loss));
  if (scored.length < 2) return null;
  const sorted = [...scored].sort((a, b) => a.metrics.loss - b.metrics.loss);
  return `leader: ${sorted[0].name} (rolling mse ${sorted.map((m) => `${m.name} ${formatNumber(m.metrics.loss)}`).join(' vs ')})`;
}

function limitText(samples: number | undefined, steps: number | undefined): string {
  const limits = [samples === undefined ? '' : `${samples} samples`, steps === undefined ? '' : `${steps} steps`].filter(Boolean);
  return limits.length === 0 ? '' : `, stopping after ${limits.join(' or ')}`;
}
