import { defer, map, type OperatorFunction } from 'rxjs';
import { evaluatorSource, type PrequentialEvaluator, type RollingMetrics } from '../core/evaluation.ts';
import type { LossStep } from '../core/step.ts';
import type { Trainer } from '../core/trainer.ts';

/** A step record with the rolling metrics after it. */
export type WithMetrics<S> = S & { readonly metrics: RollingMetrics };

/**
 * Test-then-train evaluation: scores every sample on the prediction made before the
 * model learns from it (place it before `update`), and attaches rolling loss, MAE and,
 * for classifiers, accuracy over the last `window` samples. Each subscription keeps its
 * own window.
 *
 * @param trainer the trainer whose steps are scored
 * @param window how many recent samples the metrics cover (default 1000), or the
 *   evaluator to score into: its owner can then checkpoint and restore the window
 *   (all subscriptions then share it)
 */
export function prequential<S extends LossStep>(trainer: Trainer, window: number | PrequentialEvaluator = 1000): OperatorFunction<S, WithMetrics<S>> {
  const evaluatorFor = evaluatorSource(trainer.loss, window);
  return (source) =>
    defer(() => {
      const evaluator = evaluatorFor();
      const m = trainer.model.outputSize;
      return source.pipe(
        map((step) => {
          evaluator.score(step.outputs, step.targets, step.lossPerSample, step.size, m, step.samples);
          // the step record has a `metrics` slot from the start (see forwardStep): fill it in place
          const scored = step as WithMetrics<S>;
          (scored as { metrics: RollingMetrics }).metrics = evaluator.snapshot();
          return scored;
        }),
      );
    });
}
