import { map, type OperatorFunction } from 'rxjs';
import { updateStep, type GradientStep, type UpdatedStep } from '../pipeline/step.ts';
import type { Trainer } from '../pipeline/trainer.ts';

/**
 * Applies the optimizer to each step's gradient. A skipped step leaves the weights
 * bitwise unchanged; after `trainer.maxConsecutiveSkips` skips in a row the stream
 * errors with `SG_ERR_DIVERGED`.
 *
 * @param trainer the trainer whose `backward` produced the steps
 */
export function update<S extends GradientStep>(trainer: Trainer): OperatorFunction<S, S & UpdatedStep> {
  return map((step) => updateStep(trainer, step));
}
