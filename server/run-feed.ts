import type { Subscription } from 'rxjs';
import type { RunEvent } from '../pipeline/run.ts';
import { RunMirror, type ServedRun } from './run-mirror.ts';
import type { StepResult } from '../pipeline/train.ts';
import { type HistoryOptions, SnapshotHistory } from './history.ts';
import { encodeMessage, eventMessage, metricsMessage } from './messages.ts';
import type { EventMessage } from './protocol.ts';
import { PredictionRing, targetScaleOf } from './predictions.ts';
import { SCALAR_COLUMNS, ScalarHistory, scalarRow } from './scalar-history.ts';
import { encodeFiniteFrame, type FrameDtype, type FrameKind, type FrameShape } from './snapshot-frame.ts';

/** An encoded frame and the parameter version it shows; `data` null = refused (non-finite values). */
interface CachedFrame {
  readonly version: number;
  readonly data: Buffer | null;
}

/** Events a run keeps for new subscribers of its `events` channel (`recent-events`). */
export const RECENT_EVENTS = 64;

/** Events after which the history also keeps the weights as they are then. */
const SETTLING_EVENTS: ReadonlySet<RunEvent['type']> = new Set(['paused', 'stopped', 'completed', 'reset']);

/**
 * What one run has to say to its subscribers, each piece encoded at most once per
 * version and shared by every client that is due: the parameters and gradients as
 * `SGF1` binary frames (per dtype), the latest metrics and predictions as JSON, and its
 * events. It also keeps the run's snapshot history (the timeline scrubber's frames) and
 * its last trained samples with their predictions.
 *
 * `version` changes whenever the parameters may have: on every step and on a reset.
 */
export class RunFeed {
  readonly shape: FrameShape;
  version = 0;
  private readonly frames = new Map<string, CachedFrame>();
  private metrics: { readonly step: number; readonly data: Buffer } | null = null;
  private divergedNotice: { readonly version: number; readonly data: Buffer } | null = null;
  private readonly subscriptions: Subscription[] = [];
  readonly history: SnapshotHistory;
  /** The version the newest history entry shows. */
  private historyVersion = -1;
  private readonly predictionRing: PredictionRing;
  /** The run's loss and metrics by step, sent once to each new subscriber of `metrics`. */
  readonly scalars: ScalarHistory;
  private readonly scalarScratch = new Float64Array(SCALAR_COLUMNS.length);
  private predictions: { readonly step: number; readonly data: Buffer | null } | null = null;
  /** The run's last `RECENT_EVENTS` events, for each new `events` subscription (`recent-events`). */
  private readonly recentEvents: EventMessage[] = [];
  private recentEncoded: Buffer | null = null;

  constructor(readonly run: ServedRun, onEvent: (feed: RunFeed, data: Buffer) => void, history: HistoryOptions = { intervalMs: 500, capacity: 240, maxBytes: 32 << 20 }) {
    const { model } = run.trainer;
    this.shape = { inputSize: model.inputSize, units: model.layers.map((l) => l.outputs) };
    this.history = new SnapshotHistory(history);
    // a run on another thread records its predictions there (the workspace is not here)
    this.predictionRing = run instanceof RunMirror ? run.predictions : new PredictionRing(model.inputSize, model.outputSize);
    // likewise its scalars (recorded there at every step, kept here)
    this.scalars = run instanceof RunMirror ? run.scalars : new ScalarHistory();
    this.captureHistory(true);
    this.subscriptions.push(
      run.results.subscribe((result) => {
        this.version++;
        this.recordPredictions(result);
        if (!(run instanceof RunMirror)) this.scalars.record(scalarRow(result, Date.now(), this.scalarScratch));
        if (this.history.due(performance.now())) this.captureHistory(false);
      }),
      run.events.subscribe((event) => {
        if (event.type === 'reset') this.version++;
        if (SETTLING_EVENTS.has(event.type) && this.historyVersion !== this.version) this.captureHistory(true);
        const message = eventMessage(event);
        this.recentEvents.push(message);
        if (this.recentEvents.length > RECENT_EVENTS) this.recentEvents.shift();
        this.recentEncoded = null;
        onEvent(this, encodeMessage(message));
      }),
    );
  }

  get id(): string {
    return this.run.id;
  }

  /**
   * The current parameters (or last gradients) as one frame, encoded on first request
   * for this version and dtype. Null when they hold NaN or ±Infinity: such a snapshot
   * is never sent (RELIABILITY.md row 19). A float32 request gets a float64 frame when a
   * value does not fit in float32 (`encodeFiniteFrame`): no frame carries ±Infinity.
   */
  frame(kind: FrameKind, dtype: FrameDtype): Buffer | null {
    const key = `${kind}/${dtype}`;
    const cached = this.frames.get(key);
    if (cached !== undefined && cached.version === this.version) return cached.data;
    const { trainer } = this.run;
    const values = kind === 'parameters' ? trainer.model.params : trainer.workspace.grads;
    const bytes = encodeFiniteFrame(kind, dtype, this.run.id, trainer.counters.steps, this.shape, values);
    const data = bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.frames.set(key, { version: this.version, data });
    return data;
  }

  /** The `diverged` event sent instead of a snapshot of non-finite parameters. */
  divergedEvent(): Buffer {
    if (this.divergedNotice?.version !== this.version) {
      const event: RunEvent = {
        type: 'diverged', run: this.run.id, step: this.run.trainer.counters.steps, time: Date.now(),
        detail: { code: 'SG_ERR_DIVERGED', message: 'the parameters hold NaN or Infinity; snapshots are withheld' },
      };
      this.divergedNotice = { version: this.version, data: encodeMessage(eventMessage(event)) };
    }
    return this.divergedNotice.data;
  }

  /** The latest step's metrics message, or null before the first step. */
  latestMetrics(): { readonly step: number; readonly data: Buffer } | null {
    const result = this.run.latest;
    if (result === null) return null;
    if (this.metrics?.step !== result.counters.steps) this.metrics = { step: result.counters.steps, data: encodeMessage(metricsMessage(this.run, result)) };
    return this.metrics;
  }

  /** The `recent-events` message (encoded once per change), or null before the first event. */
  recentEventsMessage(): Buffer | null {
    if (this.recentEvents.length === 0) return null;
    this.recentEncoded ??= encodeMessage({ type: 'recent-events', run: this.run.id, events: this.recentEvents });
    return this.recentEncoded;
  }

  /** The run's scalar history as one `scalars` message (encoded once per change), or null while empty. */
  scalarsMessage(): Buffer | null {
    return this.scalars.encoded(this.run.id);
  }

  /** The latest predictions message (encoded once per step), or null before the first step. */
  latestPredictions(): { readonly step: number; readonly data: Buffer | null } | null {
    const steps = this.run.trainer.counters.steps;
    if (this.run.latest === null) return null;
    if (this.predictions?.step !== steps) {
      const { inputSize, outputSize } = this.predictionRing;
      // a standardised target: the rows go out in the user's units, mapped back as /predict would
      const units = targetScaleOf(this.run.preprocessing(), inputSize, outputSize);
      const message = this.predictionRing.message(this.run.id, steps, this.run.trainer.counters.samples, units);
      this.predictions = { step: steps, data: message === null ? null : encodeMessage(message) };
    }
    return this.predictions;
  }

  /** Keeps the last trained rows with the outputs the model gave them before learning (the step's forward pass). */
  private recordPredictions(result: StepResult): void {
    const run = this.run;
    if (run instanceof RunMirror) return;
    this.predictionRing.recordStep(run.trainer, result.size);
  }

  /** Adds the current parameters to the history (never non-finite ones). */
  private captureHistory(force: boolean): void {
    const { trainer } = this.run;
    const taken = this.history.capture(trainer.counters.steps, () => {
      const bytes = encodeFiniteFrame('history', 'float32', this.run.id, trainer.counters.steps, this.shape, trainer.model.params);
      return bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }, performance.now(), force);
    if (taken) this.historyVersion = this.version;
  }

  dispose(): void {
    for (const s of this.subscriptions.splice(0)) s.unsubscribe();
    this.frames.clear();
  }
}
