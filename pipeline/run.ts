import { Observable, type OperatorFunction, Subject, type Subscription, tap } from 'rxjs';
import type { DriftAdaptation } from './drift-adaptation.ts';
import { clearSkips } from '../core/divergence.ts';
import { StreamgradError } from '../core/errors.ts';
import { PrequentialEvaluator } from '../core/evaluation.ts';
import { CUT, withCuts } from './cut.ts';
import { afterTurn } from './next-turn.ts';
import type { CpuShare } from './cpu-share.ts';
import { setLearningRate } from '../core/optimizers.ts';
import type { Preprocessing } from './model-artifact.ts';
import type { IngestStats } from '../core/record.ts';
import type { Rejection } from '../core/sample.ts';
import { type ScoredStep, train, type StepResult, type TrainOptions } from './train.ts';
import type { Trainer } from '../core/trainer.ts';
import type { RunEventType } from './run-event-types.ts';

/** Where a run is in its life. */
export type RunState = 'idle' | 'running' | 'paused' | 'stopped' | 'completed' | 'failed';

/** Something that happened to a run, for dashboards and logs. */
export interface RunEvent {
  /** One of `RUN_EVENT_TYPES` (pipeline/run-event-types.ts, the one list of them). */
  readonly type: RunEventType;
  readonly run: string;
  /** The trainer's step count when it happened. */
  readonly step: number;
  /** Wall-clock time (ms since the epoch). */
  readonly time: number;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/**
 * What a live source says about its own health, passed on as a `source` run event (its
 * `detail`): an MQTT broker lost (`disconnected`), found again (`reconnected`), or found
 * again without the session that held the messages published meanwhile (`session-lost`,
 * with `loss: true`). `message` is a sentence for people; the rest is for programs.
 */
export interface SourceNotice {
  readonly kind: string;
  readonly message: string;
  /** Data may have been lost and cannot be counted. */
  readonly loss?: boolean;
  readonly [field: string]: unknown;
}

/**
 * Saves a checkpoint of a run; resolves with where it went, or `{failed: why}` when the
 * write failed but may succeed later (a full disk: reported, training goes on). Throwing
 * means it failed for good (e.g. N times in a row) and fails the run. It is called at a
 * step boundary with the run held still, so everything it reads (`run.trainer`,
 * `run.sourceOffset`, `run.metrics`) belongs to one moment.
 */
export type Checkpointer = (run: TrainingRun) => Promise<string | { readonly failed: string }>;

/** When a run checkpoints by itself (besides on request and when it stops or ends). */
export interface AutoCheckpoint {
  /** After every this many steps. */
  readonly everySteps?: number;
  /** At the first step boundary this long after the previous checkpoint (ms). */
  readonly everyMs?: number;
}

/**
 * An async source's iterator that can also hand over, synchronously, an item it already
 * holds (e.g. the next record of a batch message it has decoded): `takeReady()` returns it,
 * or undefined when the next item has to be waited for (then the run calls `next()`). A
 * `TrainingRun` over such a source pays no promise per record, only per wait.
 *
 * @example
 * const iterator = { next: () => fetchMore(), takeReady: () => (buffer.length > 0 ? { done: false, value: buffer.shift() } : undefined) };
 */
export interface ReadyIterator<T> extends AsyncIterator<T> {
  takeReady(): IteratorResult<T> | undefined;
}

/** What a `TrainingRun` trains: an id, the trainer, a pull source, and how it trains and checkpoints. */
export interface RunOptions {
  /** A name that identifies the run among others on one server. */
  readonly id: string;
  readonly trainer: Trainer;
  /**
   * The samples, pulled one at a time as fast as training takes them: a file or socket
   * reader (async iterable) or a generator. Pull means a fast source never floods memory.
   * An async source whose iterator is a `ReadyIterator` hands over what it holds already
   * without a promise per sample.
   */
  readonly source: Iterable<unknown> | AsyncIterable<unknown>;
  readonly train?: TrainOptions;
  /**
   * Drift detection and reaction for the trainer (`new DriftAdaptation(trainer, config)`,
   * restored with `restoreRun` on a resume): its warnings, drifts and reactions become the
   * run's `drift-warning`, `drift` and `drift-reaction` events, and its state goes into
   * checkpoints.
   */
  readonly drift?: DriftAdaptation;
  /**
   * Stages between the source and training, e.g. record validation with dead letters and
   * normalisation (`pipe(validateRecords(...), normalize(normalizer))`). They run inside
   * the pull loop, so a sample is through them (and, with a batch of 1, trained on)
   * before the next one is pulled.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- its input is whatever the source yields
  readonly prepare?: OperatorFunction<any, unknown>;
  /** Counters of the run's ingestion (read, rejected, dropped...), for dashboards and /metrics. */
  readonly ingest?: () => IngestStats;
  /** Longest stretch of synchronous training before yielding to the event loop (default 8 ms). */
  readonly sliceMs?: number;
  /** Saves checkpoints on request (the `checkpoint` command); without one, checkpointing is refused. */
  readonly checkpoint?: Checkpointer;
  /**
   * Checkpoint every N steps and/or T ms, and once more when the run stops or its source
   * ends (needs `checkpoint`). A failed write is announced (`checkpoint-failed`) and
   * training goes on.
   */
  readonly autoCheckpoint?: AutoCheckpoint;
  /**
   * Records of the source already accounted for before this run (a resume: the caller
   * positioned the source after them). `sourceOffset` counts on from here.
   */
  readonly sourceOffset?: number;
  /** Start paused (default false). */
  readonly paused?: boolean;
  /** The source's notices (e.g. `MqttSource.notices`), announced as `source` events from `start()` until `dispose()`. */
  readonly notices?: Observable<SourceNotice>;
  /**
   * End the run (state `completed`, as when the source ends) once the trainer has seen
   * this many samples in all (a resumed run counts those before its checkpoint too, so the
   * same limit ends it where an uninterrupted run ends). Rejected records do not count; a
   * partial last batch is trained.
   */
  readonly maxSamples?: number;
  /**
   * Called before each record is pulled; when it returns a promise, the run waits for it
   * (a consumer of the results that writes them out, e.g. per-sample predictions to a
   * slow pipe, holds training back until its stream has drained: bounded memory).
   */
  readonly backpressure?: () => Promise<void> | undefined;
  /** Every finished step record (`TrainOptions.onStep`: views valid during the call), e.g. per-sample predictions. */
  readonly onStep?: (step: ScoredStep) => void;
  /**
   * The preprocessing of the run's `prepare` stages as it stands (`preprocessingOf({features,
   * normalizer})`): what a server that answers predictions from the run's weights applies to
   * a request, so that it is read as training reads samples. Without it, requests are raw
   * positional inputs.
   */
  readonly preprocessing?: () => Preprocessing | null;
}


/**
 * Drives one model's training from a pull source and lets others steer it while it runs:
 * pause, resume, single steps, learning-rate changes, reset, checkpoints.
 *
 * Training itself is the RxJS `train` pipeline; the run only decides when to feed it the
 * next sample. It trains in slices of at most `sliceMs` and then yields to the event
 * loop, so a server in the same process keeps answering however fast the source is.
 * Step results, events and rejected samples are hot streams anyone can watch.
 */
export class TrainingRun {
  readonly id: string;
  readonly trainer: Trainer;
  /** One result per training step (hot). */
  readonly results: Observable<StepResult>;
  /** Lifecycle and control events (hot). Open until `dispose()`: a finished run can still be reset or checkpointed. */
  readonly events: Observable<RunEvent>;
  /** Samples turned away by validation (hot). */
  readonly rejections: Observable<Rejection>;
  /** The rolling prequential metrics the run's results carry; checkpoints save and restore its window. */
  readonly metrics: PrequentialEvaluator;
  /** Drift detection and reaction, when the run has them (`RunOptions.drift`). */
  readonly drift: DriftAdaptation | null;

  private readonly resultSubject = new Subject<StepResult>();
  private readonly eventSubject = new Subject<RunEvent>();
  private readonly rejectionSubject = new Subject<Rejection>();
  private readonly options: RunOptions;
  private readonly initialParams: Float64Array;
  private currentState: RunState = 'idle';
  private latestResult: StepResult | null = null;
  private failure: unknown = null;
  private stopRequested = false;
  /** Resolves the wait of a paused loop. */
  private wake: (() => void) | null = null;
  /** Steps still to run while paused (the `step` command), with their callers. */
  private readonly pendingSteps: ((result: StepResult | null) => void)[] = [];
  private finished: Promise<void> | null = null;
  private noticeSubscription: Subscription | undefined;
  /** Records pulled from the source, counting from `RunOptions.sourceOffset`. */
  private pulled: number;
  /** Records pulled when no sample was last waiting in a partial batch: a clean cut of the stream. */
  private accounted: number;
  /** Samples that passed `prepare` and are not yet trained or rejected (a partial batch). */
  private pending = 0;
  /** Checkpoint requests waiting for the next step boundary. */
  private readonly checkpointWaiters: { resolve: (path: string | null) => void; reject: (error: unknown) => void }[] = [];
  /** The last checkpoint attempt (for when the next is due), and where the last one written stood. */
  private lastCheckpoint = { step: 0, time: 0, offset: 0 };
  private lastWritten: { step: number; offset: number } | null = null;
  /** Whether this run announced its first non-finite step (`non-finite`); a reset re-arms it. */
  private nonFiniteReported = false;
  /** Who this run gives the CPU to between slices when asked (`shareCpu`). */
  private cpu: CpuShare | null = null;
  /** Checkpoints being written outside the loop (`checkpoint()` on a paused run): while any is, the loop trains nothing. */
  private holds = 0;
  /** Wakes a pull that waits on a quiet source at a clean cut (a checkpoint request, or an automatic one due). */
  private idle: { readonly promise: Promise<void>; readonly resolve: () => void; timer: ReturnType<typeof setTimeout> | undefined } | null = null;

  constructor(options: RunOptions) {
    this.options = options;
    this.id = options.id;
    this.trainer = options.trainer;
    this.initialParams = options.trainer.model.params.slice();
    const window = options.train?.window;
    this.metrics = window instanceof PrequentialEvaluator ? window : new PrequentialEvaluator(options.trainer.loss, window);
    this.drift = options.drift ?? null;
    if (this.drift !== null && this.drift.trainer !== this.trainer) throw new StreamgradError('SG_ERR_CONFIG', `run ${this.id}: the drift adaptation belongs to another trainer`, 'drift');
    this.pulled = this.accounted = options.sourceOffset ?? 0;
    const max = options.maxSamples;
    if (max !== undefined && !(Number.isSafeInteger(max) && max >= 1)) throw new StreamgradError('SG_ERR_CONFIG', `run ${this.id}: maxSamples must be an integer ≥ 1, got ${max}`, 'maxSamples');
    const auto = options.autoCheckpoint;
    if (auto !== undefined) {
      const { everySteps, everyMs } = auto;
      if (options.checkpoint === undefined) throw new StreamgradError('SG_ERR_CONFIG', `run ${this.id}: autoCheckpoint needs a checkpoint function`, 'autoCheckpoint');
      if (everySteps !== undefined && !(Number.isSafeInteger(everySteps) && everySteps >= 1)) throw new StreamgradError('SG_ERR_CONFIG', `run ${this.id}: autoCheckpoint.everySteps must be an integer ≥ 1, got ${everySteps}`, 'autoCheckpoint.everySteps');
      if (everyMs !== undefined && !(Number.isFinite(everyMs) && everyMs > 0)) throw new StreamgradError('SG_ERR_CONFIG', `run ${this.id}: autoCheckpoint.everyMs must be a number > 0, got ${everyMs}`, 'autoCheckpoint.everyMs');
    }

    this.results = this.resultSubject.asObservable();
    this.events = this.eventSubject.asObservable();
    this.rejections = this.rejectionSubject.asObservable();
    if (options.paused === true) this.currentState = 'paused';
  }

  get state(): RunState {
    return this.currentState;
  }

  /** The last step's result, or null before the first step. */
  get latest(): StepResult | null {
    return this.latestResult;
  }

  /** The preprocessing its stages apply now (`RunOptions.preprocessing`), or null: raw positional inputs. Call it at a step boundary. */
  preprocessing(): Preprocessing | null {
    return this.options.preprocessing?.() ?? null;
  }

  /** The ingestion counters, when the run has them (`RunOptions.ingest`). */
  get ingest(): IngestStats | null {
    return this.options.ingest?.() ?? null;
  }

  /**
   * Records of the source fully accounted for (trained, or rejected): where a resumed run
   * starts reading. Samples waiting in a partial batch are not counted; they are read
   * again after a resume.
   */
  get sourceOffset(): number {
    return this.accounted;
  }

  /** Why the run failed, when it did. */
  get error(): unknown {
    return this.failure;
  }

  /**
   * Starts pulling samples and training. Resolves when the source ends (state
   * `completed`) or the run is stopped; rejects when training fails (a diverged model,
   * a source error). Calling it again returns the same promise.
   */
  start(): Promise<void> {
    this.finished ??= this.drive();
    return this.finished;
  }

  /**
   * Stops at the next step boundary (state `stopped`): it reads at most the rest of the
   * batch in progress, so that no sample is left half-trained and the last checkpoint
   * is a clean cut. A source that ends first completes the run instead.
   */
  stop(): void {
    this.stopRequested = true;
    this.wakeUp();
    this.wakeIdle();
  }

  /** Pauses at the next step boundary (like `stop`). */
  pause(): void {
    if (this.currentState !== 'running' && this.currentState !== 'idle') return;
    this.currentState = 'paused';
    this.emit('paused');
  }

  resume(): void {
    if (this.currentState !== 'paused') return;
    this.currentState = this.finished === null ? 'idle' : 'running';
    this.emit('resumed');
    this.wakeUp();
  }

  /**
   * Trains exactly one more step while paused. Resolves with its result, or null when
   * the source ended first. Refused unless the run is paused.
   */
  step(): Promise<StepResult | null> {
    if (this.currentState !== 'paused') {
      return Promise.reject(new StreamgradError('SG_ERR_STATE', `run ${this.id}: step is only possible while paused (the run is ${this.currentState})`, 'state'));
    }
    const done = new Promise<StepResult | null>((resolve) => this.pendingSteps.push(resolve));
    this.wakeUp();
    return done;
  }

  /** Changes the learning rate from the next update on (throws SG_ERR_CONFIG for a bad value). */
  setLearningRate(lr: number): void {
    const before = this.trainer.optimizer.learningRate;
    setLearningRate(this.trainer.optimizer, lr);
    this.emit('learning-rate', { from: before, to: lr });
  }

  /** Puts the parameters back to where they started and clears the optimizer's state. */
  reset(): void {
    const { model, optimizer } = this.trainer;
    model.params.set(this.initialParams);
    optimizer.m.fill(0);
    optimizer.v.fill(0);
    optimizer.t = 0;
    this.trainer.counters.consecutiveSkips = 0;
    this.drift?.reset();
    clearSkips(this.trainer.divergence);
    this.nonFiniteReported = false;
    this.emit('reset');
  }

  /**
   * Saves a checkpoint through the configured checkpointer; resolves with where it went
   * (null: the write failed, see the `checkpoint-failed` event). A running run saves at
   * its next step boundary; a paused or finished one at once, held still meanwhile: a
   * `step` asked while it is written trains after it.
   */
  checkpoint(): Promise<string | null> {
    if (this.options.checkpoint === undefined) {
      return Promise.reject(new StreamgradError('SG_ERR_STATE', `run ${this.id}: no checkpoint location is configured`, 'checkpoint'));
    }
    if (this.currentState === 'running') {
      const requested = new Promise<string | null>((resolve, reject) => this.checkpointWaiters.push({ resolve, reject }));
      this.wakeIdle();
      return requested;
    }
    return this.saveHeld();
  }

  /**
   * Writes a checkpoint outside the loop (a paused run's) with the loop held: the
   * checkpointer awaits (its writes, a cluster partition's flush of dead letters), and a
   * `step` trained meanwhile would change the state after it read part of it (a partition's
   * position before the step, its weights after), breaking the `Checkpointer` promise of
   * one moment.
   */
  private async saveHeld(): Promise<string | null> {
    this.holds++;
    try {
      return await this.saveCheckpoint();
    } finally {
      if (--this.holds === 0) this.wakeUp();
    }
  }

  /**
   * Gives the CPU to a server that asks for it between this run's slices (`serveInThread`
   * passes its server thread's `CpuShare`); null stops. While nothing is asked this costs
   * one atomic load per sample; while asked, slices are 2 ms and each is followed by a
   * sleep of at most its length, within the share's budget (pipeline/cpu-share.ts).
   *
   * @example
   * run.shareCpu(new CpuShare(bufferTheServerThreadRaises));
   */
  shareCpu(share: CpuShare | null): void {
    this.cpu = share;
  }

  /** Stops the run and completes its event stream; call when nobody will steer it any more. */
  dispose(): void {
    this.stop();
    this.noticeSubscription?.unsubscribe();
    this.eventSubject.complete();
  }

  /** Writes a checkpoint now and announces it; a failed write is announced too and resolves null. */
  private async saveCheckpoint(): Promise<string | null> {
    this.lastCheckpoint = { step: this.trainer.counters.steps, time: performance.now(), offset: this.accounted };
    let where: string | { readonly failed: string };
    try {
      where = await this.options.checkpoint!(this);
    } catch (error) {
      this.emit('checkpoint-failed', { message: error instanceof Error ? error.message : String(error), ...(error instanceof StreamgradError && { code: error.code }) });
      throw error;
    }
    if (typeof where !== 'string') {
      this.emit('checkpoint-failed', { message: where.failed });
      return null;
    }
    this.lastWritten = { step: this.trainer.counters.steps, offset: this.accounted };
    this.emit('checkpoint', { path: where, step: this.lastWritten.step, sourceOffset: this.lastWritten.offset });
    return where;
  }

  /** Whether an automatic checkpoint is due (called at step boundaries). */
  private checkpointDue(): boolean {
    const auto = this.options.autoCheckpoint;
    if (auto === undefined) return false;
    const steps = this.trainer.counters.steps;
    // records accounted for without a step (rejections that end a stretch of the stream)
    // are progress too: left out, a cluster partition never committed them, and a new
    // owner rejected them again (their dead letters twice)
    if (steps === this.lastCheckpoint.step && this.accounted === this.lastCheckpoint.offset) return false;
    return (auto.everySteps !== undefined && steps - this.lastCheckpoint.step >= auto.everySteps)
      || (auto.everyMs !== undefined && performance.now() - this.lastCheckpoint.time >= auto.everyMs);
  }

  /**
   * At a step boundary: answers checkpoint requests and writes a due automatic one (with
   * `final`, one unless the last written already stands here). A write that failed but
   * may succeed later (the checkpointer resolves null: a full disk) lets training go on;
   * an automatic one that throws (e.g. writes failed N times in a row) fails the run loudly.
   */
  private async checkpointAtBoundary(final = false): Promise<void> {
    const waiters = this.checkpointWaiters.splice(0);
    const unsaved = this.lastWritten?.step !== this.trainer.counters.steps || this.lastWritten.offset !== this.accounted;
    const automatic = (final && unsaved) || this.checkpointDue();
    if ((waiters.length === 0 && !automatic) || this.options.checkpoint === undefined) return;
    try {
      const where = await this.saveCheckpoint();
      for (const w of waiters) w.resolve(where);
    } catch (error) {
      for (const w of waiters) w.reject(error);
      if (automatic) throw error;
    }
  }

  /**
   * Waits for a pull from a source that may be quiet for long (a live stream), at a clean
   * cut: meanwhile a checkpoint request is answered and an automatic `everyMs` checkpoint
   * that falls due is written, so the progress of a stream that goes quiet is saved
   * without waiting for its next record (a cluster worker commits its last steps). A stop
   * while it waits stops at once (null): the record still to come is not pulled, so it is
   * not accounted for either.
   */
  private async idlePull(item: Promise<IteratorResult<unknown>>): Promise<IteratorResult<unknown> | null> {
    let settled = false;
    const done = item.then(() => { settled = true; }, () => { settled = true; });
    for (;;) {
      await Promise.race([done, this.idleWakeup()]);
      if (settled) return item;
      if (this.stopRequested) return null;
      await this.checkpointAtBoundary();
    }
  }

  /** Resolves when a checkpoint is requested or an automatic one falls due (one timer per period, not per pull). */
  private idleWakeup(): Promise<void> {
    if (this.idle === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.idle = { promise, resolve, timer: undefined };
    }
    const everyMs = this.options.autoCheckpoint?.everyMs;
    if (everyMs !== undefined && this.idle.timer === undefined && (this.trainer.counters.steps !== this.lastCheckpoint.step || this.accounted !== this.lastCheckpoint.offset)) {
      const due = Math.max(0, everyMs - (performance.now() - this.lastCheckpoint.time));
      this.idle.timer = setTimeout(() => this.wakeIdle(), due);
      this.idle.timer.unref?.();
    }
    return this.idle.promise;
  }

  private wakeIdle(): void {
    const idle = this.idle;
    this.idle = null;
    if (idle === null) return;
    clearTimeout(idle.timer);
    idle.resolve();
  }

  private emit(type: RunEvent['type'], detail?: Record<string, unknown>): void {
    const event: RunEvent = { type, run: this.id, step: this.trainer.counters.steps, time: Date.now(), ...(detail && { detail }) };
    this.eventSubject.next(event);
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async drive(): Promise<void> {
    const sliceMs = this.options.sliceMs ?? 8;
    const input = new Subject<unknown>();
    let trainingError: unknown = null;
    const prepared: Observable<unknown> = this.options.prepare === undefined ? input : input.pipe(this.options.prepare);
    // a source's `CUT` (a mark in its stream) trains the partial batch at that place
    const cuts = new Subject<void>();
    const onReject = (rejection: Rejection) => {
      this.pending--;
      this.rejectionSubject.next(rejection);
    };
    const subscription: Subscription = prepared
      .pipe(
        tap(() => this.pending++),
        train(this.trainer, { ...this.options.train, batch: withCuts(this.options.train?.batch, cuts), window: this.metrics, onReject, ...(this.drift !== null && { drift: this.drift }), ...(this.options.onStep !== undefined && { onStep: this.options.onStep }) }),
      )
      .subscribe({
        next: (result) => {
          this.pending -= result.size;
          // a batch by time can close between pulls: the cut is clean from here too
          if (this.pending === 0) this.accounted = this.pulled;
          this.latestResult = result;
          if (result.skipped !== null && !this.nonFiniteReported) {
            // the first non-finite step is news at once, not at the end of the run
            this.nonFiniteReported = true;
            const { stage, value, layer, message } = result.skipped;
            this.emit('non-finite', { step: result.step, stage, value, ...(layer !== undefined && { layer }), message, skipped: result.counters.skipped });
          }
          if (result.drift !== undefined) for (const e of result.drift) this.emit(e.type, { index: e.index, ...e.detail });
          this.resultSubject.next(result);
          this.pendingSteps.shift()?.(result);
        },
        error: (err) => {
          trainingError = err;
        },
      });

    if (this.currentState === 'idle') this.currentState = 'running';
    this.emit('started');
    // from here on, like every other event (a notice that came before is told now)
    this.noticeSubscription ??= this.options.notices?.subscribe((notice) => this.emit('source', { ...notice }));
    const source = this.options.source;
    const iterator: Iterator<unknown> | AsyncIterator<unknown> =
      Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<unknown>)[Symbol.iterator]();
    const ready = (iterator as Partial<ReadyIterator<unknown>>).takeReady;
    const takeReady = typeof ready === 'function' ? () => ready.call(iterator) : undefined;
    this.lastCheckpoint = { step: this.trainer.counters.steps, time: performance.now(), offset: this.accounted };
    let sliceStart = performance.now();
    let ended = false;
    let abandoned = false;
    try {
      for (;;) {
        // Control takes effect only at a step boundary, where nothing pulled is waiting in a
        // partial batch: a pause, a stop or a checkpoint is then a clean cut of the stream.
        if (this.pending === 0) {
          if (this.checkpointWaiters.length > 0 || this.checkpointDue()) {
            await this.checkpointAtBoundary();
            sliceStart = performance.now();
          }
          // paused: wait until resumed, stopped or asked for a step
          while (this.currentState === 'paused' && this.pendingSteps.length === 0 && !this.stopRequested) {
            await new Promise<void>((resolve) => (this.wake = resolve));
            sliceStart = performance.now();
          }
          if (this.stopRequested) break;
        }
        const max = this.options.maxSamples;
        if (max !== undefined && this.trainer.counters.samples + this.pending >= max) {
          // the limit is the end of this run's stream: the partial batch is trained below
          ended = true;
          break;
        }
        const waiting = this.options.backpressure?.();
        if (waiting !== undefined) {
          await waiting;
          sliceStart = performance.now();
        }
        // a source holding records it has read already (a batch message) hands the next one
        // over without a promise: no microtask hop and no idle race per record
        const item = takeReady?.() ?? iterator.next();
        // a quiet live source at a clean cut: checkpoints are still answered while it waits
        const next = item instanceof Promise ? (this.pending === 0 && this.options.checkpoint !== undefined ? await this.idlePull(item) : await item) : item;
        if (next === null) {
          abandoned = true; // a pull is still waiting on the source: its close cannot wait for it
          break;
        }
        if (next.done === true) {
          ended = true;
          break;
        }
        if (next.value === CUT) {
          // not a record: the partial batch is trained here, and the cut is clean
          cuts.next();
          if (trainingError !== null) throw trainingError;
          if (this.pending === 0) this.accounted = this.pulled;
          continue;
        }
        // a paused run's checkpoint being written (`saveHeld`): nothing trains until it is
        while (this.holds > 0) await new Promise<void>((resolve) => (this.wake = resolve));
        this.pulled++;
        input.next(next.value);
        if (trainingError !== null) throw trainingError;
        if (this.pending === 0) this.accounted = this.pulled;
        const elapsed = performance.now() - sliceStart;
        // a server asking for the CPU ends the slice early, and gets part of it (pipeline/cpu-share.ts)
        if (elapsed >= sliceMs || (this.cpu !== null && elapsed >= DEMANDED_SLICE_MS && this.cpu.demanded)) {
          this.cpu?.yieldAfter(elapsed);
          await afterTurn();
          sliceStart = performance.now();
        }
      }
      if (ended) {
        // the source is done (also when it was closed to stop a live run): a partial last
        // batch is trained, so every record read is accounted for
        input.complete();
        if (trainingError !== null) throw trainingError;
        this.accounted = this.pulled;
      }
      this.currentState = this.stopRequested ? 'stopped' : 'completed';
      // the last word: a checkpoint of where the run ended, so a resume continues from here
      if (this.options.autoCheckpoint !== undefined || this.checkpointWaiters.length > 0) await this.checkpointAtBoundary(this.options.autoCheckpoint !== undefined);
      this.emit(this.currentState, { steps: this.trainer.counters.steps, samples: this.trainer.counters.samples });
    } catch (err) {
      const diverged = err instanceof StreamgradError && err.code === 'SG_ERR_DIVERGED';
      // a source that fails at a clean cut: keep that state (a diverged model is never
      // checkpointed: the last good checkpoint stays the newest)
      const checkpointFailed = err instanceof StreamgradError && err.code === 'SG_ERR_CHECKPOINT';
      if (!diverged && !checkpointFailed && this.pending === 0 && this.options.autoCheckpoint !== undefined) {
        await this.checkpointAtBoundary(true).catch(() => undefined);
      }
      this.failure = err;
      this.currentState = 'failed';
      this.emit(diverged ? 'diverged' : 'failed', { code: err instanceof StreamgradError ? err.code : 'SG_ERR_SOURCE', message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      this.wakeIdle();
      subscription.unsubscribe();
      // an async generator closes only after the step in progress: one waiting for a quiet
      // source would hold the run's end until its next record, so that close is not awaited
      if (abandoned) void closeIterator(iterator);
      else await closeIterator(iterator);
      for (const resolve of this.pendingSteps.splice(0)) resolve(null);
      for (const w of this.checkpointWaiters.splice(0)) w.reject(new StreamgradError('SG_ERR_STATE', `run ${this.id}: ${this.currentState} before the checkpoint`, 'checkpoint'));
      this.resultSubject.complete();
      this.rejectionSubject.complete();
    }
  }
}

/** The slice (ms) while a server asks for the CPU: short, so that it gets it soon. */
const DEMANDED_SLICE_MS = 2;

async function closeIterator(iterator: Iterator<unknown> | AsyncIterator<unknown>): Promise<void> {
  try {
    const closing = iterator.return?.();
    if (closing instanceof Promise) await closing;
  } catch {
    // the source failed while closing; the run's own outcome is what matters
  }
}
