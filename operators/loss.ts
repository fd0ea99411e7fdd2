import { map, type OperatorFunction } from 'rxjs';
import { lossStep, type ForwardStep, type LossStep } from '../core/step.ts';
import type { Trainer } from '../core/trainer.ts';

/**
 * Computes each step's batch loss (and per-sample losses) from the forward pass, and
 * the output layer's dL/dz that `backward` starts from.
 *
 * @param trainer the trainer whose `forward` produced the steps
 */
export function loss<S extends ForwardStep>(trainer: Trainer): OperatorFunction<S, S & LossStep> {
  return map((step) => lossStep(trainer, step));
}
