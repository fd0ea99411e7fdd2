import { StreamgradError } from '../core/errors.ts';
import { initialize } from '../core/init.ts';
import { cloneModel, createModel, type Model, parameterCount } from '../core/model.ts';
import { continuePreprocessing, preprocessingOf } from '../pipeline/model-artifact.ts';
import { ingestStats } from '../core/record.ts';
import type { RollingMetrics } from '../core/evaluation.ts';
import { TrainingRun } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { DriftAdaptation } from '../pipeline/drift-adaptation.ts';
import type { ThreadedServer } from '../server/threaded-server.ts';
import { openCheckpoints, type RunCheckpoints } from './checkpointing.ts';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, oneLine } from './cli-error.ts';
import type { ExperimentPlan, ModelPlan } from './experiment-plan.ts';
import { checkpointLabels } from './experiment-labels.ts';
import { labelSummary } from './label-options.ts';
import { checkpointSource, describeSource, type Feed, type Feeds, feedState, openFeeds } from './experiment-sources.ts';
import { isDiverged, saveDivergedModel } from './divergence-options.ts';
import { formatMetrics, formatNumber, formatRate, formatSeconds, formatTopology, formatTrained, targetUnits } from './format.ts';
import { PredictionsFile } from './predictions-file.ts';
import type { ProgressReporter } from './progress.ts';
import { mqttSummary } from './ingest-options.ts';
import { preprocessingNote, saveModelFile } from './model-io.ts';
import { RejectionLog } from './rejections.ts';
import { onSignals, serverFailure, startServing, untilSignal } from './serving.ts';

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
  /** Its drift detection and reaction (the model's `drift` section). */
  readonly drift?: DriftAdaptation;
  /** Its checkpoints (the config's `checkpoints` section), or null. */
  checkpoints: RunCheckpoints | null;
  /** What its metrics are measured in, when the target is normalised. */
  units?: string;
  run?: TrainingRun;
  latest?: StepResult;
  failure?: unknown;
}

/**
 * Trains the plan's models, reporting through `progress` (status lines or bars, `--quiet`,
 * `--log-json`); resolves with the exit status (0 done or interrupted, 1 a model failed).
 */
export async function runExperiment(plan: ExperimentPlan, progress: ProgressReporter): Promise<number> {
  const { say, notice, summary } = progress;
  const racers = plan.models.map((m): Racer => {
    const trainer = buildTrainer(m);
    return { plan: m, trainer, ...(m.drift !== undefined && { drift: new DriftAdaptation(trainer, m.drift) }), checkpoints: null, units: unitsOf(plan) };
  });
  say(`experiment ${plan.file.shown}${plan.description === undefined ? '' : `: ${plan.description}`}`);
  for (const r of racers) say(startLine(r));

  // with --resume the trainers' state comes from their checkpoints before the data opens,
  // so that each model reads on from the first record its checkpoint did not account for
  const feedsOf: { feeds?: Feeds } = {};
  await openRunCheckpoints(plan, racers, feedsOf, notice);
  const live = plan.source.kind === 'mqtt' || plan.source.kind === 'stdin';
  const offsets = racers.map((r) => (live ? 0 : r.checkpoints?.resume?.sourceOffset ?? 0));
  const rejections = new RejectionLog(say);
  const feeds = await openFeeds(plan, racers.map((r) => r.trainer), rejections, offsets, racers.map((r) => r.checkpoints?.resumed?.header.sections.sourceIdentity));
  feedsOf.feeds = feeds;
  try {
    racers.forEach((r, i) => {
      const sections = r.checkpoints?.resumed?.header.sections;
      if (sections !== undefined) feedState(feeds.feeds[i]).restore(sections);
    });
  } catch (error) {
    await feeds.close().catch(() => undefined);
    throw new CliError(`--resume: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  }
  for (const [i, r] of racers.entries()) {
    const start = r.plan.start;
    if (start === undefined || r.checkpoints?.resumed != null) continue;
    // a saved model goes on learning with the preprocessing it was trained with
    try {
      continuePreprocessing(start.preprocessing, feeds.feeds[i]);
    } catch (error) {
      await feeds.close().catch(() => undefined);
      if (error instanceof StreamgradError) throw new CliError(`${r.plan.at}.model: ${start.file.shown}: ${error.message}`, EXIT_USAGE, { cause: error });
      throw error;
    }
  }
  let predictions: PredictionsFile | null = null;
  try {
    if (plan.predictions !== undefined) predictions = await PredictionsFile.open(plan.predictions.path, 'evaluation.predictions', plan.resume, plan.predictions.shown);
  } catch (error) {
    await feeds.close().catch(() => undefined);
    throw error;
  }
  createRuns(plan, racers, feeds, predictions);
  const runs = racers.map((r) => r.run!);

  let server: ThreadedServer | null = null;
  try {
    if (plan.server !== undefined) server = await startServing({ ...plan.server, sessionToken: true }, runs, notice, 'server.port');
  } catch (error) {
    await feeds.close().catch(() => undefined);
    throw error;
  }
  say(`streaming ${describeSource(plan.source)}${limitText(plan.limit)}; Ctrl-C stops`);

  // Ctrl-C or SIGTERM: every model stops after its batch in progress (and writes its last
  // checkpoint); a second one quits at once
  let interrupted = false;
  const signals = onSignals((signal) => {
    interrupted = true;
    notice(`${signal}: stopping after the batch in progress${plan.checkpoints === undefined ? '' : ' and writing checkpoints'} (again to quit at once)`);
    for (const run of runs) run.stop();
    void feeds.stop();
  });
  const started = performance.now();
  progress.start({
    models: racers.map((r) => ({ name: r.plan.name, trainer: r.trainer, label: label(r), units: r.units, ...(typeof r.plan.batch === 'number' && { batch: r.plan.batch }) })),
    source: {
      name: describeSource(plan.source),
      ...(feeds.meter !== undefined && { meter: feeds.meter }),
      ...(sourceSamples(plan) !== undefined && { samples: sourceSamples(plan) }),
      ...(plan.limit.steps !== undefined && { steps: plan.limit.steps }),
    },
  });
  const following = runs.map((run) => progress.follow(run));
  await Promise.all(racers.map((r) => r.run!.start().catch((error: unknown) => {
    r.failure = error;
    progress.fail(error, r.plan.name);
    notice(`${r.plan.name} stopped: ${oneLine(error)}`);
  })));
  const how = interrupted ? 'interrupted' : 'finished';
  const elapsed = performance.now() - started;
  let closing: unknown = null;
  await feeds.close().catch((error: unknown) => { closing = error; });
  await predictions?.close().catch((error: unknown) => { closing ??= error; });

  summarize(racers, feeds, how, elapsed, plan, summary);
  const saved = await saveModels(racers, feeds, summary, notice);
  if (closing !== null) notice(`not all written: ${oneLine(closing)}`);
  if (predictions !== null) summary(`predictions of ${predictions.lines} samples in ${predictions.shown}`);
  for (const r of racers) if (r.checkpoints !== null) summary(`${r.plan.name}: ${await r.checkpoints.summary()}`);
  for (const unfollow of following) unfollow();
  signals.dispose();
  const rejected = rejectedCounts(feeds);
  progress.finish({
    outcome: how,
    ...(rejected !== null && { rejected: { ...rejected, ...(plan.source.kind !== 'simulated' && plan.source.records.deadLetter !== undefined && { deadLetters: plan.source.records.deadLetter.shown }) } }),
    ...((saved.files.length > 0 || plan.labels !== undefined) && { extra: { saved: saved.files, ...(plan.labels !== undefined && { labels: Object.fromEntries(racers.map((r, i) => [r.plan.name, feeds.feeds[i].labels?.stats()])) }) } }),
  });

  if (server !== null) {
    if (!interrupted && plan.server!.keepServing) {
      // the dashboard keeps showing the final state until the person is done with it
      notice(`still serving ${server.url}/ (Ctrl-C stops)`);
      await untilSignal();
    }
    for (const run of runs) run.dispose();
    await server.close();
    const served = serverFailure(server);
    if (served !== null) throw served;
  } else {
    for (const run of runs) run.dispose();
  }
  const failed = racers.some((r) => r.failure !== undefined) || saved.failures > 0 || closing !== null;
  return failed ? EXIT_FAILURE : EXIT_OK;
}

/** How many samples the stream has when that is known in advance (a simulated stream, or a samples limit). */
function sourceSamples(plan: ExperimentPlan): number | undefined {
  const n = Math.min(plan.source.kind === 'simulated' ? plan.source.samples ?? Infinity : Infinity, plan.limit.samples ?? Infinity);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Opens each model's checkpoints (`cli/checkpointing.ts`): files named after the model in
 * `checkpoints.dir`, and with `--resume` its newest intact checkpoint loaded into its
 * trainer. The state around each run (normaliser, imputation, counters) is its feed's.
 */
async function openRunCheckpoints(plan: ExperimentPlan, racers: readonly Racer[], feedsOf: { feeds?: Feeds }, notice: (line: string) => void): Promise<void> {
  const c = plan.checkpoints;
  if (c === undefined) return;
  const settings = {
    dir: c.dir.path, keep: c.keep, maxFailures: c.maxFailures, resume: plan.resume,
    ...(c.everySteps !== undefined && { everySteps: c.everySteps }),
    ...(c.everySeconds !== undefined && { everySeconds: c.everySeconds }),
  };
  for (const [i, r] of racers.entries()) {
    try {
      r.checkpoints = await openCheckpoints(settings, {
        id: r.plan.name,
        trainer: r.trainer,
        window: plan.window,
        ...(r.drift !== undefined && { drift: r.drift }),
        source: { ...checkpointSource(plan.source), ...(plan.labels !== undefined && checkpointLabels(plan.labels)) },
        state: () => feedState(feedsOf.feeds!.feeds[i]),
        identity: async (records) => (await feedsOf.feeds!.feeds[i].fingerprint?.identity(records)) ?? null,
        say: (line) => notice(`${r.plan.name}: ${line}`),
      });
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      throw new CliError(error.message.replace(/^--checkpoint-dir \S+: /, `checkpoints.dir: ${c.dir.shown}: `), error.exitCode, { cause: error });
    }
  }
}

/** A fresh trainer for a planned model (its seed, init or start file, kernels). */
export function buildTrainer(m: ModelPlan): Trainer {
  let model: Model;
  try {
    model = m.start !== undefined ? cloneModel(m.start.model, m.kernels) : initialize(createModel(m.topology, m.kernels), m.init, m.seed);
    return createTrainer({ model, loss: m.loss, optimizer: m.optimizer, clipNorm: m.clipNorm, kernels: m.kernels, ...m.divergence });
  } catch (error) {
    // the plan ran these checks already; this is a safety net naming the model
    if (error instanceof StreamgradError) throw new CliError(`${m.at}: ${error.message}`, EXIT_USAGE, { cause: error });
    throw error;
  }
}

/**
 * Creates every model's `TrainingRun`, the one place where runs are made: its feed (source
 * and ingestion stages), batching, the metrics window, ingestion counters for /metrics,
 * and its checkpoints (opened by `openRunCheckpoints` through cli/checkpointing.ts:
 * on request from the dashboard, every N steps or T seconds, and when it stops or ends).
 */
function createRuns(plan: ExperimentPlan, racers: readonly Racer[], feeds: Feeds, predictions: PredictionsFile | null): void {
  racers.forEach((racer, i) => {
    const feed: Feed = feeds.feeds[i];
    const checkpoints = racer.checkpoints;
    const run = new TrainingRun({
      id: racer.plan.name,
      trainer: racer.trainer,
      source: feed.source,
      ...(feed.prepare !== undefined && { prepare: feed.prepare }),
      ...(feed.counters !== undefined && { ingest: ingestStats(feed.counters, feeds.dropped, feed.labels === undefined ? undefined : () => feed.labels!.stats()) }),
      // what a server's /predict applies to a request, as the feed's stages apply it to a sample
      preprocessing: () => preprocessingOf(feed),
      // the models share one subscription: its notices are told once, by the first run
      ...(i === 0 && feeds.mqtt !== undefined && { notices: feeds.mqtt.notices }),
      train: { batch: racer.plan.batch, window: checkpoints?.resume?.window ?? plan.window },
      ...(racer.drift !== undefined && { drift: racer.drift }),
      ...(predictions !== null && predictions.hooks(racer.trainer, { model: racer.plan.name, classes: feed.features?.classes ?? undefined })),
      ...(checkpoints !== null && {
        checkpoint: checkpoints.checkpoint,
        autoCheckpoint: checkpoints.autoCheckpoint,
        sourceOffset: checkpoints.resume?.sourceOffset ?? 0,
      }),
    });
    run.results.subscribe((result) => { racer.latest = result; });
    racer.run = run;
  });
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
  return `${label(r).padEnd(width)}  step ${c.steps}  samples ${c.samples}  ${formatMetrics(metricsOf(r), r.plan.loss, r.units)}  ${formatRate(rate)}`;
}

/** What a model's metrics are measured in when the source normalises the target (see `targetUnits`). */
function unitsOf(plan: ExperimentPlan): string | undefined {
  return targetUnits(plan.source.kind === 'simulated' ? plan.source : plan.source.records);
}

/** The rolling metrics (the run's: after a resume they go on from the checkpoint's window). */
function metricsOf(r: Racer): RollingMetrics | undefined {
  return r.run?.metrics.snapshot() ?? r.latest?.metrics;
}

function summarize(racers: readonly Racer[], feeds: Feeds, how: string, elapsed: number, plan: ExperimentPlan, summary: (line: string) => void): void {
  summary(`${how} after ${formatSeconds(elapsed)}`);
  for (const r of racers) {
    const average = elapsed > 0 ? (r.trainer.counters.samples * 1000) / elapsed : NaN;
    const c = r.trainer.counters;
    const extra = [c.skipped > 0 ? formatTrained(c) : '', r.failure === undefined ? '' : `stopped: ${oneLine(r.failure)}`].filter(Boolean);
    summary(`${statusLine(r, racers, average)}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`);
    if (r.run !== undefined) summary(`${r.plan.name}: whole stream, ${formatMetrics(r.run.metrics.cumulative(), r.plan.loss, r.units)} over ${r.run.metrics.cumulative().count} samples`);
    const join = feeds.feeds[racers.indexOf(r)]?.labels;
    if (join !== undefined) summary(`${r.plan.name}: ${labelSummary(join.stats(), join.expiredPolicy)}`);
  }
  const counts = rejectedCounts(feeds);
  if (counts !== null && plan.source.kind !== 'simulated') {
    const { read, total, byCode, imputed } = counts;
    const notJson = byCode.SG_ERR_BAD_JSON ?? 0;
    const invalid = total - notJson;
    const rejected = total === 0 ? '0 lines' : `${total} line${total === 1 ? '' : 's'} (${notJson} not JSON, ${invalid} invalid sample${invalid === 1 ? '' : 's'})`;
    const dropped = feeds.dropped();
    const unused = [...new Set(feeds.feeds.flatMap((f) => [...(f.features?.unknownNames ?? [])]))];
    summary(`read ${read} record${read === 1 ? '' : 's'}; rejected ${rejected}${imputed > 0 ? `; imputed ${imputed} missing value${imputed === 1 ? '' : 's'}` : ''}${unused.length > 0 ? `; unused field${unused.length === 1 ? '' : 's'} ${unused.join(', ')}` : ''}${dropped > 0 ? `; queue dropped ${dropped}` : ''}${plan.source.records.deadLetter === undefined ? '' : `; dead letters in ${plan.source.records.deadLetter.shown}`}`);
  }
  if (feeds.mqtt !== undefined) summary(mqttSummary(feeds.mqtt));
  const leader = leaderLine(racers);
  if (leader !== null) summary(leader);
}

/**
 * The stream's rejections, from the model that read furthest (it has seen every rejected
 * record; after a resume too, its counters are checkpointed); null without record sources.
 */
function rejectedCounts(feeds: Feeds): { read: number; total: number; byCode: Partial<Record<string, number>>; imputed: number } | null {
  const all = feeds.feeds.map((f) => f.counters).filter((c) => c !== undefined);
  if (all.length === 0) return null;
  const c = all.reduce((a, b) => (b.read > a.read ? b : a));
  return { read: c.read, total: c.rejected, byCode: { ...c.rejectedByCode }, imputed: c.imputed };
}

/**
 * The leader: by rolling accuracy when every model has one, else by rolling loss when
 * they share a loss function, else by mean absolute error (comparable across losses).
 */
function leaderLine(racers: readonly Racer[]): string | null {
  const scored = racers.filter((r) => (metricsOf(r)?.count ?? 0) > 0 && Number.isFinite(metricsOf(r)!.loss));
  if (scored.length < 2) return null;
  const m = (r: Racer) => metricsOf(r)!;
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

/** Saves the models the config asks to (`save`), with their ingestion state beside them. */
async function saveModels(racers: readonly Racer[], feeds: Feeds, summary: (line: string) => void, notice: (line: string) => void): Promise<{ files: string[]; failures: number }> {
  const files: string[] = [];
  let failures = 0;
  for (const [i, r] of racers.entries()) {
    const save = r.plan.save;
    if (save === undefined) continue;
    if (r.failure !== undefined) {
      notice(`${r.plan.name}: ${isDiverged(r.failure) ? await saveDivergedModel(save.path, r.trainer.model, `${r.plan.at}.save`) : 'not saved (the run failed)'}`);
      continue;
    }
    try {
      const feed = feeds.feeds[i];
      await saveModelFile(save.path, r.trainer.model, `${r.plan.at}.save`, preprocessingOf(feed));
      summary(`${r.plan.name}: saved ${save.shown}${preprocessingNote(feed)}`);
      files.push(save.shown);
    } catch (error) {
      failures++;
      notice(`${r.plan.name}: ${oneLine(error)}`);
    }
  }
  return { files, failures };
}

function limitText(limit: ExperimentPlan['limit']): string {
  const parts = [limit.samples === undefined ? '' : `${limit.samples} samples`, limit.steps === undefined ? '' : `${limit.steps} steps`].filter(Boolean);
  return parts.length === 0 ? '' : `, stopping after ${parts.join(' or ')}`;
}
