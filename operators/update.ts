import { map, type OperatorFunction } from 'rxjs';
import { updateStep, type GradientStep, type UpdatedStep } from '../core/step.ts';
import type { Trainer } from '../core/trainer.ts';

/**
 * Applies the optimizer to each step's gradient. A skipped step leaves the weights
 * bitwise unchanged; when the skips break the trainer's divergence rules
 * (`trainer.divergence`: K in a row, or more than a rate of the recent steps) the stream
 * errors with `SG_ERR_DIVERGED`.
 *
 * @param trainer the trainer whose `backward` produced the steps
 */
export function update<S extends GradientStep>(trainer: Trainer): OperatorFunction<S, S & UpdatedStep> {
  return map((step) => updateStep(trainer, step));
}
