import { randomBytes } from 'node:crypto';
import { catchError, EMPTY, identity, merge, type Observable, share, take, tap } from 'rxjs';
import { BACKENDS, resolveKernels } from '../pipeline/backend.ts';
import { initialize } from '../pipeline/init.ts';
import type { Kernels } from '../pipeline/kernels.ts';
import { createModel, type LayerSpec, parameterCount } from '../pipeline/model.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { train, type StepResult } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../pipeline/trainer.ts';
import { michaelisMenten, michaelisMentenSamples } from '../sources/michaelis-menten.ts';
import { asOptionError, EXIT_FAILURE, EXIT_OK, oneLine, usage } from './cli-error.ts';
import { formatMetrics, formatNumber, formatRate, formatSeconds, formatTopology } from './format.ts';
import { choice, flag, integer, number, type OptionSpec, parseOptions } from './options.ts';
import { parseServeOptions, SERVE_HELP, SERVE_SPEC, type ServeSettings, startServing, untilSignal } from './serving.ts';

export const START_HELP = `Usage: streamgrad start [options]

Races two networks of about the same size, trained online side by side on one
simulated Michaelis-Menten enzyme-kinetics stream: x = [Vmax, S, Km] drawn
uniformly from [0.5, 2] x [0, 10] x [0.5, 5], y = [Vmax*S/(Km + S) + noise]:

  wide   3 -> 70 relu -> 1 linear           (351 parameters)
  deep   3 -> 16 relu -> 16 relu -> 1 linear (353 parameters)

Both use the mse loss and Adam and are scored prequentially (each sample is
predicted before it is learned). One status line per model every second on
stderr; runs until Ctrl-C, then prints a summary.

Options:
  --samples N   stop after N samples of the stream
  --steps N     stop after N training steps of each model
  --batch N     samples per update (default 1)
  --lr X        Adam's learning rate (default 0.003)
  --seed N      seed of the stream; the models use N+1 and N+2 (default 0)
  --window N    samples the rolling metrics cover (default 1000)
  --backend B   kernels: auto, wasm, wasm-f32 or js (default auto: WebAssembly
                SIMD where available; STREAMGRAD_BACKEND sets it)

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

const say = (line: string) => process.stderr.write(`streamgrad: ${line}\n`);

/** `streamgrad start`: the live deep-vs-wide race. Resolves with the exit status once the run ends or is interrupted. */
export async function startCommand(args: readonly string[]): Promise<number> {
  const options = parseOptions(args, SPEC, 'streamgrad start');
  if (flag(options, 'help')) {
    process.stdout.write(START_HELP);
    return EXIT_OK;
  }
  const samples = integer(options, 'samples', 1);
  const steps = integer(options, 'steps', 1);
  const batch = integer(options, 'batch', 1, 1);
  const window = integer(options, 'window', 1, 1000);
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
  const racers: Racer[] = RACE.map(({ name, layers }, i) => {
    const model = initialize(createModel({ inputSize: 3, layers }, kernels), 'auto', seed + 1 + i);
    try {
      return { name, trainer: createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate }, kernels }) };
    } catch (error) {
      throw asOptionError(error, { 'optimizer.learningRate': '--lr' });
    }
  });

  if (serving !== undefined) return servedRace(racers, serving, { seed, samples, steps, batch, window, learningRate });
  const source$ = michaelisMenten({ seed, limit: samples }).pipe(share());
  const race$ = merge(...racers.map((racer) => run(racer, source$, { batch, window, steps })));

  for (const r of racers) say(`${label(r, 0)}: ${parameterCount(r.trainer.model)} parameters, mse loss, adam lr ${formatNumber(learningRate)}, batch ${batch}`);
  say(`streaming Michaelis-Menten samples (seed ${seed})${limitText(samples, steps)}; Ctrl-C stops`);

  const started = performance.now();
  return new Promise<number>((resolve) => {
    const status = setInterval(() => racers.forEach((r) => say(statusLine(r))), 1000);
    const onSignal = () => finish('interrupted');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let done = false;
    const subscription = race$.subscribe({ complete: () => finish('finished') });
    function finish(how: string) {
      if (done) return;
      done = true;
      clearInterval(status);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      subscription?.unsubscribe();
      summarize(racers, how, performance.now() - started);
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
}

/**
 * The race with a live view: each racer is a `TrainingRun` on its own copy of the
 * stream (the same seed gives the same samples), served for dashboards to watch and
 * steer. After the race ends it keeps serving until Ctrl-C.
 */
async function servedRace(racers: Racer[], serving: ServeSettings, o: RaceSettings): Promise<number> {
  // --steps N is N full batches: the stream ends there, so each run completes (and says so)
  const limit = Math.min(o.samples ?? Infinity, o.steps === undefined ? Infinity : o.steps * o.batch);
  const runs = racers.map((racer) => {
    const trainingRun = new TrainingRun({
      id: racer.name,
      trainer: racer.trainer,
      source: michaelisMentenSamples({ seed: o.seed, limit: Number.isSafeInteger(limit) ? limit : Infinity }),
      train: { batch: o.batch, window: o.window },
    });
    trainingRun.results.subscribe((result) => { racer.latest = result; });
    return trainingRun;
  });
  for (const r of racers) say(`${label(r, 0)}: ${parameterCount(r.trainer.model)} parameters, mse loss, adam lr ${formatNumber(o.learningRate)}, batch ${o.batch}`);
  // The person who started the race should be able to steer it from the page: without a
  // token of their own, make one and show it here (never in a URL, never in the server's log).
  let settings = serving;
  if (serving.token === undefined && (process.env.STREAMGRAD_TOKEN ?? '') === '') {
    settings = { ...serving, token: randomBytes(18).toString('base64url') };
  }
  const server = await startServing(settings, runs, say);
  if (settings !== serving) say(`control token for this session: ${settings.token} (type it into the dashboard to pause, step, reset...)`);
  say(`streaming Michaelis-Menten samples (seed ${o.seed})${limitText(o.samples, o.steps)}; Ctrl-C stops`);

  const started = performance.now();
  const status = setInterval(() => racers.forEach((r) => say(statusLine(r))), 1000);
  const signal = untilSignal();
  const race = Promise.all(runs.map((r, i) => r.start().catch((error: unknown) => {
    racers[i].failure = error;
    say(`${racers[i].name} stopped: ${oneLine(error)}`);
  })));
  const how = await Promise.race([race.then(() => 'finished'), signal.then(() => 'interrupted')]);
  clearInterval(status);
  for (const r of runs) r.stop();
  summarize(racers, how, performance.now() - started);
  if (how === 'finished') {
    say(`still serving ${server.url}/ (Ctrl-C stops)`);
    await signal;
  }
  for (const r of runs) r.dispose();
  await server.close();
  return racers.some((r) => r.failure !== undefined) ? EXIT_FAILURE : EXIT_OK;
}

/** One racer's training run on the shared source; a failure (e.g. divergence) stops that racer only. */
function run(racer: Racer, source$: Observable<unknown>, options: { batch: number; window: number; steps?: number }): Observable<StepResult> {
  return source$.pipe(
    train(racer.trainer, { batch: options.batch, window: options.window }),
    options.steps === undefined ? identity : take(options.steps),
    tap((result) => { racer.latest = result; }),
    catchError((error: unknown) => {
      racer.failure = error;
      say(`${racer.name} stopped: ${oneLine(error)}`);
      return EMPTY;
    }),
  );
}

function label(racer: Racer, width = LABEL_WIDTH): string {
  const { model } = racer.trainer;
  return `${racer.name} ${formatTopology(model.inputSize, model.layers).padEnd(width)}`;
}

const LABEL_WIDTH = Math.max(...RACE.map((r) => formatTopology(3, r.layers.map((l) => ({ outputs: l.units, activation: l.activation }))).length));

/**
 * `wide 3→70 relu→1 linear  step 1200  samples 1200  mse 0.0123, mae 0.0456  45000 samples/s`;
 * the rate is over the last second unless `rate` is given.
 */
function statusLine(racer: Racer, rate = racer.latest?.samplesPerSecond ?? NaN): string {
  const c = racer.trainer.counters;
  return `${label(racer)}  step ${c.steps}  samples ${c.samples}  ${formatMetrics(racer.latest?.metrics, 'mse')}  ${formatRate(rate)}`;
}

/** The closing lines: how the race ended, each model's average rate and metrics, the leader. */
function summarize(racers: readonly Racer[], how: string, elapsed: number): void {
  say(`${how} after ${formatSeconds(elapsed)}`);
  for (const r of racers) {
    const average = (r.trainer.counters.samples * 1000) / elapsed;
    say(`${statusLine(r, average)}${r.failure === undefined ? '' : ` (stopped: ${oneLine(r.failure)})`}`);
  }
  const leader = leaderLine(racers);
  if (leader !== null) say(leader);
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
