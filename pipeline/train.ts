import { defer, map, type Observable, type OperatorFunction } from 'rxjs';
import { batch, type BatchConfig } from '../operators/batch.ts';
import { validate } from '../operators/validate.ts';
import { evaluatorSource, type PrequentialEvaluator, type RollingMetrics } from './evaluation.ts';
import type { Rejection, Sample } from './sample.ts';
import { backwardStep, forwardStep, lossStep, updateStep, type ForwardStep, type SkipReason } from './step.ts';
import { Throughput } from './throughput.ts';
import type { Trainer, TrainerCounters } from './trainer.ts';

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
}

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
  const evaluatorFor = evaluatorSource(trainer.loss, options.window ?? 1000);
  return (samples: Observable<unknown>) =>
    defer(() => {
      const speed = new Throughput(options.clock);
      const evaluator = evaluatorFor();
      const m = trainer.model.outputSize;
      // the step record never leaves this subscription (it emits StepResults), so one serves every step
      let record: ForwardStep | undefined;
      return samples.pipe(
        validate(trainer.shape, (rejection) => {
          trainer.counters.rejected++;
          onReject?.(rejection);
        }),
        batching,
        // forward → loss → prequential → backward → update, as the operators of those names
        // run them, in one `map`: each operator is a subscriber hop that V8 cannot inline
        // through, and at batch 1 with the wasm kernels five hops cost ~5% of a step (issue #3)
        map((batched): StepResult => {
          const scored = lossStep(trainer, (record = forwardStep(trainer, batched, record)));
          evaluator.score(scored.outputs, scored.targets, scored.lossPerSample, scored.size, m);
          const metrics = evaluator.snapshot();
          const step = updateStep(trainer, backwardStep(trainer, scored));
          return {
            step: step.index,
            size: step.size,
            loss: step.loss,
            gradNorm: step.gradNorm,
            clipped: step.clipped,
            updated: step.updated,
            skipped: step.skip,
            learningRate: step.learningRate,
            metrics,
            samplesPerSecond: speed.add(step.size),
            counters: countersNow(trainer.counters),
          };
        }),
      );
    });
}

/**
 * A copy of the counters, as a literal rather than `{ ...counters }`: V8 builds a literal
 * of known shape in half the time of a spread copy, and the type checker names any
 * counter this leaves out.
 */
function countersNow(c: TrainerCounters): TrainerCounters {
  return { steps: c.steps, samples: c.samples, skipped: c.skipped, consecutiveSkips: c.consecutiveSkips, clipped: c.clipped, rejected: c.rejected };
}
