import { StreamgradError } from '../core/errors.ts';
import { isCorrect } from '../core/evaluation.ts';
import { INIT_SCHEMES, type InitScheme, initialize } from '../core/init.ts';
import { cloneModel } from '../core/model.ts';
import { type OptimizerConfig, setLearningRate } from '../core/optimizers.ts';
import { RollingMean } from '../core/rolling-mean.ts';
import { backwardStep, forwardStep, lossStep, type UpdatedStep, updateStep } from '../core/step.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import type { DetectorState, DriftDetector, DriftLevel } from '../core/drift/detector.ts';
import { BINARY_DETECTORS, createDetector, type DetectorConfig } from '../core/drift/detectors.ts';
import { LargeErrorSignal, type LargeErrorOptions, type LargeErrorState } from '../core/drift/large-error.ts';
import type { Loss } from '../core/losses.ts';
import type { Model } from '../core/model.ts';
import { createRls, type RlsState, rlsUpdate } from '../core/recursive-least-squares.ts';

/** What a model does when its stream drifts. */
export const REACTIONS = ['none', 'reset', 'reset-optimizer', 'boost-lr', 'background', 'refit-head'] as const;
/** The name of a drift reaction: one of `REACTIONS`. */
export type ReactionKind = (typeof REACTIONS)[number];

/** A drift reaction and its settings (every one optional). */
export type ReactionConfig =
  | { readonly kind: 'none' }
  /** New weights (keeping the preprocessing outside the model) and a fresh optimizer. */
  | { readonly kind: 'reset'; readonly init?: InitScheme; readonly seed?: number }
  /** Keeps the weights, forgets the optimizer's moments and step count. */
  | { readonly kind: 'reset-optimizer' }
  /**
   * Learning rate ×factor for `samples` samples, then back to where it was, linearly over as
   * many. With `minRise`, only for a large change: when the mean signal over the last
   * `riseWindow` samples (default 10) is at least `minRise` times its long-run mean (over
   * about the last 1,000 samples); a boost helps a model that is badly wrong and costs one
   * that is nearly right (`npm run bench:drift`). Default 0: every upward drift.
   */
  | { readonly kind: 'boost-lr'; readonly factor?: number; readonly samples?: number; readonly minRise?: number; readonly riseWindow?: number }
  /**
   * A challenger trained beside the model on the same samples: started at a warning (or
   * at a drift, for detectors that do not warn), it replaces the model at the drift
   * (or `horizon` samples after a drift) if its prequential loss since it started is
   * lower on the same samples; otherwise it is dropped. With `factor` the challenger learns
   * at the model's learning rate × factor (default 1): a copy that relearns faster, swapped
   * in only if that paid off; the model keeps its own learning rate either way. With
   * `margin` it must have done better by that fraction (its loss below the model's ×
   * (1 − margin), default 0): a challenger only a little better on a few hundred samples is
   * often better by chance, and one that learned faster is also noisier for a while.
   * With `recent` both are compared over their last `recent` samples only (default: the
   * last `horizon`), i.e. on where they stand now rather than on how fast they got there.
   */
  | { readonly kind: 'background'; readonly challenger?: 'fresh' | 'copy'; readonly horizon?: number; readonly factor?: number; readonly margin?: number; readonly recent?: number; readonly init?: InitScheme; readonly seed?: number }
  /**
   * Re-solves the linear output layer by recursive least squares (`core/recursive-least-squares.ts`)
   * for `samples` samples after a drift (default 1,000): the hidden layers keep their features
   * and go on learning by the optimizer, while after each sample the output layer is
   * replaced by the weighted least-squares fit of the newest samples' targets on those
   * features (forgetting factor `forgetting`, default 0.998: a memory of about 500 samples),
   * starting from the weights it had, `P = prior · I` (default 10: how far the first samples
   * may move them). A second-order fit converges in tens of samples where SGD needs
   * thousands. Only for a linear output layer with the squared loss (SG_ERR_CONFIG otherwise).
   */
  | { readonly kind: 'refit-head'; readonly samples?: number; readonly forgetting?: number; readonly prior?: number };

/** How a model watches its stream for drift, and what it does then. */
export interface DriftConfig {
  /** Default (`DRIFT_DEFAULTS`): Page-Hinkley on the loss for both, at threshold 100 for a classifier, at 0.5 (one-sided, no forgetting) for a regression. */
  readonly detector?: DetectorConfig;
  /**
   * What the detector watches, per sample: `loss` (the prequential loss), `error` (0/1:
   * the prediction was wrong; classifiers only) or `large-error` (0/1: the loss was above
   * a quantile of a reference window, frozen between drifts: any model, scale-free; see
   * `LargeErrorSignal`). Default: `error` for the detectors of 0/1 errors (DDM, HDDM_A)
   * on a classifier, `large-error` for them on a regressor, `loss` for the others.
   */
  readonly signal?: DriftSignal;
  /** The `large-error` signal's settings (default quantile 0.9 of a 500-sample reference). */
  readonly largeError?: LargeErrorOptions;
  /** Default (`DRIFT_DEFAULTS`): a `boost-lr` ×4 for 400 samples at large rises (`minRise` 6) for a classifier, `refit-head` for a regression (`none`, only events, when its output layer is not linear). */
  readonly reaction?: ReactionKind | ReactionConfig;
  /**
   * Which drifts the reaction answers: `up` (default), only those where the signal went up
   * (the loss or error rate got worse: a two-sided detector also sees a model that learned,
   * and that needs no answer), or `both`. Every drift is an event either way.
   */
  readonly react?: 'up' | 'both';
}

/** What a drift detector watches: see `DriftConfig.signal`. */
export type DriftSignal = 'loss' | 'error' | 'large-error';
/** The signals a detector can watch. */
export const DRIFT_SIGNALS: readonly DriftSignal[] = ['loss', 'error', 'large-error'];

/**
 * The defaults per task: what a model watches and how it reacts when its drift config
 * leaves them out (chosen from `npm run bench:drift`, see docs/drift.md). A classifier:
 * Page-Hinkley on its loss at threshold 100 (River's 50 raises about 10 false alarms per
 * 100k samples on a noisy drift-free stream, 100 raises 1), which sees a reversal within
 * about 8 samples, and a boost of the learning rate only when the loss jumps (`minRise`): a
 * boost right after a reversal cuts the loss after it by 31%, while on small changes (SEA, a
 * rotating hyperplane) every boost cost over the whole stream. A regression: Page-Hinkley
 * on its loss, one-sided, without forgetting (`alpha` 1: with River's forgetting a network
 * still learning raises an alarm as soon as `minInstances` is reached), tolerance 0.01 and
 * threshold 0.5 in the loss's units — tuned on standardised targets (`--normalize`): it finds
 * every K_m jump of the Michaelis–Menten sensor within 4 samples and raised no false alarm on
 * the drift-free sensor or the K_m ramps; and `refit-head`, which cuts the loss after a
 * K_m jump by half where no step-size reaction cut 1%. A regression whose output layer is
 * not linear gets no reaction by default (events only): refit-head needs a linear one.
 */
export const DRIFT_DEFAULTS = {
  classification: { detector: { kind: 'page-hinkley', threshold: 100 }, signal: 'loss', reaction: { kind: 'boost-lr', factor: 4, samples: 400, minRise: 6 } },
  regression: { detector: { kind: 'page-hinkley', delta: 0.01, threshold: 0.5, alpha: 1, minInstances: 1000, mode: 'up' }, signal: 'loss', reaction: { kind: 'refit-head' } },
} as const satisfies Record<'classification' | 'regression', { detector: DetectorConfig; signal: DriftSignal; reaction: ReactionConfig }>;

/** A warning, a drift, or what the model did about it. */
export interface AdaptationEvent {
  readonly type: 'drift-warning' | 'drift' | 'drift-reaction';
  /** Samples the adaptation has seen before the one this happened at (0-based sample index). */
  readonly index: number;
  /** The detector's evidence (warning, drift), or what the reaction did (reaction). */
  readonly detail: Readonly<Record<string, unknown>>;
}

interface Challenger {
  readonly trainer: Trainer;
  /** Its prequential loss since it started, and the model's over the same samples. */
  readonly challengerLoss: RollingMean;
  readonly championLoss: RollingMean;
  /** Samples since it started. */
  age: number;
  /** With a detector that does not warn: the drift was at its start; decide after `horizon`. */
  readonly decideAt: number | null;
}

/** The learned state of an adaptation, for checkpoints. */
export interface AdaptationState {
  readonly detector: DetectorState;
  /** The `large-error` signal's state (absent with the other signals, and in older checkpoints). */
  readonly largeError?: LargeErrorState;
  readonly seen: number;
  readonly level: DriftLevel;
  readonly drifts: number;
  readonly boost: { readonly base: number; readonly left: number } | null;
  /** With boost-lr's `minRise`: the recent signal and its long-run mean (absent otherwise, and in older checkpoints). */
  readonly rise?: { readonly recent: number[]; readonly mean: number; readonly n: number };
  readonly challenger: {
    readonly params: number[];
    readonly m: number[];
    readonly v: number[];
    readonly t: number;
    readonly learningRate: number;
    readonly age: number;
    readonly decideAt: number | null;
    readonly challengerLoss: number[];
    readonly championLoss: number[];
  } | null;
  /** refit-head's solver while it runs (absent otherwise, and in older checkpoints). */
  readonly refit?: { readonly p: number[]; readonly weights: number[]; readonly left: number } | null;
}

const NO_EVENTS: readonly AdaptationEvent[] = [];
/** Samples the long-run mean of `minRise` covers, about. */
const RISE_BASELINE = 1000;

/**
 * Drift detection with a reaction, for one model in training: after each step it feeds
 * the per-sample signal (prequential loss, or 0/1 error) of every sample in the batch to
 * a detector and, on a warning or a drift, reacts on the trainer in place, so everything
 * that holds the trainer (a server, a checkpointer) sees the result. Its whole state,
 * challenger included, is in `state()` for checkpoints.
 *
 * Call `observe` with each step after the update (the `train` operator does when given
 * `drift`); it returns the events of that step.
 *
 * @example
 * const adaptation = new DriftAdaptation(trainer, { detector: { kind: 'adwin' }, reaction: 'reset' });
 * samples$.pipe(train(trainer, { drift: adaptation })).subscribe((r) => r.drift.forEach((e) => console.log(e.type, e.index)));
 */
export class DriftAdaptation {
  readonly detector: DriftDetector;
  readonly reaction: ReturnType<typeof driftSettings>['reaction'] | { readonly kind: 'none' };
  readonly signal: DriftSignal;
  /** The `large-error` signal's threshold, with that signal. */
  readonly largeError: LargeErrorSignal | null;
  readonly react: 'up' | 'both';
  private seen = 0;
  private level: DriftLevel = 'none';
  private drifts = 0;
  private boost: { base: number; left: number } | null = null;
  /** boost-lr's `minRise` gate: the signal's recent mean, and its long-run mean (a running mean that becomes an EMA). */
  private recent: RollingMean | null;
  private longRun = { mean: 0, n: 0 };
  private challenger: Challenger | null = null;
  /** refit-head's solver and the samples it has left, while it runs. */
  private refit: { rls: RlsState; left: number; x: Float64Array } | null = null;
  private events: AdaptationEvent[] = [];

  constructor(readonly trainer: Trainer, config: DriftConfig = {}) {
    const settings = driftSettings(config, trainer.loss);
    this.detector = createDetector(settings.detector);
    this.signal = settings.signal;
    this.largeError = settings.signal === 'large-error' ? new LargeErrorSignal(config.largeError) : null;
    this.reaction = settings.reaction;
    this.react = settings.react;
    this.recent = this.reaction.kind === 'boost-lr' && this.reaction.minRise > 0 ? new RollingMean(this.reaction.riseWindow) : null;
    if (this.reaction.kind === 'refit-head' && !linearHead(trainer.model)) {
      // the default for every regression: one it cannot fit gets events only, as before
      // refit-head was the default; asked for by name, it is refused
      if (config.reaction !== undefined) throw new StreamgradError('SG_ERR_CONFIG', `drift.reaction: refit-head fits a linear output layer by least squares, but the output layer is ${trainer.model.layers[trainer.model.layers.length - 1].activation}`, 'drift.reaction');
      this.reaction = { kind: 'none' };
    }
  }

  /** Feeds the step's samples to the detector and reacts; returns what happened (usually nothing). */
  observe(step: UpdatedStep): readonly AdaptationEvent[] {
    const m = this.trainer.model.outputSize;
    // a challenger started during this step learns from the next one on: both are then
    // scored on exactly the same samples
    const running = this.challenger;
    for (let r = 0; r < step.size; r++) {
      const value = this.signal === 'loss' ? step.lossPerSample[r] : this.signal === 'large-error' ? this.largeError!.update(step.lossPerSample[r]) : isCorrect(this.trainer.loss, step.outputs, step.targets, r * m, m) ? 0 : 1;
      if (value !== null && Number.isFinite(value)) this.see(value);
      if (this.largeError?.renewed === true) {
        // a new threshold, a new rate: what the detector learned of the old one is void
        this.detector.reset();
        this.level = 'none';
      }
      this.seen++;
    }
    // the step record still holds the model's losses from before any reaction: the
    // challenger works in its own workspace
    if (running !== null && this.challenger === running) this.trainChallenger(step);
    if (this.refit !== null) this.refitHead(step);
    this.tickBoost(step.size);
    if (this.events.length === 0) return NO_EVENTS;
    const out = this.events;
    this.events = [];
    return out;
  }

  private see(value: number): void {
    if (this.recent !== null) {
      this.recent.push(value);
      this.longRun.n++;
      this.longRun.mean += (value - this.longRun.mean) / Math.min(this.longRun.n, RISE_BASELINE);
    }
    const level = this.detector.update(value);
    const previous = this.level;
    this.level = level;
    if (level === 'warning' && previous !== 'warning') {
      this.emit('drift-warning', { detector: this.detector.kind, value, ...this.detector.evidence() });
      if (this.reaction.kind === 'background' && this.challenger === null) this.startChallenger(null);
    }
    if (level === 'drift') {
      this.drifts++;
      const evidence = this.detector.evidence();
      const rise = this.rise();
      this.emit('drift', { detector: this.detector.kind, value, drifts: this.drifts, ...evidence, ...(this.largeError !== null && { threshold: this.largeError.current }), ...(rise !== null && Number.isFinite(rise) && { rise }) });
      // the stream has changed: the old "large" means nothing now
      this.largeError?.rearm();
      const large = rise === null || this.reaction.kind !== 'boost-lr' || rise >= this.reaction.minRise;
      if ((this.react === 'both' || evidence.direction > 0) && large) this.respond();
    }
  }

  /**
   * A drift known from outside rather than detected (a sensor recalibrated, a process
   * switched on a schedule, or a benchmark's oracle): emits a `drift` event (detector
   * `external`) and reacts as to a detected rise of the loss, now, before the next sample.
   * The detector starts over, as after its own drift.
   *
   * @example
   * recalibrated$.subscribe(() => adaptation.signalDrift({ reason: 'recalibration' }));
   */
  signalDrift(detail: Readonly<Record<string, unknown>> = {}): void {
    this.drifts++;
    this.emit('drift', { ...detail, detector: 'external', drifts: this.drifts, direction: 1 });
    this.detector.reset();
    this.level = 'none';
    this.largeError?.rearm();
    this.respond();
  }

  /** With `minRise`: the recent mean signal over its long-run mean (Infinity from a long-run mean of 0). */
  private rise(): number | null {
    if (this.recent === null) return null;
    const recent = this.recent.mean;
    return this.longRun.mean > 0 ? recent / this.longRun.mean : recent > 0 ? Infinity : 1;
  }

  private respond(): void {
    const r = this.reaction;
    switch (r.kind) {
      case 'none':
        return;
      case 'reset':
        initialize(this.trainer.model, r.init, r.seed + this.drifts);
        this.clearOptimizer();
        this.emit('drift-reaction', { reaction: 'reset', init: r.init, seed: r.seed + this.drifts });
        return;
      case 'reset-optimizer':
        this.clearOptimizer();
        this.emit('drift-reaction', { reaction: 'reset-optimizer' });
        return;
      case 'boost-lr': {
        const base = this.boost?.base ?? this.trainer.optimizer.learningRate;
        this.boost = { base, left: 2 * r.samples };
        setLearningRate(this.trainer.optimizer, base * r.factor);
        this.emit('drift-reaction', { reaction: 'boost-lr', from: base, to: base * r.factor, samples: r.samples });
        return;
      }
      case 'background':
        if (this.challenger === null) this.startChallenger(this.seen + 1 + r.horizon);
        else if (this.challenger.decideAt === null) this.decide();
        return;
      case 'refit-head':
        // a new drift, a new concept: the fit starts over from the weights as they are
        this.refit = this.startRefit(r.samples);
        this.emit('drift-reaction', { reaction: 'refit-head', samples: r.samples, forgetting: r.forgetting, prior: r.prior });
        return;
    }
  }

  private startRefit(left: number): { rls: RlsState; left: number; x: Float64Array } {
    if (this.reaction.kind !== 'refit-head') throw new Error('refit-head: not the reaction');
    const head = this.trainer.model.layers[this.trainer.model.layers.length - 1];
    const d = head.inputs + 1;
    const w = new Float64Array(head.outputs * d);
    for (let o = 0; o < head.outputs; o++) {
      w.set(head.weights.subarray(o * head.inputs, (o + 1) * head.inputs), o * d);
      w[o * d + head.inputs] = head.bias[o];
    }
    return { rls: createRls(d, head.outputs, w, this.reaction.prior), left, x: new Float64Array(d) };
  }

  /**
   * refit-head: each sample of the step updates the least-squares fit of the output layer
   * on the features the hidden layers gave it (before this step's update, as its loss was
   * scored), and the output layer becomes that fit (the optimizer's step on it is replaced).
   */
  private refitHead(step: UpdatedStep): void {
    if (this.reaction.kind !== 'refit-head') return;
    const f = this.refit!;
    const { model } = this.trainer;
    const last = model.layers.length - 1;
    const head = model.layers[last];
    const k = head.inputs, m = head.outputs;
    const features = last === 0 ? step.inputs : step.activations[last - 1];
    const rows = Math.min(step.size, f.left);
    for (let r = 0; r < rows; r++) {
      // copied element by element: a subarray view per sample would be an allocation in the step's loop
      for (let j = 0, at = r * k; j < k; j++) f.x[j] = features[at + j];
      f.x[k] = 1;
      rlsUpdate(f.rls, f.x, step.targets, this.reaction.forgetting, 0, r * m);
    }
    const w = f.rls.weights;
    for (let o = 0; o < m; o++) {
      head.weights.set(w.subarray(o * (k + 1), o * (k + 1) + k), o * k);
      head.bias[o] = w[o * (k + 1) + k];
    }
    f.left -= rows;
    if (f.left <= 0) {
      this.refit = null;
      this.emit('drift-reaction', { reaction: 'refit-head', ended: true });
    }
  }

  private clearOptimizer(): void {
    const { optimizer } = this.trainer;
    optimizer.m.fill(0);
    optimizer.v.fill(0);
    optimizer.t = 0;
  }

  /** Boosted for `samples`, then back to the base linearly over as many. */
  private tickBoost(samples: number): void {
    if (this.boost === null || this.reaction.kind !== 'boost-lr') return;
    const { factor, samples: hold } = this.reaction;
    this.boost.left = Math.max(0, this.boost.left - samples);
    const { base, left } = this.boost;
    if (left === 0) {
      setLearningRate(this.trainer.optimizer, base);
      this.boost = null;
      this.emit('drift-reaction', { reaction: 'boost-lr', to: base, ended: true });
      return;
    }
    const fraction = Math.min(1, left / hold); // 1 while held, then down to 0
    setLearningRate(this.trainer.optimizer, base * (1 + (factor - 1) * fraction));
  }

  private startChallenger(decideAt: number | null): void {
    if (this.reaction.kind !== 'background') return;
    const { challenger: how, init, seed, factor } = this.reaction;
    const champion = this.trainer;
    const model = cloneModel(champion.model, champion.kernels);
    if (how === 'fresh') initialize(model, init, seed + this.drifts);
    const trainer = createTrainer({ model, loss: champion.loss, optimizer: optimizerConfig(champion, factor), clipNorm: champion.clipNorm ?? undefined, kernels: champion.kernels, maxConsecutiveSkips: champion.maxConsecutiveSkips });
    if (how === 'copy') copyOptimizer(champion, trainer);
    const window = this.reaction.recent ?? this.reaction.horizon;
    this.challenger = { trainer, challengerLoss: new RollingMean(window), championLoss: new RollingMean(window), age: 0, decideAt };
    this.emit('drift-reaction', { reaction: 'background', action: 'start', challenger: how, ...(factor !== 1 && { learningRate: trainer.optimizer.learningRate }) });
  }

  private trainChallenger(step: UpdatedStep): void {
    const c = this.challenger!;
    for (let r = 0; r < step.size; r++) c.championLoss.push(step.lossPerSample[r]);
    try {
      const own = updateStep(c.trainer, backwardStep(c.trainer, lossStep(c.trainer, forwardStep(c.trainer, step.samples))));
      for (let r = 0; r < own.size; r++) c.challengerLoss.push(own.lossPerSample[r]);
    } catch (error) {
      // a challenger that diverges is dropped; the model goes on
      this.challenger = null;
      this.emit('drift-reaction', { reaction: 'background', action: 'drop', reason: error instanceof Error ? error.message : String(error) });
      return;
    }
    c.age += step.size;
    if (c.decideAt !== null && this.seen >= c.decideAt) this.decide();
  }

  /** Swaps the challenger in if it did better on the same samples, else drops it. */
  private decide(): void {
    const c = this.challenger!;
    this.challenger = null;
    const challenger = c.challengerLoss.mean, champion = c.championLoss.mean;
    const margin = this.reaction.kind === 'background' ? this.reaction.margin : 0;
    const better = c.challengerLoss.count > 0 && challenger < champion * (1 - margin);
    if (better) {
      this.trainer.model.params.set(c.trainer.model.params);
      copyOptimizer(c.trainer, this.trainer);
    }
    this.emit('drift-reaction', { reaction: 'background', action: better ? 'swap' : 'drop', challengerLoss: challenger, modelLoss: champion, samples: c.age });
  }

  private emit(type: AdaptationEvent['type'], detail: Record<string, unknown>): void {
    this.events.push({ type, index: this.seen, detail });
  }

  /** Forgets what was seen (the detector, a boost, a challenger): for a run that is reset. */
  reset(): void {
    this.detector.reset();
    this.largeError?.rearm();
    this.level = 'none';
    if (this.boost !== null) setLearningRate(this.trainer.optimizer, this.boost.base);
    this.boost = null;
    if (this.recent !== null) this.recent = new RollingMean(this.recent.window);
    this.longRun = { mean: 0, n: 0 };
    this.challenger = null;
    this.refit = null;
    this.events = [];
  }

  /** Drifts detected so far. */
  get driftCount(): number {
    return this.drifts;
  }

  state(): AdaptationState {
    const c = this.challenger;
    return {
      detector: this.detector.state(),
      ...(this.largeError !== null && { largeError: this.largeError.state() }),
      seen: this.seen,
      level: this.level,
      drifts: this.drifts,
      boost: this.boost === null ? null : { ...this.boost },
      ...(this.recent !== null && { rise: { recent: Array.from(this.recent.state()), ...this.longRun } }),
      challenger: c === null ? null : {
        params: Array.from(c.trainer.model.params),
        m: Array.from(c.trainer.optimizer.m),
        v: Array.from(c.trainer.optimizer.v),
        t: c.trainer.optimizer.t,
        learningRate: c.trainer.optimizer.learningRate,
        age: c.age,
        decideAt: c.decideAt,
        challengerLoss: Array.from(c.challengerLoss.state()),
        championLoss: Array.from(c.championLoss.state()),
      },
      ...(this.refit !== null && { refit: { p: Array.from(this.refit.rls.p), weights: Array.from(this.refit.rls.weights), left: this.refit.left } }),
    };
  }

  restore(state: AdaptationState): void {
    this.detector.restore(state.detector);
    if (this.largeError !== null) {
      if (state.largeError === undefined) throw new StreamgradError('SG_ERR_CHECKPOINT', 'the checkpoint has no large-error signal state but the drift signal is large-error', 'drift.signal');
      this.largeError.restore(state.largeError);
    }
    this.seen = state.seen;
    this.level = state.level;
    this.drifts = state.drifts;
    this.boost = state.boost === null ? null : { ...state.boost };
    if (this.recent !== null) {
      if (state.rise === undefined) throw new StreamgradError('SG_ERR_CHECKPOINT', 'the checkpoint has no state for boost-lr\'s minRise but the drift reaction has one', 'drift.reaction.minRise');
      this.recent.restore(Float64Array.from(state.rise.recent));
      this.longRun = { mean: state.rise.mean, n: state.rise.n };
    }
    this.challenger = null;
    const c = state.challenger;
    if (c !== null) {
      if (this.reaction.kind !== 'background') throw new StreamgradError('SG_ERR_CHECKPOINT', `the checkpoint has a background challenger but the drift reaction is ${this.reaction.kind}`, 'drift.reaction');
      this.startChallenger(c.decideAt);
      this.events = [];
      const ch = this.challenger!;
      ch.trainer.model.params.set(c.params);
      ch.trainer.optimizer.m.set(c.m);
      ch.trainer.optimizer.v.set(c.v);
      ch.trainer.optimizer.t = c.t;
      ch.trainer.optimizer.learningRate = c.learningRate;
      ch.age = c.age;
      ch.challengerLoss.restore(Float64Array.from(c.challengerLoss));
      ch.championLoss.restore(Float64Array.from(c.championLoss));
    }
    this.refit = null;
    const f = state.refit;
    if (f !== undefined && f !== null) {
      if (this.reaction.kind !== 'refit-head') throw new StreamgradError('SG_ERR_CHECKPOINT', `the checkpoint has a refit-head solver but the drift reaction is ${this.reaction.kind}`, 'drift.reaction');
      const refit = this.startRefit(f.left);
      if (f.p.length !== refit.rls.p.length || f.weights.length !== refit.rls.weights.length) throw new StreamgradError('SG_ERR_CHECKPOINT', 'the checkpoint\'s refit-head solver does not fit the model\'s output layer', 'drift.reaction');
      refit.rls.p.set(f.p);
      refit.rls.weights.set(f.weights);
      this.refit = refit;
    }
  }
}

/**
 * A drift config with every default filled in, checked against the model's loss (the
 * 0/1-error detectors need a classifier): throws `SG_ERR_CONFIG` naming the field. Config
 * files and the command line check with it before anything starts.
 */
export function driftSettings(config: DriftConfig, loss: Loss) {
  const task = loss === 'mse' ? DRIFT_DEFAULTS.regression : DRIFT_DEFAULTS.classification;
  const detector: DetectorConfig = config.detector ?? task.detector;
  createDetector(detector); // checks the detector's parameters
  const binary = BINARY_DETECTORS.has(detector.kind);
  const signal: DriftSignal = config.signal ?? (binary ? (loss === 'mse' ? 'large-error' : 'error') : 'loss');
  if (!DRIFT_SIGNALS.includes(signal)) throw new StreamgradError('SG_ERR_CONFIG', `drift.signal must be one of ${DRIFT_SIGNALS.join(', ')}, got ${String(signal)}`, 'drift.signal');
  if (signal === 'error' && loss === 'mse') throw new StreamgradError('SG_ERR_CONFIG', `drift.signal: error needs a classifier (loss ${loss} has no right or wrong); use large-error or loss`, 'drift.signal');
  if (binary && signal === 'loss') throw new StreamgradError('SG_ERR_CONFIG', `drift.detector: ${detector.kind} takes 0/1 values (signal error or large-error); for a loss use adwin, page-hinkley or kswin`, 'drift.detector');
  if (signal === 'large-error') {
    try {
      new LargeErrorSignal(config.largeError); // checks its parameters
    } catch (error) {
      if (!(error instanceof StreamgradError)) throw error;
      throw new StreamgradError('SG_ERR_CONFIG', `drift.largeError.${error.message.replace(/^large-error: /, '')}`, `drift.largeError.${error.field}`);
    }
  }
  const react = config.react ?? 'up';
  if (react !== 'up' && react !== 'both') throw new StreamgradError('SG_ERR_CONFIG', `drift.react must be up or both, got ${String(react)}`, 'drift.react');
  const reaction = reactionSettings(config.reaction ?? task.reaction);
  if (reaction.kind === 'refit-head' && loss !== 'mse') throw new StreamgradError('SG_ERR_CONFIG', `drift.reaction: refit-head fits a linear output layer by least squares: it needs the squared loss (mse), got ${loss}`, 'drift.reaction');
  return { detector, signal, react, reaction };
}

/** Whether refit-head can re-solve the model's output layer as a linear least-squares fit. */
function linearHead(model: Model): boolean {
  return model.layers[model.layers.length - 1].activation === 'linear';
}

/** Fills in a reaction's defaults and checks them. */
function reactionSettings(reaction: ReactionKind | ReactionConfig) {
  const r: ReactionConfig = typeof reaction === 'string' ? ({ kind: reaction } as ReactionConfig) : reaction;
  const bad = (field: string, what: string, got: unknown) => new StreamgradError('SG_ERR_CONFIG', `drift.reaction.${field} ${what}, got ${String(got)}`, `drift.reaction.${field}`);
  const init = (v: InitScheme | undefined) => {
    if (v !== undefined && !INIT_SCHEMES.includes(v)) throw bad('init', `must be one of ${INIT_SCHEMES.join(', ')}`, v);
    return v ?? 'pytorch';
  };
  const seed = (v: number | undefined) => {
    if (v !== undefined && !Number.isSafeInteger(v)) throw bad('seed', 'must be an integer', v);
    return v ?? 0;
  };
  switch (r.kind) {
    case 'none':
    case 'reset-optimizer':
      return { kind: r.kind } as const;
    case 'reset':
      return { kind: 'reset', init: init(r.init), seed: seed(r.seed) } as const;
    case 'boost-lr': {
      const factor = r.factor ?? 3, samples = r.samples ?? 500, minRise = r.minRise ?? 0, riseWindow = r.riseWindow ?? 10;
      if (!(Number.isFinite(factor) && factor > 0 && factor <= 100)) throw bad('factor', 'must be a number in (0, 100]', factor);
      if (!(Number.isSafeInteger(samples) && samples >= 1)) throw bad('samples', 'must be an integer ≥ 1', samples);
      if (!(Number.isFinite(minRise) && minRise >= 0)) throw bad('minRise', 'must be a number ≥ 0', minRise);
      if (!(Number.isSafeInteger(riseWindow) && riseWindow >= 1)) throw bad('riseWindow', 'must be an integer ≥ 1', riseWindow);
      return { kind: 'boost-lr', factor, samples, minRise, riseWindow } as const;
    }
    case 'background': {
      const challenger = r.challenger ?? 'fresh', horizon = r.horizon ?? 500, factor = r.factor ?? 1, margin = r.margin ?? 0, recent = r.recent;
      if (challenger !== 'fresh' && challenger !== 'copy') throw bad('challenger', 'must be fresh or copy', challenger);
      if (!(Number.isSafeInteger(horizon) && horizon >= 1)) throw bad('horizon', 'must be an integer ≥ 1', horizon);
      if (!(Number.isFinite(factor) && factor > 0 && factor <= 100)) throw bad('factor', 'must be a number in (0, 100]', factor);
      if (!(Number.isFinite(margin) && margin >= 0 && margin < 1)) throw bad('margin', 'must be a number in [0, 1)', margin);
      if (recent !== undefined && !(Number.isSafeInteger(recent) && recent >= 1)) throw bad('recent', 'must be an integer ≥ 1', recent);
      return { kind: 'background', challenger, horizon, factor, margin, ...(recent !== undefined && { recent }), init: init(r.init), seed: seed(r.seed) } as const;
    }
    case 'refit-head': {
      const samples = r.samples ?? 1000, forgetting = r.forgetting ?? 0.998, prior = r.prior ?? 10;
      if (!(Number.isSafeInteger(samples) && samples >= 1)) throw bad('samples', 'must be an integer ≥ 1', samples);
      if (!(Number.isFinite(forgetting) && forgetting > 0 && forgetting <= 1)) throw bad('forgetting', 'must be a number in (0, 1]', forgetting);
      if (!(Number.isFinite(prior) && prior > 0 && prior <= 1e6)) throw bad('prior', 'must be a number in (0, 1e6]', prior);
      return { kind: 'refit-head', samples, forgetting, prior } as const;
    }
    default:
      throw bad('kind', `must be one of ${REACTIONS.join(', ')}`, (r as { kind: unknown }).kind);
  }
}

/** The config that makes an optimizer like `trainer`'s, at its current learning rate × `factor`. */
function optimizerConfig(trainer: Trainer, factor = 1): OptimizerConfig {
  const { settings: s, learningRate } = trainer.optimizer;
  return { ...s, learningRate: learningRate * factor } as OptimizerConfig;
}

function copyOptimizer(from: Trainer, to: Trainer): void {
  to.optimizer.m.set(from.optimizer.m);
  to.optimizer.v.set(from.optimizer.v);
  to.optimizer.t = from.optimizer.t;
}
