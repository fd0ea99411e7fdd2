import type { CumulativeMetrics, PrequentialEvaluator, RollingMetrics } from '../core/evaluation.ts';
import { StreamgradError } from '../core/errors.ts';
import { parameterCount } from '../core/model.ts';
import type { TrainingRun } from '../pipeline/run.ts';
import type { StepResult } from '../pipeline/train.ts';
import type { Trainer } from '../core/trainer.ts';
import { EXIT_USAGE, exitCodeOf, oneLine, usage } from './cli-error.ts';
import { ConfigError, OutputError } from '../runtime/errors.ts';
import { formatBytes, formatCount, formatDuration, formatNumber, formatStatus, formatTopology } from './format.ts';
import type { ByteMeter } from '../runtime/ndjson.ts';
import { atMost, flag, MAX_TIMER_SECONDS, number, type OptionSpec, type Options } from './options.ts';

/**
 * Reporting a training job's progress: what people see on stderr while it runs, and what
 * scripts read on stdout with `--log-json`.
 *
 * | where stderr goes                | what it shows                                            |
 * |----------------------------------|----------------------------------------------------------|
 * | a terminal, finite source        | a progress bar per model, redrawn in place ≤ 10×/s       |
 * | a terminal, endless source       | a live status line per model (rows, samples/s, loss, elapsed) |
 * | not a terminal (a pipe, a file)  | plain status lines every `--status-interval` seconds     |
 * | `--quiet` or `--log-json`        | only errors, notices and the final summary               |
 *
 * A command creates one reporter from its parsed options, `start`s it when training
 * begins, feeds it step results (`update`, or `follow` a `TrainingRun`), sends every
 * other stderr line through it (`say`, `notice`, `summary`: the bar is cleared first, so
 * nothing is ever printed mid-line) and ends it with `finish`.
 *
 * @example
 * const progress = createProgress(parseProgressOptions(options), { command: 'train' });
 * progress.start({ models: [{ name: 'train', trainer }], source: { name: path, meter: byteMeter(input) } });
 * results$.subscribe((r) => progress.update('train', r));
 * // ... when the source ends:
 * progress.summary('trained 1000 samples in 4.2 s');
 * progress.finish({ outcome: 'finished', rejected: { total: 3 } });
 */

/** The progress options `train`, `start` and `run` share. */
export const PROGRESS_SPEC: OptionSpec = {
  quiet: { type: 'boolean', short: 'q' },
  'log-json': { type: 'boolean' },
  'status-interval': { type: 'string' },
};

export const PROGRESS_HELP = `Progress (README: "Progress and machine-readable output"):
  On a terminal, stderr shows a progress bar per model for a source of known size
  (percent, samples/s, ETA, rolling loss) and a live status line for an endless one;
  otherwise a plain status line every --status-interval seconds. NO_COLOR: no colour.
  -q, --quiet          print only errors and the final summary (and a dashboard's address)
  --log-json           NDJSON events on stdout, one JSON object a line with "event" and
                       "time" (stderr then shows what --quiet shows):
                         start       once: command, source, models
                         progress    per model every --status-interval seconds: step,
                                     samples, rows, samplesPerSecond, loss, mae,
                                     accuracy, window, fraction and eta (known size)
                         non-finite  model, step, stage, value, layer, message: the
                                     first step skipped for NaN or Infinity
                         checkpoint  model, step, path (null when the write failed)
                         source      a live source's connection: kind (disconnected,
                                     reconnected, session-lost, resumed,
                                     protocol-fallback, stale-subscription), message, loss
                         error       code, message; with model: only that model stopped
                         rejected    at the end: total, byCode
                         done        last: outcome, elapsed, each model's counters
                                     (samples seen, trained, skipped), final rolling
                                     metrics and whole-stream ones (total)
  With --normalize-target, loss and mae are in the target's units (field units).
  --status-interval S  seconds between plain status lines and progress events (default 10;
                       start: 1)
`;

/** The validated progress options. */
export interface ProgressSettings {
  /** `--quiet`: errors, notices and the final summary only. */
  readonly quiet: boolean;
  /** `--log-json`: NDJSON events on stdout (stderr as with --quiet). */
  readonly json: boolean;
  /** `--status-interval`, in milliseconds; undefined: the command's default. */
  readonly intervalMs?: number;
}

/** Reads `--quiet`, `--log-json` and `--status-interval` (seconds, ≥ 0.1). */
export function parseProgressOptions(options: Options): ProgressSettings {
  const seconds = atMost(number(options, 'status-interval'), 'status-interval', MAX_TIMER_SECONDS);
  if (seconds !== undefined && !(seconds >= 0.1)) usage('--status-interval', `must be a number of seconds ≥ 0.1, got ${seconds}`);
  return {
    quiet: flag(options, 'quiet'),
    json: flag(options, 'log-json'),
    ...(seconds !== undefined && { intervalMs: seconds * 1000 }),
  };
}

/** What the reporter needs of stderr: a terminal's interface (`process.stderr`, or a fake in tests). */
export interface Terminal {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  /** Width in characters, when it is a terminal. */
  readonly columns?: number;
}

/** Where events go (`process.stdout`): a failing pipe (EPIPE) only stops the events. */
export interface EventSink {
  write(text: string): unknown;
  on?(event: 'error', listener: (error: Error) => void): unknown;
}

export interface ProgressOptions {
  /** The command, for the start event: `train`, `start`, `run`. */
  readonly command: string;
  /** The command's default for `--status-interval`, in milliseconds (default 10 000). */
  readonly intervalMs?: number;
  /** Shortest time between two redraws on a terminal, in milliseconds (default 100). */
  readonly redrawMs?: number;
  readonly stderr?: Terminal;
  readonly stdout?: EventSink;
  /** For `NO_COLOR` and `TERM` (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Monotonic clock in milliseconds (default `performance.now`). */
  readonly clock?: () => number;
  /** Wall clock in milliseconds since the epoch, for the events' `time` (default `Date.now`). */
  readonly now?: () => number;
}

/** A model being trained. */
export interface ModelInfo {
  /** Its name in lines and events (`wide`, `deep`, `train`). */
  readonly name: string;
  readonly trainer: Trainer;
  /** How plain status lines name it (default: `name`), e.g. with its topology. */
  readonly label?: string;
  /** Samples per update, for the start event. */
  readonly batch?: number;
  /**
   * What the loss and MAE are measured in when the target is normalised (the model learns
   * in z-units, the metrics are mapped back): the target's name, e.g. `co2`, or `target`.
   * Shown beside the numbers (`mae 0.44 (in units of co2)`) and as `units` in events.
   */
  readonly units?: string;
}

/**
 * What is being read. A finite source of known size gives a progress bar: a file (its
 * `meter`, bytes read of the file's size), or a stream that ends after `samples` samples
 * or `steps` steps. Without any of them the source is endless (or of unknown size: MQTT,
 * standard input from a pipe) and gets a status line.
 */
export interface SourceInfo {
  /** `michaelis-menten`, a file path, `stdin`, an MQTT URL. */
  readonly name: string;
  /** Bytes read, and the total for a regular file (`byteMeter(openData(...))`). */
  readonly meter?: ByteMeter;
  /** The source ends after this many samples. */
  readonly samples?: number;
  /** Each model stops after this many steps. */
  readonly steps?: number;
  /** Input rows (lines, records, messages) read so far, rejected ones included; default: each model's samples plus rejections. */
  readonly rows?: () => number;
}

/** The rejected-input tally for the `rejected` event. */
export interface RejectedSummary {
  readonly total: number;
  /** Counts by error code (`SG_ERR_BAD_JSON`, `SG_ERR_ARITY`...). */
  readonly byCode?: Readonly<Partial<Record<string, number>>>;
  /** Where the dead letters went (`--dead-letter`). */
  readonly deadLetters?: string;
}

export interface FinishSummary {
  /** How the job ended (default: `failed` after a `fail` without a model, else `finished`). */
  readonly outcome?: 'finished' | 'interrupted' | 'stopped' | 'failed';
  /** Default: the trainers' own rejection counters. */
  readonly rejected?: RejectedSummary;
  /** More fields for the done event, e.g. `{ saved: 'model.json' }`. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** How stderr shows progress: redrawn in place, plain periodic lines, or not at all. */
export type Display = 'live' | 'lines' | 'none';

/** A reporter for a command run with `settings` (see `ProgressReporter`). */
export function createProgress(settings: ProgressSettings, options: ProgressOptions): ProgressReporter {
  return new ProgressReporter(settings, options);
}

/**
 * Runs a command's job with a reporter: an error it throws becomes the `error` event (and
 * is thrown on, for the command line to print), and the job is always finished.
 */
export async function withProgress<T>(settings: ProgressSettings, options: ProgressOptions, job: (progress: ProgressReporter) => Promise<T>): Promise<T> {
  const progress = createProgress(settings, options);
  try {
    return await job(progress);
  } catch (error) {
    progress.fail(error);
    throw error;
  } finally {
    progress.finish();
  }
}

interface Tracked {
  readonly info: ModelInfo;
  metrics?: RollingMetrics;
  /** The run's evaluator (`follow`), for the whole-stream metrics at the end. */
  evaluator?: PrequentialEvaluator;
  failure?: unknown;
  readonly rate: RateMeter;
}

const RESET = '\x1b[0m';
const STYLE = { bar: '\x1b[36m', rest: '\x1b[2m', failed: '\x1b[31m' } as const;
type Segment = readonly [text: string, style?: string];

/**
 * One job's progress on stderr and, with `--log-json`, as events on stdout. Lifecycle:
 * created → `start` → `update`s → `finish`; `say`/`notice`/`fail` at any time.
 */
export class ProgressReporter {
  /** How stderr shows progress, from the settings and the terminal. */
  readonly display: Display;
  private readonly settings: ProgressSettings;
  private readonly command: string;
  private readonly stderr: Terminal;
  private readonly stdout: EventSink;
  private readonly clock: () => number;
  private readonly now: () => number;
  private readonly color: boolean;
  private readonly intervalMs: number;
  private readonly redrawMs: number;
  private readonly models = new Map<string, Tracked>();
  private source: SourceInfo = { name: '' };
  private phase: 'created' | 'running' | 'ended' = 'created';
  /** The live display or periodic lines have been stopped (by `summary` or `finish`). */
  private displayDone = false;
  private startedAt = NaN;
  /** Lines of the live block on the screen (the cursor is at the end of its last line). */
  private drawn = 0;
  private shown = '';
  private timers: ReturnType<typeof setInterval>[] = [];
  private eventsOpen: boolean;
  private fatal = false;
  private readonly reported = new WeakSet<object>();
  private lastCheckpointLine = -Infinity;
  private readonly checkpointFailures = new Map<string, number>();

  constructor(settings: ProgressSettings, options: ProgressOptions) {
    this.settings = settings;
    this.command = options.command;
    this.stderr = options.stderr ?? process.stderr;
    this.stdout = options.stdout ?? process.stdout;
    this.clock = options.clock ?? (() => performance.now());
    this.now = options.now ?? Date.now;
    this.intervalMs = settings.intervalMs ?? options.intervalMs ?? 10_000;
    this.redrawMs = options.redrawMs ?? 100;
    const env = options.env ?? process.env;
    const terminal = this.stderr.isTTY === true && env.TERM !== 'dumb';
    this.display = settings.quiet || settings.json ? 'none' : terminal ? 'live' : 'lines';
    this.color = terminal && (env.NO_COLOR ?? '') === '';
    this.eventsOpen = settings.json;
    if (settings.json) this.stdout.on?.('error', () => { this.eventsOpen = false; });
  }

  /** Training begins: the start event, then the bar, status lines or events at their pace. */
  start(job: { readonly models: readonly ModelInfo[]; readonly source: SourceInfo }): void {
    if (this.phase !== 'created') throw new Error('ProgressReporter.start: already started');
    this.source = job.source;
    this.startedAt = this.clock();
    for (const info of job.models) this.track(info);
    this.phase = 'running';
    const { name, meter, samples, steps } = job.source;
    this.emit('start', {
      command: this.command,
      source: { name, ...(meter?.totalBytes !== undefined && { totalBytes: meter.totalBytes }), ...(samples !== undefined && { samples }), ...(steps !== undefined && { steps }) },
      models: job.models.map(describe),
    });
    const every = (ms: number, tick: () => void) => {
      const timer = setInterval(tick, ms);
      timer.unref?.();
      this.timers.push(timer);
    };
    if (this.display === 'live') {
      every(this.redrawMs, () => this.paint());
      this.paint();
    } else if (this.display === 'lines') {
      every(this.intervalMs, () => this.statusLines());
    }
    if (this.settings.json) every(this.intervalMs, () => this.progressEvents());
  }

  /** A step of `model` (cheap: it only keeps the metrics; drawing happens on a timer). */
  update(model: string, result: StepResult): void {
    const tracked = this.models.get(model);
    if (tracked === undefined) throw new Error(`ProgressReporter.update: unknown model ${JSON.stringify(model)} (list it in start)`);
    tracked.metrics = result.metrics;
  }

  /**
   * Follows a `TrainingRun`: its step results and its checkpoints. Its failures are the
   * caller's to report (`fail`), as it alone knows whether they end the job. A run not
   * listed in `start` joins the display (and the later events). Returns the unsubscriber.
   */
  follow(run: TrainingRun): () => void {
    if (!this.models.has(run.id)) this.track({ name: run.id, trainer: run.trainer });
    this.models.get(run.id)!.evaluator = run.metrics;
    const results = run.results.subscribe((result) => this.update(run.id, result));
    const events = run.events.subscribe((event) => {
      const d = event.detail ?? {};
      const step = typeof d.step === 'number' ? d.step : event.step;
      if (event.type === 'checkpoint') {
        this.checkpoint(run.id, String(d.path), { step, ...(typeof d.sourceOffset === 'number' && { sourceOffset: d.sourceOffset }) });
      } else if (event.type === 'checkpoint-failed') {
        this.checkpointFailed(run.id, typeof d.message === 'string' ? d.message : 'the checkpoint could not be written', typeof d.code === 'string' ? d.code : undefined);
      } else if (event.type === 'source') {
        this.sourceNotice(run.id, d);
      } else if (event.type === 'drift' || event.type === 'drift-warning' || event.type === 'drift-reaction') {
        this.drift(run.id, event.type, event.step, d);
      } else if (event.type === 'non-finite') {
        this.nonFinite(run.id, d);
      }
    });
    return () => {
      results.unsubscribe();
      events.unsubscribe();
    };
  }

  /** An informational line (`streamgrad: …` on stderr); hidden by --quiet and --log-json. */
  say = (line: string): void => {
    if (this.settings.quiet || this.settings.json) return;
    this.print(line);
  };

  /** A line shown even with --quiet: an error or warning, or something the user needs (a dashboard's address, a token). */
  notice = (line: string): void => {
    this.print(line);
  };

  /** A line of the final summary, shown even with --quiet; the first one ends the live display. */
  summary = (line: string): void => {
    this.stopDisplay();
    this.print(line);
  };

  /**
   * A checkpoint of `model` was written to `path`: the checkpoint event, and a line.
   * `step` defaults to the trainer's step count; `sourceOffset` is where a resume reads on.
   */
  /**
   * A drift warning, a drift, or a reaction of `model`: an event under --log-json, and a
   * line (drifts the signal went down with, a model that learned, are events only).
   */
  drift(model: string, type: 'drift' | 'drift-warning' | 'drift-reaction', step: number, detail: Readonly<Record<string, unknown>>): void {
    this.emit(type, { model, step, ...detail });
    const who = this.models.size > 1 ? `${model}: ` : '';
    const at = `sample ${String(detail.index)} (step ${step})`;
    if (type === 'drift' && detail.direction === 1) this.say(`${who}drift detected at ${at} by ${String(detail.detector)}`);
    else if (type === 'drift-warning') this.say(`${who}drift warning at ${at} from ${String(detail.detector)}`);
    else if (type === 'drift-reaction') this.say(`${who}drift reaction at ${at}: ${describeReaction(detail)}`);
  }

  checkpoint(model: string, path: string, at: { readonly step?: number; readonly sourceOffset?: number } = {}): void {
    const step = at.step ?? this.models.get(model)?.info.trainer.counters.steps ?? 0;
    this.emit('checkpoint', { model, step, path, ...(at.sourceOffset !== undefined && { sourceOffset: at.sourceOffset }) });
    // checkpoints every few steps must not bury the terminal: a line at most once per status interval
    const now = this.clock();
    if (now - this.lastCheckpointLine < this.intervalMs) return;
    this.lastCheckpointLine = now;
    this.say(`${this.models.size > 1 ? `${model}: ` : ''}checkpoint at step ${step}: ${path}`);
  }

  /** A checkpoint of `model` could not be written (training goes on): a checkpoint event with `path: null` and the error, and a line even with --quiet. */
  checkpointFailed(model: string, message: string, code = 'SG_ERR_CHECKPOINT'): void {
    const step = this.models.get(model)?.info.trainer.counters.steps ?? 0;
    this.emit('checkpoint', { model, step, path: null, error: { code, message } });
    // a full disk fails every write: the 1st, 10th, 100th... failure of a model is shown
    const failures = (this.checkpointFailures.get(model) ?? 0) + 1;
    this.checkpointFailures.set(model, failures);
    if (/^10*$/.test(String(failures))) this.notice(`${this.models.size > 1 ? `${model}: ` : ''}checkpoint at step ${step} failed: ${message}`);
  }

  /**
   * What a live source said about itself (`SourceNotice`: an MQTT broker lost and found
   * again): a `source` event, and its line even with --quiet (data may be late or lost).
   */
  sourceNotice(model: string, notice: Readonly<Record<string, unknown>>): void {
    const message = typeof notice.message === 'string' ? notice.message : 'the source reported a problem';
    this.emit('source', { model, ...notice, message });
    this.notice(message);
  }

  /**
   * The first step of `model` skipped for a non-finite loss or gradient: a `non-finite`
   * event and a line even with --quiet (it is news: training goes on, but the divergence
   * rules may stop it).
   */
  nonFinite(model: string, detail: Readonly<Record<string, unknown>>): void {
    const step = typeof detail.step === 'number' ? detail.step : this.models.get(model)?.info.trainer.counters.steps ?? 0;
    const { stage, value, layer, message } = detail;
    this.emit('non-finite', { model, step, stage, value, ...(typeof layer === 'number' && { layer }), message });
    const t = this.models.get(model)?.info.trainer;
    const rules = t === undefined ? '' : `; stops after ${t.divergence.maxConsecutiveSkips} in a row or more than ${t.divergence.allowed} in ${t.divergence.skipWindow} steps`;
    this.notice(`${this.models.size > 1 ? `${model}: ` : ''}first non-finite step: ${String(message)} (training goes on${rules})`);
  }

  /**
   * An error: the error event. With `model`, that model stopped and the others go on (its
   * line says so); without, the job failed. Prints nothing: the caller says it
   * (`notice`) or throws it for the command line to print. Reporting the same error
   * twice (or an error wrapping one already reported) writes one event.
   */
  fail(error: unknown, model?: string): void {
    if (this.seen(error)) return;
    if (typeof error === 'object' && error !== null) {
      this.reported.add(error);
      if (this.eventsOpen) WRITTEN_ERRORS.add(error);
    }
    if (model === undefined) this.fatal = true;
    else {
      const tracked = this.models.get(model);
      if (tracked !== undefined) tracked.failure = error;
    }
    const exitCode = exitCodeOf(error);
    this.emit('error', { code: errorCode(error), message: oneLine(error), ...(model !== undefined && { model }), ...(exitCode !== undefined && { exitCode }) });
  }

  /**
   * The job is over: clears the bar and stops the timers, then the rejected and done
   * events (only when it had started). Call it on every path out, errors included;
   * calling it again does nothing.
   */
  finish(summary: FinishSummary = {}): void {
    if (this.phase === 'ended') return;
    this.stopDisplay();
    const started = this.phase === 'running';
    this.phase = 'ended';
    if (!started) return;
    const trackeds = [...this.models.values()];
    const rejected = summary.rejected ?? { total: trackeds.reduce((n, t) => n + t.info.trainer.counters.rejected, 0) };
    this.emit('rejected', { total: rejected.total, byCode: rejected.byCode ?? {}, ...(rejected.deadLetters !== undefined && { deadLetters: rejected.deadLetters }) });
    const elapsed = this.elapsed();
    this.emit('done', {
      outcome: summary.outcome ?? (this.fatal ? 'failed' : 'finished'),
      elapsed: seconds(elapsed),
      models: trackeds.map((t) => {
        const c = t.info.trainer.counters;
        return {
          model: t.info.name,
          steps: c.steps,
          samples: c.samples,
          trained: c.samples - c.skippedSamples,
          skipped: c.skipped,
          skippedSamples: c.skippedSamples,
          clipped: c.clipped,
          rejected: c.rejected,
          samplesPerSecond: elapsed > 0 ? (c.samples * 1000) / elapsed : null,
          ...metricFields(t.metrics, t.info.units),
          ...(t.evaluator !== undefined && { total: totalFields(t.evaluator.cumulative()) }),
          ...(t.failure !== undefined && { error: { code: errorCode(t.failure), message: oneLine(t.failure) } }),
        };
      }),
      ...summary.extra,
    });
  }

  // -------------------------------------------------------------------------------------

  private track(info: ModelInfo): void {
    if (this.models.has(info.name)) throw new Error(`ProgressReporter: model ${JSON.stringify(info.name)} listed twice`);
    const rate = new RateMeter();
    rate.sample(this.phase === 'created' ? this.startedAt : this.clock(), info.trainer.counters.samples);
    this.models.set(info.name, { info, rate });
  }

  private seen(error: unknown): boolean {
    for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
      if (this.reported.has(e)) return true;
    }
    return false;
  }

  private elapsed(): number {
    return Number.isNaN(this.startedAt) ? 0 : this.clock() - this.startedAt;
  }

  private emit(event: string, fields: Readonly<Record<string, unknown>>): void {
    if (!this.eventsOpen) return;
    this.stdout.write(`${JSON.stringify({ event, time: new Date(this.now()).toISOString(), ...fields })}\n`);
  }

  /** A line on stderr, above the live block (which is redrawn under it in the same write). */
  private print(line: string): void {
    if (this.drawn > 0) this.paint(`streamgrad: ${line}\n`);
    else this.stderr.write(`streamgrad: ${line}\n`);
  }

  private live(): boolean {
    return this.display === 'live' && this.phase === 'running' && !this.displayDone;
  }

  /** Redraws the live block (when it changed), after `above` if given, in one write. */
  private paint(above = ''): void {
    const block = this.live() ? this.block() : [];
    const text = block.join('\n');
    if (above === '' && text === this.shown && block.length === this.drawn) return;
    const erase = this.drawn === 0 ? '' : `\r${this.drawn > 1 ? `\x1b[${this.drawn - 1}A` : ''}\x1b[J`;
    this.stderr.write(`${erase}${above}${text}`);
    this.drawn = block.length;
    this.shown = text;
  }

  private stopDisplay(): void {
    if (this.displayDone) return;
    this.displayDone = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.paint(); // erases the block: not live any more
  }

  /** Not a terminal: one plain status line per model. */
  private statusLines(): void {
    const now = this.clock();
    for (const t of this.models.values()) {
      const c = t.info.trainer.counters;
      const rate = t.rate.sample(now, c.samples);
      const f = this.fraction(t);
      const eta = this.eta(f);
      const extra = f === undefined ? '' : `  ${Math.floor(f * 100)}%, ETA ${formatDuration(eta)}`;
      this.stderr.write(`streamgrad: ${formatStatus(t.info.label ?? t.info.name, c, t.metrics, t.info.trainer.loss, rate, t.info.units)}${extra}\n`);
    }
  }

  /** `--log-json`: one progress event per model. */
  private progressEvents(): void {
    const now = this.clock();
    const elapsed = now - this.startedAt;
    const meter = this.source.meter;
    for (const t of this.models.values()) {
      const c = t.info.trainer.counters;
      const f = this.fraction(t);
      this.emit('progress', {
        model: t.info.name,
        elapsed: seconds(elapsed),
        step: c.steps,
        samples: c.samples,
        rows: this.rows(t),
        samplesPerSecond: t.rate.sample(now, c.samples),
        ...metricFields(t.metrics, t.info.units),
        ...(meter !== undefined && { bytesRead: meter.bytesRead, ...(meter.totalBytes !== undefined && { totalBytes: meter.totalBytes }) }),
        ...(f !== undefined && { fraction: f, eta: seconds(this.eta(f)) }),
      });
    }
  }

  private rows(t: Tracked): number {
    const c = t.info.trainer.counters;
    return this.source.rows?.() ?? c.samples + c.rejected;
  }

  /** How far through the source `t` is, 0..1; undefined when its size is unknown. */
  private fraction(t: Tracked): number | undefined {
    return this.progress(t)?.fraction;
  }

  private progress(t: Tracked): { readonly fraction: number; readonly amount: string } | undefined {
    const { meter, samples, steps } = this.source;
    const c = t.info.trainer.counters;
    const known: { fraction: number; amount: string }[] = [];
    if (meter?.totalBytes !== undefined) known.push({ fraction: meter.bytesRead / meter.totalBytes, amount: `${formatBytes(meter.bytesRead)}/${formatBytes(meter.totalBytes)}` });
    if (samples !== undefined) known.push({ fraction: c.samples / samples, amount: `${c.samples}/${samples} samples` });
    if (steps !== undefined) known.push({ fraction: c.steps / steps, amount: `${c.steps}/${steps} steps` });
    if (known.length === 0) return undefined;
    const best = known.reduce((a, b) => (b.fraction > a.fraction ? b : a));
    return { fraction: Math.min(1, Math.max(0, best.fraction)), amount: best.amount };
  }

  /** Milliseconds left at the average pace so far; NaN before there is a pace. */
  private eta(fraction: number | undefined): number {
    const elapsed = this.elapsed();
    if (fraction === undefined || fraction <= 0 || elapsed < 500) return NaN;
    return (elapsed * (1 - fraction)) / fraction;
  }

  /**
   * The live block: one line per model, fitted to the terminal's width. A line never cuts
   * a metric or a number: when it is too long the bar's cells go first (down to 10, then
   * the bar), then whole fields in order of what matters least (byte counts, rows, elapsed
   * time, ETA, counts, speed); the loss stays to the end.
   */
  private block(): string[] {
    const columns = this.stderr.columns;
    const width = (columns !== undefined && columns > 0 ? columns : 80) - 1; // one short: no wrap at the edge
    const now = this.clock();
    const several = this.models.size > 1;
    const nameWidth = Math.max(...[...this.models.keys()].map((n) => n.length));
    return [...this.models.values()].map((t) => {
      const head = several ? `${t.info.name.padEnd(nameWidth)}  ` : '';
      const rate = t.rate.sample(now, t.info.trainer.counters.samples);
      if (t.failure !== undefined) return this.render([[head], [`stopped: ${oneLine(t.failure)}`, STYLE.failed]], width);
      const loss: Field = { text: `${t.info.trainer.loss} ${formatNumber(t.metrics?.count ? t.metrics.loss : NaN)}`, keep: 9 };
      const accuracy: Field | null = t.metrics?.accuracy === undefined || t.metrics.count === 0 ? null : { text: `acc ${(t.metrics.accuracy * 100).toFixed(1)}%`, keep: 8 };
      const speed: Field = { text: `${formatCount(rate)} samples/s`, keep: 6 };
      const p = this.progress(t);
      if (p === undefined) {
        const meter = this.source.meter;
        const read: Field = { text: this.source.rows === undefined ? `samples ${t.info.trainer.counters.samples}` : `rows ${this.rows(t)}`, keep: 7 };
        const bytes: Field | null = meter === undefined ? null : { text: `(${formatBytes(meter.bytesRead)})`, keep: 1, gap: ' ' };
        const fields = fit([read, bytes, speed, loss, accuracy, { text: `elapsed ${formatDuration(this.elapsed())}`, keep: 2 }], width - head.length, false);
        return this.render([[`${head}${joinFields(fields, false)}`]], width);
      }
      const percent = `${String(Math.floor(p.fraction * 100)).padStart(3)}%`;
      const rest: (Field | null)[] = [
        { text: p.amount, keep: p.amount.endsWith('samples') || p.amount.endsWith('steps') ? 5 : 1 },
        this.source.meter !== undefined ? { text: `rows ${this.rows(t)}`, keep: 3 } : null,
        speed,
        { text: `ETA ${formatDuration(this.eta(p.fraction))}`, keep: 4 },
        loss,
        accuracy,
      ];
      const room = width - head.length - percent.length;
      // the bar's width depends on the terminal's only, so that it does not jitter as the
      // numbers change, unless the fields would not fit beside it: then it gives way first
      let barWidth = Math.min(30, Math.floor(room / 4));
      const all = fit(rest, Number.POSITIVE_INFINITY);
      const wanted = fieldsLength(all);
      if (barWidth >= 10 && barWidth + 3 + wanted > room) barWidth = Math.max(10, room - 3 - wanted);
      if (barWidth < 10 || barWidth + 3 + wanted > room) {
        return this.render([[`${head}${percent}${joinFields(fit(rest, room))}`]], width);
      }
      const filled = Math.round(p.fraction * barWidth);
      return this.render([[`${head}${percent} [`], ['█'.repeat(filled), STYLE.bar], ['░'.repeat(barWidth - filled), STYLE.rest], [']'], [joinFields(all)]], width);
    });
  }

  /** Segments cut to `width` characters (the last one ends in `…` when cut), styled when colour is on. */
  private render(segments: readonly Segment[], width: number): string {
    let out = '';
    let left = width;
    for (const [text, style] of segments) {
      if (left <= 0) break;
      const piece = text.length > left ? `${text.slice(0, Math.max(0, left - 1))}…` : text;
      left -= piece.length;
      out += this.color && style !== undefined && piece !== '' ? `${style}${piece}${RESET}` : piece;
    }
    return out;
  }
}

/**
 * Samples per second over about the last second (or since the previous sample, when they
 * come further apart: the status-line interval), from counts read on a clock: it falls
 * to 0 when nothing arrives, unlike the last step's own figure.
 */
class RateMeter {
  private readonly points: { t: number; n: number }[] = [];
  constructor(private readonly windowMs = 1000) {}

  sample(t: number, n: number): number {
    this.points.push({ t, n });
    while (this.points.length > 2 && t - this.points[1].t >= this.windowMs) this.points.shift();
    const first = this.points[0];
    const dt = t - first.t;
    return dt > 0 && !Number.isNaN(dt) ? ((n - first.n) * 1000) / dt : NaN;
  }
}

/** A field of a status line; the ones with the lowest `keep` are dropped first when the line is too long. */
interface Field {
  readonly text: string;
  readonly keep: number;
  /** What separates it from the field before (default two spaces). */
  readonly gap?: string;
}

/**
 * The fields (in their order) that fit in `room` columns, dropping whole fields, least kept
 * first; `leading`: the first one is set off from what is before it by its gap.
 */
function fit(fields: readonly (Field | null)[], room: number, leading = true): Field[] {
  const kept = fields.filter((f): f is Field => f !== null);
  while (kept.length > 1 && fieldsLength(kept, leading) > room) {
    const least = kept.reduce((a, b) => (b.keep < a.keep ? b : a));
    kept.splice(kept.indexOf(least), 1);
  }
  return kept;
}

/** Columns the fields take, each with its gap (but the first's unless `leading`). */
function fieldsLength(fields: readonly Field[], leading = true): number {
  return joinFields(fields, leading).length;
}

function joinFields(fields: readonly Field[], leading = true): string {
  return fields.map((f, i) => `${i === 0 && !leading ? '' : f.gap ?? '  '}${f.text}`).join('');
}

function describe(info: ModelInfo): Record<string, unknown> {
  const { model, optimizer, loss, kernels } = info.trainer;
  return {
    model: info.name,
    topology: formatTopology(model.inputSize, model.layers),
    parameters: parameterCount(model),
    loss,
    optimizer: optimizer.settings.type,
    learningRate: optimizer.learningRate,
    ...(info.batch !== undefined && { batch: info.batch }),
    backend: kernels.name,
  };
}

/**
 * The rolling metrics as event fields: `loss`, `mae` (null before the first scored
 * sample), `accuracy` for classifiers, `window`; `units` when they are in a normalised
 * target's own units.
 */
function metricFields(metrics: RollingMetrics | undefined, units?: string): Record<string, unknown> {
  const scored = metrics !== undefined && metrics.count > 0;
  return {
    loss: scored ? metrics.loss : null,
    mae: scored ? metrics.mae : null,
    ...(metrics?.accuracy !== undefined && { accuracy: scored ? metrics.accuracy : null }),
    window: metrics?.count ?? 0,
    ...(units !== undefined && { units }),
  };
}

/** The whole-stream metrics as the done event's `total`: `samples` scored, `loss`, `mae`, `accuracy` (null when none). */
function totalFields(total: CumulativeMetrics): Record<string, unknown> {
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  return { samples: total.count, loss: finite(total.loss), mae: finite(total.mae), ...(total.accuracy !== undefined && { accuracy: finite(total.accuracy) }) };
}

/**
 * The code of an error event: the engine's code (of the error or of what it wraps),
 * `SG_ERR_CONFIG` for a bad option or input file, null for anything unexpected.
 */
/** Errors some reporter of this process wrote as an `error` event. */
const WRITTEN_ERRORS = new WeakSet<object>();

/**
 * The `--log-json` `error` event line (with its newline) for an error that no reporter
 * wrote as an event, e.g. a bad option found before the job started; null when one did.
 */
export function errorEventLine(error: unknown, now: number = Date.now()): string | null {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (WRITTEN_ERRORS.has(e)) return null;
  }
  const exitCode = exitCodeOf(error);
  return `${JSON.stringify({ event: 'error', time: new Date(now).toISOString(), code: errorCode(error), message: oneLine(error), ...(exitCode !== undefined && { exitCode }) })}\n`;
}

/**
 * The code of the error at the root: the engine's (`SG_ERR_CHECKPOINT` of a refused
 * resume) before the runtime's `ConfigError`/`OutputError` that names the option around
 * it; `SG_ERR_CONFIG` for a usage error; null for an internal error.
 */
function errorCode(error: unknown): string | null {
  let wrapper: string | null = null;
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ConfigError || e instanceof OutputError) wrapper ??= e.code;
    else if (e instanceof StreamgradError) return e.code;
  }
  return wrapper ?? (exitCodeOf(error) === EXIT_USAGE ? 'SG_ERR_CONFIG' : null);
}

/** Milliseconds as seconds with millisecond precision (null when unknown). */
function seconds(ms: number): number | null {
  return Number.isFinite(ms) ? Math.round(ms) / 1000 : null;
}

/** `boost-lr 0.01 → 0.03 for 500 samples`, `background challenger swapped in (loss 0.12 < 0.31)`. */
function describeReaction(d: Readonly<Record<string, unknown>>): string {
  const n = (v: unknown) => (typeof v === 'number' ? Number(v.toPrecision(3)) : String(v));
  switch (d.reaction) {
    case 'reset': return `weights reset (${String(d.init)}, seed ${String(d.seed)}) and the optimizer`;
    case 'reset-optimizer': return 'optimizer state reset';
    case 'boost-lr': return d.ended === true ? `learning rate back to ${n(d.to)}` : `learning rate ${n(d.from)} → ${n(d.to)} for ${String(d.samples)} samples`;
    case 'background':
      if (d.action === 'start') return `background challenger started (${String(d.challenger)})`;
      if (d.action === 'swap') return `background challenger swapped in (loss ${n(d.challengerLoss)} < ${n(d.modelLoss)})`;
      return `background challenger dropped${d.reason !== undefined ? ` (${String(d.reason)})` : ` (loss ${n(d.challengerLoss)} ≥ ${n(d.modelLoss)})`}`;
    case 'refit-head': return d.ended === true ? 'output layer back to the optimizer alone' : `output layer refit by least squares for ${String(d.samples)} samples (forgetting ${n(d.forgetting)})`;
    default: return String(d.reaction);
  }
}
