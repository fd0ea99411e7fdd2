import { map, type OperatorFunction } from 'rxjs';
import type { Sample } from '../pipeline/sample.ts';
import { forwardStep, type ForwardStep } from '../pipeline/step.ts';
import type { Trainer } from '../pipeline/trainer.ts';

/**
 * Runs each batch through the network: packs it into the trainer's workspace and
 * computes every layer's activations under the current parameters.
 * Emits one step record per batch; its arrays are views, valid until the next step.
 *
 * @example samples.pipe(batch(8), forward(trainer), loss(trainer), backward(trainer), update(trainer))
 * @param trainer the model and its buffers
 */
export function forward(trainer: Trainer): OperatorFunction<readonly Sample[], ForwardStep> {
  return map((samples) => forwardStep(trainer, samples));
}
