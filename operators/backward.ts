import { map, type OperatorFunction } from 'rxjs';
import { backwardStep, type GradientStep, type LossStep } from '../core/step.ts';
import type { Trainer } from '../core/trainer.ts';

/**
 * Backpropagates each step's loss to every parameter (chain rule, last layer first),
 * measures the gradient's global norm and clips it when the trainer says so.
 * A non-finite loss or gradient marks the step as skipped instead of failing.
 *
 * @param trainer the trainer whose `loss` produced the steps
 */
export function backward<S extends LossStep>(trainer: Trainer): OperatorFunction<S, S & GradientStep> {
  return map((step) => backwardStep(trainer, step));
}
