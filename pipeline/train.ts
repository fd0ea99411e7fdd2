import { defer, map, type Observable, type OperatorFunction, pipe, tap } from 'rxjs';
import { backward } from '../operators/backward.ts';
import { batch, type BatchConfig } from '../operators/batch.ts';
import { forward } from '../operators/forward.ts';
import { loss } from '../operators/loss.ts';
import { prequential } from '../operators/prequential.ts';
import { update } from '../operators/update.ts';
import { validate } from '../operators/validate.ts';
import type { AdaptationEvent, DriftAdaptation } from './drift-adaptation.ts';
import type { PrequentialEvaluator, RollingMetrics } from '../core/evaluation.ts';
import type { Rejection, Sample } from '../core/sample.ts';
import type { GradientStep, LossStep, SkipReason } from '../core/step.ts';
import { StreamgradError } from '../core/errors.ts';
import { Throughput } from './throughput.ts';
import type { Trainer, TrainerCounters } from '../core/trainer.ts';

/** Options of `train`: batching, the rolling metrics' window, where rejected samples go. */
export interface TrainOptions {
  /** Batch size, or a batch-by-time configuration (default 1: pure online learning). */
  readonly batch?: number | BatchConfig;
  /**
   * Samples the rolling (prequential) metrics cover (default 1000), or the evaluator to
   * score into, so that its owner can checkpoint and restore the window.
   */
  readonly window?: number | PrequentialEvaluator;
  /** Side channel for samples that do not fit the model; they never reach the weights. */
  readonly onReject?: (rejection: Rejection) => void;
  /** Clock for samples/s, in milliseconds (default `performance.now`). */
  readonly clock?: () => number;
  /**
   * Drift detection and reaction on the same trainer (`new DriftAdaptation(trainer, config)`):
   * it sees every step after the update, and its events come out in `StepResult.drift`.
   */
  readonly drift?: DriftAdaptation;
  /**
   * Called with every scored step record, after `backward` and before `update` (so that
   * the step that ends a diverged stream is reported too), e.g. to write each sample's
   * prediction: `outputs` are the predictions made *before* learning from the batch,
   * `skip` is null when it will be learned from, `samples` is the batch as ingestion
   * passed it on (origins, target units). The arrays are views valid only during the
   * call. Without it the pipeline has no extra stage.
   */
  readonly onStep?: (step: ScoredStep) => void;
}

/** A step record after scoring and backpropagation: the predictions, losses, metrics, and whether it is learned from (`skip === null`). */
export type ScoredStep = GradientStep & { readonly metrics: RollingMetrics };

/** What `train` emits once per step. Plain values: safe to keep. */
export interface StepResult {
  readonly step: number;
  readonly size: number;
  /** Batch loss before the update. */
  readonly loss: number;
  /** Global gradient norm before clipping (NaN when the step was skipped). */
  readonly gradNorm: number;
  readonly clipped: boolean;
  /** Whether the optimizer changed the weights (false when the numeric guard skipped the step). */
  readonly updated: boolean;
  readonly skipped: SkipReason | null;
  readonly learningRate: number;
  /** Prequential (test-then-train) metrics over the rolling window. */
  readonly metrics: RollingMetrics;
  readonly samplesPerSecond: number;
  readonly counters: Readonly<TrainerCounters>;
  /** Drift warnings, drifts and reactions of this step (with `TrainOptions.drift`; usually empty). */
  readonly drift?: readonly AdaptationEvent[];
}

/**
 * Online training as one operator: `validate → batch → forward → loss → prequential →
 * backward → update`, over any stream of samples, emitting one `StepResult` per step.
 *
 * The model and optimizer state live in `trainer`, which is updated in place; several
 * `train`s with different trainers can share one source (use `share()` on it).
 *
 * @example
 * const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 1e-3 } });
 * samples$.pipe(train(trainer, { batch: 32 })).subscribe((r) => console.log(r.step, r.loss));
 */
export function train(trainer: Trainer, options: TrainOptions = {}): OperatorFunction<unknown, StepResult> {
  const onReject = options.onReject;
  // Built here, not on subscribe, so that a bad batch size or window throws at once.
  const batching = batch<Sample>(options.batch ?? 1);
  const scoring = prequential<LossStep>(trainer, options.window ?? 1000);
  const adaptation = options.drift;
  if (adaptation !== undefined && adaptation.trainer !== trainer) throw new StreamgradError('SG_ERR_CONFIG', 'train: the drift adaptation belongs to another trainer', 'drift');
  const onStep = options.onStep;
  // only a pipeline that is asked to report each step pays for the stage
  const reporting: OperatorFunction<ScoredStep, ScoredStep> = onStep === undefined ? pipe() : tap(onStep);
  return (samples: Observable<unknown>) =>
    defer(() => {
      const speed = new Throughput(options.clock);
      return samples.pipe(
        validate(trainer.shape, (rejection) => {
          trainer.counters.rejected++;
          onReject?.(rejection);
        }),
        batching,
        forward(trainer),
        loss(trainer),
        scoring,
        backward(trainer),
        reporting,
        update(trainer),
        map((step): StepResult => ({
          step: step.index,
          size: step.size,
          loss: step.loss,
          gradNorm: step.gradNorm,
          clipped: step.clipped,
          updated: step.updated,
          skipped: step.skip,
          learningRate: step.learningRate,
          metrics: step.metrics,
          samplesPerSecond: speed.add(step.size),
          counters: new CountersCopy(trainer.counters),
          drift: adaptation === undefined ? NO_EVENTS : adaptation.observe(step),
        })),
      );
    });
}

const NO_EVENTS: readonly AdaptationEvent[] = [];

/**
 * A copy of the counters, built by a constructor rather than as `{ ...counters }` (V8 builds
 * an object of known shape in half the time of a spread copy, and the type checker names
 * any counter this leaves out) or as an object literal: a literal has an allocation site,
 * which V8 decides to pretenure (allocate in the old generation for good) if the first GC
 * that weighs the site finds nearly all of its recent objects alive: measured, a full GC
 * that ends during a stream's first steps does (`--trace-pretenuring-statistics`: ratio
 * 1.0), and then every step's copy goes to the old generation and the W1 pipeline ran
 * ~1.4× slower for the whole process (docs/speed.md, session 10). An object built by
 * `new` has no allocation site, so it always starts young.
 */
class CountersCopy implements TrainerCounters {
  declare steps: number;
  declare samples: number;
  declare skipped: number;
  declare skippedSamples: number;
  declare consecutiveSkips: number;
  declare clipped: number;
  declare rejected: number;
  constructor(c: TrainerCounters) {
    this.steps = c.steps;
    this.samples = c.samples;
    this.skipped = c.skipped;
    this.skippedSamples = c.skippedSamples;
    this.consecutiveSkips = c.consecutiveSkips;
    this.clipped = c.clipped;
    this.rejected = c.rejected;
  }
}
