import { catchError, EMPTY, identity, merge, type Observable, share, take, tap } from 'rxjs';
import { BACKENDS, resolveKernels } from '../core/backend.ts';
import { DEFAULT_INIT, initialize } from '../core/init.ts';
import type { Kernels } from '../core/kernels.ts';
import { createModel, type LayerSpec, parameterCount } from '../core/model.ts';
import { MAX_WINDOW } from '../core/rolling-mean.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { train, type StepResult } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { MAX_BATCH } from '../operators/batch.ts';
import { michaelisMenten } from '../sources/michaelis-menten.ts';
import { asOptionError, EXIT_FAILURE, EXIT_OK, oneLine, usage } from './cli-error.ts';
import { formatNumber, formatSeconds, formatStatus, formatTopology } from './format.ts';
import { atMost, choice, flag, integer, number, type OptionSpec, type Options, parseOptions } from './options.ts';
import { parseProgressOptions, PROGRESS_HELP, PROGRESS_SPEC, type ProgressReporter, withProgress } from './progress.ts';
import { SCENE_INPUTS, SCENE_RACE, sceneDrift, sceneExperiment, sceneSource } from './start-scene.ts';
import { type ServeSettings, serverFailure, startServing, untilSignal } from '../runtime/serving.ts';
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
  parameters each, watch their loss with Page-Hinkley and triple their learning rate
  for 500 samples on a drift. Alarms and reactions are markers on the page.
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

/** The lecture's deep-vs-wide race: one wide hidden layer against two narrow ones, ~350 parameters each. */
const RACE: readonly { readonly name: string; readonly layers: readonly LayerSpec[] }[] = [
  { name: 'wide', layers: [{ units: 70, activation: 'relu' }, { units: 1, activation: 'linear' }] },
  { name: 'deep', layers: [{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }] },
];

interface Racer {
  readonly name: string;
  readonly trainer: Trainer;
  latest?: StepResult;
  failure?: unknown;
}

/** `streamgrad start`: the live deep-vs-wide race. Resolves with the exit status once the run ends or is interrupted. */
export async function startCommand(args: readonly string[]): Promise<number> {
  const options = parseOptions(args, SPEC, 'streamgrad start');
  if (flag(options, 'help')) {
    process.stdout.write(START_HELP);
    return EXIT_OK;
  }
  return withProgress(parseProgressOptions(options), { command: 'start', intervalMs: 1000 }, (progress) => race(options, progress));
}

async function race(options: Options, progress: ProgressReporter): Promise<number> {
  const samples = integer(options, 'samples', 1);
  const steps = integer(options, 'steps', 1);
  const batch = atMost(integer(options, 'batch', 1, 1), 'batch', MAX_BATCH);
  const window = atMost(integer(options, 'window', 1, 1000), 'window', MAX_WINDOW);
  const seed = integer(options, 'seed', 0, 0);
  if (seed > Number.MAX_SAFE_INTEGER - RACE.length) usage('--seed', `must be at most ${Number.MAX_SAFE_INTEGER - RACE.length}, got ${seed}`);
  const learningRate = number(options, 'lr', 0.003);
  const serving = parseServeOptions(options, process.env.PORT);

  let kernels: Kernels;
  try {
    kernels = resolveKernels(options.has('backend') ? choice(options, 'backend', BACKENDS, 'auto') : undefined);
  } catch (error) {
    throw asOptionError(error, { backend: '--backend' });
  }
  // served, the race is the sensor scene (start-scene.ts): two inputs, drift on
  const scene = serving !== undefined;
  const racers: Racer[] = (scene ? SCENE_RACE : RACE).map(({ name, layers }, i) => {
    const model = initialize(createModel({ inputSize: scene ? SCENE_INPUTS : 3, layers }, kernels), DEFAULT_INIT, seed + 1 + i);
    try {
      return { name, trainer: createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate }, kernels }) };
    } catch (error) {
      throw asOptionError(error, { 'optimizer.learningRate': '--lr' });
    }
  });

  const settings: RaceSettings = { seed, samples, steps, batch, window, learningRate, fast: flag(options, 'fast') };
  if (serving !== undefined) return servedRace(racers, serving, settings, progress);
  const source$ = michaelisMenten({ seed, limit: samples }).pipe(share());
  const race$ = merge(...racers.map((racer) => run(racer, source$, { batch, window, steps }, progress)));

  for (const r of racers) progress.say(`${label(r, 0)}: ${parameterCount(r.trainer.model)} parameters, mse loss, adam lr ${formatNumber(learningRate)}, batch ${batch}`);
  progress.say(`streaming Michaelis-Menten samples (seed ${seed})${limitText(samples, steps)}; Ctrl-C stops`);

  const started = performance.now();
  startProgress(progress, racers, settings);
  return new Promise<number>((resolve) => {
    const onSignal = () => finish('interrupted');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let done = false;
    const subscription = race$.subscribe({ complete: () => finish('finished') });
    function finish(how: 'finished' | 'interrupted') {
      if (done) return;
      done = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      subscription?.unsubscribe();
      summarize(racers, how, performance.now() - started, progress);
      progress.finish({ outcome: how });
      resolve(racers.some((r) => r.failure !== undefined) ? EXIT_FAILURE : EXIT_OK);
    }
  });
}

interface RaceSettings {
  readonly seed: number;
  readonly samples?: number;
  readonly steps?: number;
  readonly batch: number;
  readonly window: number;
  readonly learningRate: number;
  /** The served scene at full speed. */
  readonly fast: boolean;
}

/** Progress from here on: the racers, on a stream that ends after --samples or --steps when given. */
function startProgress(progress: ProgressReporter, racers: readonly Racer[], o: RaceSettings): void {
  progress.start({
    models: racers.map((r) => ({ name: r.name, trainer: r.trainer, label: label(r), batch: o.batch })),
    source: { name: `michaelis-menten (seed ${o.seed})`, samples: o.samples, steps: o.steps },
  });
}

/**
 * The race with a live view: each racer is a `TrainingRun` on its own copy of the
 * stream (the same seed gives the same samples), served for dashboards to watch and
 * steer. After the race ends it keeps serving until Ctrl-C.
 */
async function servedRace(racers: Racer[], serving: ServeSettings, o: RaceSettings, progress: ProgressReporter): Promise<number> {
  // --steps N is N full batches: the stream ends there, so each run completes (and says so)
  const limit = Math.min(o.samples ?? Infinity, o.steps === undefined ? Infinity : o.steps * o.batch);
  const runs = racers.map((racer) => {
    const trainingRun = new TrainingRun({
      id: racer.name,
      trainer: racer.trainer,
      source: sceneSource({ seed: o.seed, limit: Number.isSafeInteger(limit) ? limit : Infinity, fast: o.fast }),
      train: { batch: o.batch, window: o.window },
      drift: sceneDrift(racer.trainer),
    });
    trainingRun.results.subscribe((result) => { racer.latest = result; });
    return trainingRun;
  });
  for (const r of racers) progress.say(`${label(r, 0)}: ${parameterCount(r.trainer.model)} parameters, mse loss, adam lr ${formatNumber(o.learningRate)}, batch ${o.batch}`);
  // The person who started the race should be able to steer it from the page: without a
  // token of their own, one is made for the session. Where the dashboard is, and the
  // token, are shown even with --quiet: without them it cannot be used.
  const server = await startServing({ ...serving, sessionToken: true, experiment: sceneExperiment(o.fast) }, runs, progress.notice);
  progress.say(`streaming a drifting Michaelis-Menten sensor (seed ${o.seed}, ${o.fast ? 'full speed' : '300 samples/s; --fast for full speed'})${limitText(o.samples, o.steps)}; Ctrl-C stops`);

  const started = performance.now();
  startProgress(progress, racers, o);
  const following = runs.map((r) => progress.follow(r));
  const signal = untilSignal();
  const race = Promise.all(runs.map((r, i) => r.start().catch((error: unknown) => {
    racers[i].failure = error;
    progress.fail(error, racers[i].name);
    progress.notice(`${racers[i].name} stopped: ${oneLine(error)}`);
  })));
  const how = await Promise.race([race.then(() => 'finished' as const), signal.then(() => 'interrupted' as const)]);
  for (const r of runs) r.stop();
  summarize(racers, how, performance.now() - started, progress);
  progress.finish({ outcome: how });
  for (const unfollow of following) unfollow();
  if (how === 'finished') {
    progress.notice(`still serving ${server.url}/ (Ctrl-C stops)`);
    await signal;
  }
  for (const r of runs) r.dispose();
  await server.close();
  const served = serverFailure(server);
  if (served !== null) throw served;
  return racers.some((r) => r.failure !== undefined) ? EXIT_FAILURE : EXIT_OK;
}

/** One racer's training run on the shared source; a failure (e.g. divergence) stops that racer only. */
function run(racer: Racer, source$: Observable<unknown>, options: { batch: number; window: number; steps?: number }, progress: ProgressReporter): Observable<StepResult> {
  return source$.pipe(
    train(racer.trainer, { batch: options.batch, window: options.window }),
    options.steps === undefined ? identity : take(options.steps),
    tap((result) => {
      racer.latest = result;
      progress.update(racer.name, result);
    }),
    catchError((error: unknown) => {
      racer.failure = error;
      progress.fail(error, racer.name);
      progress.notice(`${racer.name} stopped: ${oneLine(error)}`);
      return EMPTY;
    }),
  );
}

function label(racer: Racer, width = LABEL_WIDTH): string {
  const { model } = racer.trainer;
  return `${racer.name} ${formatTopology(model.inputSize, model.layers).padEnd(width)}`;
}

const LABEL_WIDTH = Math.max(...RACE.map((r) => formatTopology(3, r.layers.map((l) => ({ outputs: l.units, activation: l.activation }))).length));

/** The closing lines (shown with --quiet too): how the race ended, each model's average rate and metrics, the leader. */
function summarize(racers: readonly Racer[], how: string, elapsed: number, progress: ProgressReporter): void {
  progress.summary(`${how} after ${formatSeconds(elapsed)}`);
  for (const r of racers) {
    const average = (r.trainer.counters.samples * 1000) / elapsed;
    const status = formatStatus(label(r), r.trainer.counters, r.latest?.metrics, 'mse', average);
    progress.summary(`${status}${r.failure === undefined ? '' : ` (stopped: ${oneLine(r.failure)})`}`);
  }
  const leader = leaderLine(racers);
  if (leader !== null) progress.summary(leader);
}

function leaderLine(racers: readonly Racer[]): string | null {
  const scored = racers.filter((r) => r.latest !== undefined && Number.isFinite(r.latest.metrics.loss));
  if (scored.length < 2) return null;
  const sorted = [...scored].sort((a, b) => a.latest!.metrics.loss - b.latest!.metrics.loss);
  return `leader: ${sorted[0].name} (rolling mse ${sorted.map((r) => `${r.name} ${formatNumber(r.latest!.metrics.loss)}`).join(' vs ')})`;
}

function limitText(samples: number | undefined, steps: number | undefined): string {
  const limits = [samples === undefined ? '' : `${samples} samples`, steps === undefined ? '' : `${steps} steps`].filter(Boolean);
  return limits.length === 0 ? '' : `, stopping after ${limits.join(' or ')}`;
}
