import { randomBytes } from 'node:crypto';
import { StreamgradError } from '../pipeline/errors.ts';
import { initialize } from '../pipeline/init.ts';
import { cloneModel, createModel, type Model, parameterCount } from '../pipeline/model.ts';
import { ingestStats } from '../pipeline/record.ts';
import { TrainingRun } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../pipeline/trainer.ts';
import { serve, type StreamgradServer } from '../server/server.ts';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, oneLine } from './cli-error.ts';
import type { ExperimentPlan, ModelPlan } from './experiment-plan.ts';
import { describeSource, type Feed, type Feeds, openFeeds } from './experiment-sources.ts';
import { formatMetrics, formatNumber, formatRate, formatSeconds, formatTopology } from './format.ts';
import { saveIngestState } from './ingest-options.ts';
import { saveModelFile } from './model-io.ts';
import { RejectionLog } from './rejections.ts';
import { untilSignal } from './serving.ts';

/**
 * Runs a checked experiment: every model trains as its own `TrainingRun` on its feed
 * of the one stream, served live when the config has a `server` section, until the
 * stream ends, the limit is reached or Ctrl-C; then one summary line per model, the
 * leader, and the models saved where the config says.
 */

/** One model in the race. */
interface Racer {
  readonly plan: ModelPlan;
  readonly trainer: Trainer;
  run?: TrainingRun;
  latest?: StepResult;
  failure?: unknown;
}

export interface RunExperimentOptions {
  /** Where the `streamgrad: ...` lines go (default stderr). */
  readonly say?: (line: string) => void;
}

/** Trains the plan's models; resolves with the exit status (0 done or interrupted, 1 a model failed). */
export async function runExperiment(plan: ExperimentPlan, options: RunExperimentOptions = {}): Promise<number> {
  const say = options.say ?? ((line: string) => process.stderr.write(`streamgrad: ${line}\n`));
  const racers = plan.models.map((m): Racer => ({ plan: m, trainer: buildTrainer(m) }));
  const rejections = new RejectionLog(say);
  const feeds = await openFeeds(plan, racers.map((r) => r.trainer), rejections);
  createRuns(plan, racers, feeds);
  const runs = racers.map((r) => r.run!);

  say(`experiment ${plan.file.shown}${plan.description === undefined ? '' : `: ${plan.description}`}`);
  for (const r of racers) say(startLine(r));
  let server: StreamgradServer | null = null;
  try {
    if (plan.server !== undefined) server = await startServer(plan, runs, say);
  } catch (error) {
    await feeds.close().catch(() => undefined);
    throw error;
  }
  say(`streaming ${describeSource(plan.source)}${limitText(plan.limit)}; Ctrl-C stops`);

  const started = performance.now();
  const status = setInterval(() => racers.forEach((r) => say(statusLine(r, racers))), 1000);
  const signal = untilSignal();
  const race = Promise.all(racers.map((r) => r.run!.start().catch((error: unknown) => {
    r.failure = error;
    say(`${r.plan.name} stopped: ${oneLine(error)}`);
  })));
  const how = await Promise.race([race.then(() => 'finished'), signal.then(() => 'interrupted')]);
  clearInterval(status);
  if (how === 'interrupted') {
    for (const run of runs) run.stop();
    await feeds.stop();
    await race;
  }
  const elapsed = performance.now() - started;
  let closing: unknown = null;
  await feeds.close().catch((error: unknown) => { closing = error; });

  summarize(racers, feeds, rejections, how, elapsed, plan, say);
  const saveFailures = await saveModels(racers, feeds, say);
  if (closing !== null) say(`dead letters not all written: ${oneLine(closing)}`);

  if (server !== null) {
    if (how === 'finished' && plan.server!.keepServing) {
      say(`still serving ${server.url}/ (Ctrl-C stops)`);
      await signal;
    }
    for (const run of runs) run.dispose();
    await server.close();
  } else {
    for (const run of runs) run.dispose();
  }
  const failed = racers.some((r) => r.failure !== undefined) || saveFailures > 0 || closing !== null;
  return failed ? EXIT_FAILURE : EXIT_OK;
}

function buildTrainer(m: ModelPlan): Trainer {
  let model: Model;
  try {
    model = m.start !== undefined ? cloneModel(m.start.model, m.kernels) : initialize(createModel(m.topology, m.kernels), m.init, m.seed);
    return createTrainer({ model, loss: m.loss, optimizer: m.optimizer, clipNorm: m.clipNorm, kernels: m.kernels });
  } catch (error) {
    // the plan ran these checks already; this is a safety net naming the model
    if (error instanceof StreamgradError) throw new CliError(`${m.at}: ${error.message}`, EXIT_USAGE, { cause: error });
    throw error;
  }
}

/**
 * Creates every model's `TrainingRun`, the one place where runs are made: its feed (source
 * and ingestion stages), batching, the metrics window, ingestion counters for /metrics.
 */
function createRuns(plan: ExperimentPlan, racers: readonly Racer[], feeds: Feeds): void {
  racers.forEach((racer, i) => {
    const feed: Feed = feeds.feeds[i];
    const run = new TrainingRun({
      id: racer.plan.name,
      trainer: racer.trainer,
      source: feed.source,
      ...(feed.prepare !== undefined && { prepare: feed.prepare }),
      ...(feed.counters !== undefined && { ingest: ingestStats(feed.counters, feeds.dropped) }),
      train: { batch: racer.plan.batch, window: plan.window },
      // checkpoints: wired by cli/checkpointing.ts (plan.checkpoints: dir, everySteps, everySeconds, keep; plan.resume)
    });
    run.results.subscribe((result) => { racer.latest = result; });
    racer.run = run;
  });
}

/** Serves the runs; without a token of its own (config or STREAMGRAD_TOKEN) it makes one for the session and says it, as `streamgrad start` does. */
async function startServer(plan: ExperimentPlan, runs: readonly TrainingRun[], say: (line: string) => void): Promise<StreamgradServer> {
  const s = plan.server!;
  let token = s.token;
  const made = token === undefined && (process.env.STREAMGRAD_TOKEN ?? '') === '';
  if (made) token = randomBytes(18).toString('base64url');
  let server: StreamgradServer;
  try {
    server = await serve({ port: s.port, host: s.host, token, ...(s.allowedOrigins !== undefined && { allowedOrigins: [...s.allowedOrigins] }) });
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === 'EADDRINUSE' ? 'the port is in use' : code === 'EACCES' ? 'permission denied' : oneLine(error);
    throw new CliError(`server.port: cannot listen on ${s.host ?? '127.0.0.1'}:${s.port}: ${why}`, EXIT_USAGE, { cause: error });
  }
  for (const run of runs) server.addRun(run);
  say(`dashboard at ${server.url}/`);
  say(`websocket at ${server.wsUrl} (control with the token, read-only without)`);
  if (made) say(`control token for this session: ${token} (type it into the dashboard to pause, step, reset...)`);
  return server;
}

function label(r: Racer): string {
  const { model } = r.trainer;
  return `${r.plan.name} ${formatTopology(model.inputSize, model.layers)}`;
}

/** `deep 3→16 relu→16 relu→1 linear: 353 parameters, mse loss, adam lr 0.003, batch 4, seed 2`. */
function startLine(r: Racer): string {
  const m = r.plan;
  const batch = typeof m.batch === 'number' ? String(m.batch) : [m.batch.count === undefined ? '' : `${m.batch.count}`, m.batch.timeMs === undefined ? '' : `${m.batch.timeMs} ms`].filter(Boolean).join(' or ');
  const start = m.start !== undefined ? `from ${m.start.file.shown}` : `seed ${m.seed}, init ${m.init}`;
  return `${label(r)}: ${parameterCount(r.trainer.model)} parameters, ${m.loss} loss, ${m.optimizer.type} lr ${formatNumber(m.optimizer.learningRate)}, batch ${batch}, ${start}${m.clipNorm === undefined ? '' : `, clip ${m.clipNorm}`}, ${r.trainer.kernels.name} kernels`;
}

/** `wide 3→70 relu→1 linear  step 1200  samples 1200  mse 0.0123, mae 0.0456  45000 samples/s`. */
function statusLine(r: Racer, racers: readonly Racer[], rate = r.latest?.samplesPerSecond ?? NaN): string {
  const width = Math.max(...racers.map((o) => label(o).length));
  const c = r.trainer.counters;
  return `${label(r).padEnd(width)}  step ${c.steps}  samples ${c.samples}  ${formatMetrics(r.latest?.metrics, r.plan.loss)}  ${formatRate(rate)}`;
}

function summarize(racers: readonly Racer[], feeds: Feeds, rejections: RejectionLog, how: string, elapsed: number, plan: ExperimentPlan, say: (line: string) => void): void {
  say(`${how} after ${formatSeconds(elapsed)}`);
  for (const r of racers) {
    const average = elapsed > 0 ? (r.trainer.counters.samples * 1000) / elapsed : NaN;
    const skipped = r.trainer.counters.skipped;
    const extra = [skipped > 0 ? `${skipped} steps skipped (non-finite)` : '', r.failure === undefined ? '' : `stopped: ${oneLine(r.failure)}`].filter(Boolean);
    say(`${statusLine(r, racers, average)}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`);
  }
  if (plan.source.kind !== 'simulated') {
    const read = Math.max(...racers.map((r) => feeds.feeds[racers.indexOf(r)].counters?.read ?? 0));
    const dropped = feeds.dropped();
    say(`read ${read} record${read === 1 ? '' : 's'}; rejected ${rejections.summary()}${dropped > 0 ? `; queue dropped ${dropped}` : ''}${plan.source.records.deadLetter === undefined ? '' : `; dead letters in ${plan.source.records.deadLetter.shown}`}`);
  }
  const leader = leaderLine(racers);
  if (leader !== null) say(leader);
}

/**
 * The leader: by rolling accuracy when every model has one, else by rolling loss when
 * they share a loss function, else by mean absolute error (comparable across losses).
 */
function leaderLine(racers: readonly Racer[]): string | null {
  const scored = racers.filter((r) => r.latest !== undefined && r.latest.metrics.count > 0 && Number.isFinite(r.latest.metrics.loss));
  if (scored.length < 2) return null;
  const m = (r: Racer) => r.latest!.metrics;
  let by: string;
  let score: (r: Racer) => number;
  let shown: (r: Racer) => string;
  if (scored.every((r) => m(r).accuracy !== undefined)) {
    by = 'rolling accuracy';
    score = (r) => -m(r).accuracy!;
    shown = (r) => `${(m(r).accuracy! * 100).toFixed(1)}%`;
  } else if (scored.every((r) => r.plan.loss === scored[0].plan.loss)) {
    by = `rolling ${scored[0].plan.loss}`;
    score = (r) => m(r).loss;
    shown = (r) => formatNumber(m(r).loss);
  } else {
    by = 'rolling mae';
    score = (r) => m(r).mae;
    shown = (r) => formatNumber(m(r).mae);
  }
  const sorted = [...scored].sort((a, b) => score(a) - score(b));
  return `leader: ${sorted[0].plan.name} (${by} ${sorted.map((r) => `${r.plan.name} ${shown(r)}`).join(' vs ')})`;
}

/** Saves the models the config asks to (`save`), with their ingestion state beside them; returns how many failed. */
async function saveModels(racers: readonly Racer[], feeds: Feeds, say: (line: string) => void): Promise<number> {
  let failures = 0;
  for (const [i, r] of racers.entries()) {
    const save = r.plan.save;
    if (save === undefined) continue;
    if (r.failure !== undefined) {
      say(`${r.plan.name}: not saved (the run failed)`);
      continue;
    }
    try {
      await saveModelFile(save.path, r.trainer.model, `${r.plan.at}.save`);
      say(`${r.plan.name}: saved ${save.shown}`);
      const { features, normalizer } = feeds.feeds[i];
      if (features !== undefined || normalizer !== undefined) {
        await saveIngestState(`${save.path}.ingest.json`, { features, normalizer } as Parameters<typeof saveIngestState>[1]);
        say(`${r.plan.name}: saved ${save.shown}.ingest.json (feature names and normalisation statistics)`);
      }
    } catch (error) {
      failures++;
      say(`${r.plan.name}: ${oneLine(error)}`);
    }
  }
  return failures;
}

function limitText(limit: ExperimentPlan['limit']): string {
  const parts = [limit.samples === undefined ? '' : `${limit.samples} samples`, limit.steps === undefined ? '' : `${limit.steps} steps`].filter(Boolean);
  return parts.length === 0 ? '' : `, stopping after ${parts.join(' or ')}`;
}
