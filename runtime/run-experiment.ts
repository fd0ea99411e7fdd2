import { StreamgradError } from '../core/errors.ts';
import type { CumulativeMetrics, RollingMetrics } from '../core/evaluation.ts';
import { initialize } from '../core/init.ts';
import { cloneModel, createModel, type Model } from '../core/model.ts';
import { continuePreprocessing, preprocessingOf } from '../pipeline/model-artifact.ts';
import { ingestStats, type LabelStats } from '../core/record.ts';
import type { ExpiredPolicy } from '../core/label-join.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { DriftAdaptation } from '../pipeline/drift-adaptation.ts';
import type { MqttSource } from '../sources/mqtt.ts';
import type { ThreadedServer } from '../server/threaded-server.ts';
import { openCheckpoints, type RunCheckpoints } from './checkpointing.ts';
import { ConfigError, oneLine } from './errors.ts';
import { isDiverged, saveDivergedModel } from './divergence.ts';
import type { ExperimentInput } from './experiment-schema.ts';
import { type ExperimentPlan, type ModelPlan, planConfig, type Planned, type PlanOverrides } from './experiment-plan.ts';
import { checkpointLabels } from './experiment-labels.ts';
import { checkpointSource, describeSource, type Feed, type Feeds, feedState, openFeeds } from './experiment-sources.ts';
import type { ByteMeter } from './ndjson.ts';
import { targetUnits } from './ingestion.ts';
import { preprocessingNote, saveModelFile } from './model-io.ts';
import { PredictionsFile } from './predictions-file.ts';
import { RejectionLog } from './rejections.ts';
import { onSignals, serverFailure, startServing } from './serving.ts';
import { SavedLabels } from '../server/saved-labels.ts';
import { type NumberReservation, numbersFileOf, reserveVersionNumbers } from '../server/version-numbers.ts';
import { IngestRelay } from '../server/ingest-relay.ts';
import { combineStates } from './delayed-labels.ts';
import type { CheckpointedState } from './checkpointed-state.ts';
import { APPLIED_SECTION, AppliedOnce } from '../server/applied-once.ts';
import { isTrainSourceOf } from './train-source-section.ts';

/**
 * One experiment runtime: what a config file says (`streamgrad run experiment.json`),
 * run from code. `streamgrad run`, `train` and `start` compile their command lines into
 * the same config and call it, so a program that wants "train on MQTT with checkpoints
 * and a dashboard" writes the config and does not redo the wiring.
 *
 * Every model trains as its own `TrainingRun` on its feed of the one stream (files and
 * simulated streams are read once per model; live sources are read once and fanned out),
 * with its own checkpoints, drift reaction and saved model; the server (on a thread of its
 * own) shows and steers them. The run stops when the stream ends, at `limit`, when a model
 * fails (the others go on), or when `signal` aborts (each model stops after its batch in
 * progress and writes its last checkpoint).
 */

/**
 * An experiment config: the JSON of a config file (README, "Config files"), as an object.
 * Paths in it are relative to `RunExperimentOptions.baseDir`. The JSON Schema of this type
 * is shipped as `streamgrad/experiment.schema.json`.
 */
export type ExperimentConfig = ExperimentInput;

/** A model as the runtime built it, before its data opens. */
export interface ExperimentModel {
  /** Its name (`models[i].name`, default `model<i+1>`): its run id and checkpoint prefix. */
  readonly name: string;
  /** Its planned settings (topology, loss, optimizer, batch, seed, save path...). */
  readonly plan: ModelPlan;
  readonly trainer: Trainer;
  /** Its drift detection and reaction, when the model has a `drift` section. */
  readonly drift?: DriftAdaptation;
  /** What its metrics are measured in when the source normalises the target (e.g. `"target units"`). */
  readonly units?: string;
}

/** What `ExperimentHooks.started` is told: the runs, the source and the server, as training begins. */
export interface ExperimentStarted {
  readonly models: readonly (ExperimentModel & { readonly run: TrainingRun })[];
  readonly source: {
    /** `CSV file data.csv`, `MQTT mqtt://… (sensors/#; …)`, `simulated sine stream (seed 0)`. */
    readonly name: string;
    /** Bytes read of a file (or of standard input). */
    readonly meter?: ByteMeter;
    /** Samples the stream has, when known in advance (a simulated stream's, or `limit.samples`). */
    readonly samples?: number;
    readonly steps?: number;
    /** Records read so far (rejected ones included) by the model that read furthest; absent for a simulated stream. */
    readonly rows?: () => number;
  };
  /** The MQTT subscription (its client id, its persistent session), with an MQTT source. */
  readonly mqtt?: MqttSource;
  /** Where the server listens, with a `server` section. */
  readonly server: { readonly url: string; readonly wsUrl: string } | null;
}

/**
 * What the runtime tells as it goes. Every hook is optional; lines are for people (the
 * CLI writes them to stderr), the rest is structured.
 */
export interface ExperimentHooks {
  /** Informational lines: rejected records, the source, resumes. */
  say?(line: string): void;
  /** Lines that must be seen: where the server is and its token, signals, failures. */
  notice?(line: string): void;
  /** The models are built (before checkpoints are loaded and the data opens). */
  models?(models: readonly ExperimentModel[]): void;
  /** Training begins. */
  started?(started: ExperimentStarted): void;
  /** A model's run failed (e.g. diverged); the others go on. */
  failed?(error: unknown, model: string): void;
  /** Training has ended and the models are saved; called before serving on (`server.keepServing`). */
  ended?(result: ExperimentResult): void | Promise<void>;
}

/** How `runExperiment` runs: hooks, stopping, and what the command line adds to a config. */
export interface RunExperimentOptions extends PlanOverrides {
  /** Aborting stops every model after its batch in progress (writing checkpoints); after the run it ends serving. */
  readonly signal?: AbortSignal;
  readonly hooks?: ExperimentHooks;
  /** The folder the config's paths are relative to (default: the working directory). */
  readonly baseDir?: string;
  /**
   * Stop on SIGINT/SIGTERM as on `signal` (a second one exits at once with 130/143), as
   * the CLI does. Default false: a library leaves the process's signals alone.
   */
  readonly handleSignals?: boolean;
}

/** How one model ended. */
export interface ModelOutcome {
  readonly name: string;
  readonly trainer: Trainer;
  /** The run (disposed once `runExperiment` resolves). */
  readonly run: TrainingRun;
  /** Rolling metrics over the last `evaluation.window` samples. */
  readonly metrics: RollingMetrics;
  /** Metrics over the whole stream. */
  readonly cumulative: CumulativeMetrics;
  readonly units?: string;
  /** Why its run failed, when it did. */
  readonly failure?: unknown;
  /** Where it was saved (`models[i].save`): the absolute path, and as messages show it (relative to the working directory). */
  readonly saved?: { readonly path: string; readonly shown: string };
  /** What was said about saving it (`saved m.json with its preprocessing`, or why not). */
  readonly savedNote?: string;
  /** `checkpoints in DIR, newest …` with a `checkpoints` section. */
  readonly checkpoints?: string;
  /** With delayed labels: what the label join counted, and what happens to features whose label never came. */
  readonly labels?: { readonly stats: LabelStats; readonly expired: ExpiredPolicy };
}

/** What the records of a record source came to (read by the model that read furthest). */
export interface IngestOutcome {
  readonly read: number;
  /** Records rejected (not JSON, or not a sample the models take). */
  readonly rejected: number;
  readonly byCode: Readonly<Partial<Record<string, number>>>;
  readonly imputed: number;
  /** Fields met in records that no model uses, counted each time (`unusedFields` names them). */
  readonly unknownKeys: number;
  /** Fields of the records no model uses. */
  readonly unusedFields: readonly string[];
  /** Records the live source's queue dropped. */
  readonly dropped: number;
  readonly deadLetters?: string;
}

/** How an experiment ended. */
export interface ExperimentResult {
  /** `interrupted`: stopped by `signal` (or Ctrl-C) before the stream ended. */
  readonly outcome: 'finished' | 'interrupted';
  /** A model failed, a model could not be saved, or the dead letters / predictions were not all written. */
  readonly failed: boolean;
  readonly elapsedMs: number;
  readonly models: readonly ModelOutcome[];
  /** Null for a simulated source. */
  readonly ingest: IngestOutcome | null;
  /** The MQTT subscription (its `stats` and `clientId`), with an MQTT source. */
  readonly mqtt?: MqttSource;
  readonly predictions?: { readonly shown: string; readonly lines: number };
  /** Problems met while closing (not all written), one line each. */
  readonly problems: readonly string[];
  readonly server: { readonly url: string; readonly wsUrl: string } | null;
}

/** A config that does not hold (`SG_ERR_CONFIG`, a `ConfigError`): every problem, each with its path (`models[0].optimizer.lr: must be …`). */
export class ExperimentConfigError extends ConfigError {
  constructor(readonly problems: readonly { readonly path: string; readonly message: string }[]) {
    super(`the experiment config has ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, { ...(problems[0] !== undefined && { field: problems[0].path }) });
  }
}

/**
 * Checks a config as `runExperiment` would before starting: the schema, and the world
 * (files readable, CSV columns present, models fitting the source, outputs writable).
 *
 * @example
 * const checked = await checkExperiment(config, { baseDir: 'experiments' });
 * if (!checked.ok) for (const p of checked.problems) console.error(`${p.path}: ${p.message}`);
 */
export function checkExperiment(config: ExperimentConfig, options: Pick<RunExperimentOptions, 'baseDir'> & PlanOverrides = {}): Promise<Planned> {
  const { baseDir = process.cwd(), ...overrides } = options;
  return planConfig(config, { baseDir }, overrides);
}

/**
 * Runs an experiment config: trains its models on its source until the stream ends, the
 * limit is reached, a model fails or `signal` aborts; checkpoints, serves and saves as the
 * config says. Rejects with `ExperimentConfigError` (every problem) before anything starts
 * when the config does not hold.
 *
 * @example
 * import { runExperiment } from 'streamgrad/runtime';
 * const stop = new AbortController();
 * const result = await runExperiment({
 *   source: { mqtt: { url: 'mqtt://127.0.0.1:1883', topics: 'sensors/#' }, features: ['t', 'h'], targets: ['y'], normalize: true },
 *   models: [{ name: 'small', layers: [{ units: 8, activation: 'relu' }, { units: 1, activation: 'linear' }], optimizer: { type: 'adam', lr: 0.003 }, save: 'small.json' }],
 *   checkpoints: { dir: 'checkpoints', everySeconds: 30 },
 *   server: { port: 8080, keepServing: false },
 * }, { signal: stop.signal, hooks: { notice: console.error } });
 * console.log(result.outcome, result.models[0].metrics.loss);
 */
export async function runExperiment(config: ExperimentConfig, options: RunExperimentOptions = {}): Promise<ExperimentResult> {
  const { signal, hooks, baseDir, handleSignals, ...overrides } = options;
  const planned = await checkExperiment(config, { ...(baseDir !== undefined && { baseDir }), ...overrides });
  if (!planned.ok) throw new ExperimentConfigError(planned.problems);
  return runPlan(planned.plan, { ...(signal !== undefined && { signal }), ...(hooks !== undefined && { hooks }), ...(handleSignals !== undefined && { handleSignals }) });
}

/** One model in the race, as the runtime keeps it. */
interface Racer extends ExperimentModel {
  checkpoints: RunCheckpoints | null;
  /** A served run with checkpoints: its version numbers reserved beside them (no number given twice across a restart). */
  versionNumbers?: NumberReservation;
  /** A served run with checkpoints: the command ids applied to it, kept in its checkpoints (`APPLIED_SECTION`). */
  commands?: AppliedOnce;
  run?: TrainingRun;
  failure?: unknown;
}

/**
 * Runs a checked plan (`checkExperiment`, or `planExperiment` of a config file): what
 * `runExperiment` does after the checks.
 */
export async function runPlan(plan: ExperimentPlan, options: Pick<RunExperimentOptions, 'signal' | 'hooks' | 'handleSignals'> = {}): Promise<ExperimentResult> {
  const hooks = options.hooks ?? {};
  const say = (line: string) => hooks.say?.(line);
  const notice = (line: string) => hooks.notice?.(line);
  const units = targetUnits(plan.source.kind === 'simulated' ? plan.source : plan.source.records);
  const racers = plan.models.map((m): Racer => {
    const trainer = buildTrainer(m);
    return { name: m.name, plan: m, trainer, ...(m.drift !== undefined && { drift: new DriftAdaptation(trainer, m.drift) }), checkpoints: null, ...(units !== undefined && { units }) };
  });
  hooks.models?.(racers);

  // with a resume the trainers' state comes from their checkpoints before the data opens,
  // so that each model reads on from the first record its checkpoint did not account for
  const feedsOf: { feeds?: Feeds } = {};
  // the checkpoint folders are locked while the models may write there: a program can run
  // another experiment on the same folder once this one has ended (or failed to start)
  const unlockCheckpoints = () => { for (const r of racers) r.checkpoints?.store.close(); };
  // the runs' version labels (promote/rollback), in their checkpoints
  const versionLabels = new SavedLabels();
  // labels.ingest: the labels sensors send to the server's /ingest
  const labelsRelay = plan.labels?.ingest === true ? new IngestRelay() : undefined;
  let feeds: Feeds;
  try {
    await openRunCheckpoints(plan, racers, feedsOf, notice, versionLabels);
    const live = plan.source.kind === 'mqtt' || plan.source.kind === 'stdin';
    const offsets = racers.map((r) => (live ? 0 : r.checkpoints?.resume?.sourceOffset ?? 0));
    feeds = await openFeeds(plan, racers.map((r) => r.trainer), new RejectionLog(say), offsets, racers.map((r) => r.checkpoints?.resumed?.header.sections.sourceIdentity), labelsRelay);
  } catch (error) {
    unlockCheckpoints();
    throw error;
  }
  feedsOf.feeds = feeds;
  let predictions: PredictionsFile | null = null;
  let server: ThreadedServer | null = null;
  try {
    racers.forEach((r, i) => {
      const sections = r.checkpoints?.resumed?.header.sections;
      if (sections === undefined) return;
      try {
        feedState(feeds.feeds[i]).restore(sections);
      } catch (error) {
        throw new ConfigError(`--resume: ${oneLine(error)}`, { cause: error });
      }
    });
    for (const [i, r] of racers.entries()) {
      const start = r.plan.start;
      if (start === undefined || r.checkpoints?.resumed != null) continue;
      // a saved model goes on learning with the preprocessing it was trained with
      try {
        continuePreprocessing(start.preprocessing, feeds.feeds[i]);
      } catch (error) {
        if (error instanceof StreamgradError) throw new ConfigError(`${r.plan.at}.model ${start.file.shown}: ${error.message}`, { cause: error });
        throw error;
      }
    }
    // said once the data is known to be what the checkpoints read (a refused resume does not say it resumes)
    for (const r of racers) if (r.checkpoints?.resumeNote != null) notice(`${r.name}: ${r.checkpoints.resumeNote}`);
    // appended to when a model goes on from a checkpoint; a fresh start (--resume with none yet, too) rewrites it
    if (plan.predictions !== undefined) predictions = await PredictionsFile.open(plan.predictions.path, 'evaluation.predictions', racers.some((r) => r.checkpoints?.resume != null), plan.predictions.shown);
    createRuns(plan, racers, feeds, predictions);
    // a failed server thread stops the runs as an abort would (the run then ends with its error)
    if (plan.server !== undefined) server = await startServing({ ...plan.server, sessionToken: plan.server.sessionToken ?? true, labels: versionLabels, numbers: byRun(racers, (r) => r.versionNumbers), commands: byRun(racers, (r) => r.commands), ...(labelsRelay !== undefined && { ingest: labelsRelay }) }, racers.map((r) => r.run!), notice, 'server.port', () => stop('the live view failed'));
  } catch (error) {
    await feeds.close().catch(() => undefined);
    await predictions?.close().catch(() => undefined);
    for (const r of racers) r.run?.dispose();
    unlockCheckpoints();
    throw error;
  }
  const runs = racers.map((r) => r.run!);

  let interrupted = false;
  let stopped = false;
  // once training has ended a signal only ends serving (`untilStopped`): nothing to stop
  let trained = false;
  function stop(why: string): void {
    if (trained) return;
    interrupted = true;
    if (stopped) return;
    stopped = true;
    notice(`${why}: stopping after the batch in progress${plan.checkpoints === undefined ? '' : racers.length === 1 ? ' and writing a checkpoint' : ' and writing checkpoints'}${options.handleSignals === true ? ' (again to quit at once)' : ''}`);
    for (const run of runs) run.stop();
    void feeds.stop();
    labelsRelay?.end();
  }
  // Ctrl-C or SIGTERM: every model stops after its batch in progress (and writes its last
  // checkpoint); a second one quits at once
  const signals = options.handleSignals === true ? onSignals((s) => stop(s)) : null;
  const onAbort = () => stop('aborted');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const serverAt = server === null ? null : { url: server.url, wsUrl: server.wsUrl };
  const samples = Math.min(plan.source.kind === 'simulated' ? plan.source.samples ?? Infinity : Infinity, plan.limit.samples ?? Infinity, plan.limit.trainedSamples ?? Infinity);
  hooks.started?.({
    models: racers.map((r) => ({ ...r, run: r.run! })),
    source: {
      name: describeSource(plan.source),
      ...(feeds.meter !== undefined && { meter: feeds.meter }),
      ...(Number.isFinite(samples) && { samples }),
      ...(plan.limit.steps !== undefined && { steps: plan.limit.steps }),
      ...(plan.source.kind !== 'simulated' && { rows: () => Math.max(0, ...feeds.feeds.map((f) => f.counters?.read ?? 0)) }),
    },
    ...(feeds.mqtt !== undefined && { mqtt: feeds.mqtt }),
    server: serverAt,
  });
  if (options.signal?.aborted === true) stop('aborted');

  const started = performance.now();
  await Promise.all(racers.map((r) => r.run!.start().catch((error: unknown) => {
    r.failure = error;
    hooks.failed?.(error, r.name);
    notice(`${r.name} stopped: ${oneLine(error)}`);
  })));
  const elapsedMs = performance.now() - started;
  trained = true;
  // a stop with nothing to carry what waits for labels (no checkpoints): the features and
  // labels still waiting become dead letters, never only "N waiting" in the summary; with
  // checkpoints, each model's last one holds them for --resume
  if (interrupted && plan.checkpoints === undefined) for (const feed of feeds.feeds) feed.abandonWaiting?.();
  const problems: string[] = [];
  await feeds.close().catch((error: unknown) => { problems.push(`not all written: ${oneLine(error)}`); });
  await predictions?.close().catch((error: unknown) => { problems.push(`not all written: ${oneLine(error)}`); });
  const saved = await saveModels(racers, feeds, notice);
  const models: ModelOutcome[] = [];
  for (const [i, r] of racers.entries()) {
    models.push({
      name: r.name, trainer: r.trainer, run: r.run!, metrics: r.run!.metrics.snapshot(), cumulative: r.run!.metrics.cumulative(),
      ...(r.units !== undefined && { units: r.units }),
      ...(r.failure !== undefined && { failure: r.failure }),
      ...saved[i],
      ...(r.checkpoints !== null && { checkpoints: await r.checkpoints.summary() }),
      ...(feeds.feeds[i].labels !== undefined && { labels: { stats: feeds.feeds[i].labels!.stats(), expired: feeds.feeds[i].labels!.expiredPolicy } }),
    });
  }
  const result: ExperimentResult = {
    outcome: interrupted ? 'interrupted' : 'finished',
    failed: racers.some((r) => r.failure !== undefined) || saved.some((s) => s.error === true) || problems.length > 0,
    elapsedMs,
    models,
    ingest: ingestOutcome(plan, feeds),
    ...(feeds.mqtt !== undefined && { mqtt: feeds.mqtt }),
    ...(predictions !== null && { predictions: { shown: predictions.shown, lines: predictions.lines } }),
    problems,
    server: serverAt,
  };
  try {
    await hooks.ended?.(result);
    if (server !== null && !interrupted && plan.server!.keepServing && (options.signal !== undefined || signals !== null)) {
      // the dashboard keeps showing the final state until the person is done with it
      notice(`training ${result.failed ? 'stopped' : 'done'}; still serving ${server.url}/ (${signals !== null ? 'Ctrl-C' : 'aborting'} stops)`);
      await untilStopped(options.signal, signals !== null);
    }
  } finally {
    signals?.dispose();
    options.signal?.removeEventListener('abort', onAbort);
    for (const run of runs) run.dispose();
    await server?.close();
    unlockCheckpoints();
  }
  const served = serverFailure(server);
  if (served !== null) throw served;
  return result;
}

/** Resolves when `signal` aborts or, with `processSignals`, on SIGINT/SIGTERM. */
function untilStopped(signal: AbortSignal | undefined, processSignals: boolean): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      signal?.removeEventListener('abort', done);
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    if (signal?.aborted === true) return resolve();
    signal?.addEventListener('abort', done, { once: true });
    if (processSignals) {
      process.on('SIGINT', done);
      process.on('SIGTERM', done);
    }
  });
}

/**
 * Opens each model's checkpoints: files named after the model in `checkpoints.dir`, and
 * on a resume its newest intact checkpoint loaded into its trainer. The state around each
 * run (normaliser, imputation, counters) is its feed's.
 */
async function openRunCheckpoints(plan: ExperimentPlan, racers: readonly Racer[], feedsOf: { feeds?: Feeds }, notice: (line: string) => void, versionLabels: SavedLabels): Promise<void> {
  const c = plan.checkpoints;
  if (c === undefined) return;
  const settings = {
    // named as shown (relative to the working folder, which it resolves against): messages name the checkpoints as the person wrote them
    dir: c.dir.shown, keep: c.keep, maxFailures: c.maxFailures, resume: plan.resume,
    ...(c.everySteps !== undefined && { everySteps: c.everySteps }),
    ...(c.everySeconds !== undefined && { everySeconds: c.everySeconds }),
  };
  for (const [i, r] of racers.entries()) {
    // the run's side keeps the ids of the commands applied to it, where their effect is
    // (the server's own memory is on its thread, and gone after a restart): a checkpoint
    // then holds an id exactly when it holds what the command did (RunPublisher)
    if (plan.server !== undefined) r.commands = new AppliedOnce();
    try {
      r.checkpoints = await openCheckpoints(settings, {
        id: r.name,
        trainer: r.trainer,
        window: plan.window,
        ...(r.drift !== undefined && { drift: r.drift }),
        source: { ...checkpointSource(plan.source), ...(plan.labels !== undefined && checkpointLabels(plan.labels)) },
        // the checkpoints `streamgrad train` wrote before it ran on this runtime describe the data in their own words
        accepts: (saved) => isTrainSourceOf(saved, plan.source, plan.labels),
        state: () => combineStates(feedState(feedsOf.feeds!.feeds[i]), versionLabels.section(r.name), r.commands && appliedState(r.commands)),
        identity: async (records) => (await feedsOf.feeds!.feeds[i].fingerprint?.identity(records)) ?? null,
        say: (line) => notice(`${r.name}: ${line}`),
      });
      versionLabels.resume(r.name, r.checkpoints.resumed?.header.sections);
      // before the server answers a command (a checkpoint of an older version has no section: none)
      try {
        r.commands?.restore(r.checkpoints.resumed?.header.sections[APPLIED_SECTION]);
      } catch (error) {
        throw new ConfigError(`--resume: ${oneLine(error)}`, { cause: error });
      }
      // a served run numbers its versions far more often than it checkpoints: the numbers are reserved ahead, on disk
      if (plan.server !== undefined) r.versionNumbers = await reserveNumbersOf(numbersFileOf(settings.dir, r.name));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new ConfigError(error.message.replace(/^--checkpoint-dir \S+: /, `checkpoints.dir ${c.dir.shown}: `), { cause: error });
    }
  }
}

/** The command ids applied to a served run, as its checkpoints keep them (restored apart, before the server starts). */
function appliedState(commands: AppliedOnce): CheckpointedState {
  return { save: () => ({ [APPLIED_SECTION]: commands.save() }), restore: (sections) => commands.restore(sections[APPLIED_SECTION]) };
}

/** The next block of a run's version numbers; a file that cannot be read or written is a usage error naming it. */
async function reserveNumbersOf(path: string): Promise<NumberReservation> {
  try {
    return await reserveVersionNumbers(path);
  } catch (error) {
    throw new ConfigError(error instanceof StreamgradError ? error.message : `${path}: cannot reserve version numbers: ${oneLine(error)}`, { cause: error });
  }
}

/** What `of` gives for each run that has it, by run id (a served run's reservation of version numbers, its memory of commands). */
function byRun<T>(racers: readonly Racer[], of: (racer: Racer) => T | undefined): ReadonlyMap<string, T> {
  return new Map(racers.flatMap((r) => {
    const value = of(r);
    return value === undefined ? [] : [[r.name, value] as const];
  }));
}

/** A fresh trainer for a planned model (its seed, init or start file, kernels): also what a cluster worker trains. */
export function buildTrainer(m: ModelPlan): Trainer {
  let model: Model;
  try {
    model = m.start !== undefined ? cloneModel(m.start.model, m.kernels) : initialize(createModel(m.topology, m.kernels), m.init, m.seed);
    return createTrainer({ model, loss: m.loss, optimizer: m.optimizer, clipNorm: m.clipNorm, kernels: m.kernels, ...m.divergence });
  } catch (error) {
    // the plan ran these checks already; this is a safety net naming the model
    if (error instanceof StreamgradError) throw new ConfigError(`${m.at}: ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * Creates every model's `TrainingRun`, the one place where runs are made: its feed (source
 * and ingestion stages), batching, the metrics window, ingestion counters for /metrics,
 * and its checkpoints (on request from the dashboard, every N steps or T seconds, and when
 * it stops or ends).
 */
function createRuns(plan: ExperimentPlan, racers: readonly Racer[], feeds: Feeds, predictions: PredictionsFile | null): void {
  racers.forEach((racer, i) => {
    const feed: Feed = feeds.feeds[i];
    const checkpoints = racer.checkpoints;
    const save = racer.plan.save;
    racer.run = new TrainingRun({
      id: racer.name,
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
      ...(predictions !== null && predictions.hooks(racer.trainer, { model: racer.name, classes: feed.features?.classes ?? undefined })),
      ...(plan.limit.trainedSamples !== undefined && { maxSamples: plan.limit.trainedSamples }),
      ...(checkpoints !== null && {
        checkpoint: checkpoints.checkpoint,
        autoCheckpoint: checkpoints.autoCheckpoint,
        sourceOffset: checkpoints.resume?.sourceOffset ?? 0,
      }),
      // without checkpoints, the dashboard's `checkpoint` command saves the model where `save` says
      ...(checkpoints === null && save !== undefined && {
        checkpoint: async () => {
          await saveModelFile(save.shown, racer.trainer.model, `${racer.plan.at}.save`, preprocessingOf(feed));
          return save.shown;
        },
      }),
    });
  });
}

/**
 * The stream's rejections, from the model that read furthest (it has seen every rejected
 * record; after a resume too, its counters are checkpointed); null without record sources.
 */
function ingestOutcome(plan: ExperimentPlan, feeds: Feeds): IngestOutcome | null {
  if (plan.source.kind === 'simulated') return null;
  const all = feeds.feeds.map((f) => f.counters).filter((c) => c !== undefined);
  if (all.length === 0) return null;
  const c = all.reduce((a, b) => (b.read > a.read ? b : a));
  const deadLetters = plan.source.records.deadLetter?.shown;
  return {
    read: c.read, rejected: c.rejected, byCode: { ...c.rejectedByCode }, imputed: c.imputed, unknownKeys: c.unknownKeys,
    unusedFields: [...new Set(feeds.feeds.flatMap((f) => [...(f.features?.unknownNames ?? [])]))],
    dropped: feeds.dropped(),
    ...(deadLetters !== undefined && { deadLetters }),
  };
}

/** Saves the models the config asks to (`save`), with their ingestion state beside them. */
async function saveModels(racers: readonly Racer[], feeds: Feeds, notice: (line: string) => void): Promise<{ saved?: { path: string; shown: string }; savedNote?: string; error?: boolean }[]> {
  const out: { saved?: { path: string; shown: string }; savedNote?: string; error?: boolean }[] = [];
  for (const [i, r] of racers.entries()) {
    const save = r.plan.save;
    if (save === undefined) {
      out.push({});
      continue;
    }
    if (r.failure !== undefined) {
      const note = isDiverged(r.failure) ? await saveDivergedModel(save.path, r.trainer.model, `${r.plan.at}.save`, save.shown) : 'not saved (the run failed)';
      notice(`${r.name}: ${note}`);
      out.push({ savedNote: note });
      continue;
    }
    try {
      const feed = feeds.feeds[i];
      await saveModelFile(save.shown, r.trainer.model, `${r.plan.at}.save`, preprocessingOf(feed));
      out.push({ saved: { path: save.path, shown: save.shown }, savedNote: `saved ${save.shown}${preprocessingNote(feed)}` });
    } catch (error) {
      notice(`${r.name}: ${oneLine(error)}`);
      out.push({ savedNote: oneLine(error), error: true });
    }
  }
  return out;
}
