import { defer, map, type OperatorFunction } from 'rxjs';
import type { Sample } from '../core/sample.ts';
import { forwardStep, type ForwardStep } from '../core/step.ts';
import type { Trainer } from '../core/trainer.ts';

/**
 * Runs each batch through the network: packs it into the trainer's workspace and
 * computes every layer's activations under the current parameters.
 * Emits one step record per batch, valid until the next step: its arrays are views into
 * the trainer's buffers, and each subscription refills one record rather than making a
 * new object of 16 fields per step (at batch 1 that is a good part of a step's garbage).
 * Copy what you keep.
 *
 * @example samples.pipe(batch(8), forward(trainer), loss(trainer), backward(trainer), update(trainer))
 * @param trainer the model and its buffers
 */
export function forward(trainer: Trainer): OperatorFunction<readonly Sample[], ForwardStep> {
  return (batches) =>
    defer(() => {
      let record: ForwardStep | undefined;
      return batches.pipe(map((samples) => (record = forwardStep(trainer, samples, record))));
    });
}
