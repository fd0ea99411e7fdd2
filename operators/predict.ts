import { defer, filter, map, type OperatorFunction } from 'rxjs';
import { StreamgradError } from '../core/errors.ts';
import { defaultKernels } from '../core/backend.ts';
import type { Kernels } from '../core/kernels.ts';
import type { Model } from '../core/model.ts';
import { forwardPass } from '../core/network.ts';
import { checkSample, type Rejection } from '../core/sample.ts';
import { createWorkspace } from '../core/workspace.ts';

/** What `predict` emits: the input as given and the network's output (a fresh array). */
export interface Prediction<I> {
  readonly input: I;
  readonly output: Float64Array;
}

/** Options of `predict`. */
export interface PredictOptions {
  /** Where inputs that do not fit the model go (default: they end the stream with their error). */
  readonly onReject?: (rejection: Rejection) => void;
  /** Kernel backend (default: `defaultKernels()`). */
  readonly kernels?: Kernels;
}

/**
 * Runs the network forward on each input, without learning. An input is either a
 * feature vector or anything with an `x` (so samples can be passed as they are).
 * Uses its own buffers per subscription, so it can run beside a trainer on the same
 * model and sees the parameters as they are at the moment each input arrives.
 *
 * @example features.pipe(predict(model)).subscribe(({ output }) => console.log(output[0]))
 * @param model the network to evaluate
 */
export function predict<I extends ArrayLike<number> | { readonly x: ArrayLike<number> }>(
  model: Model, options: PredictOptions = {},
): OperatorFunction<I, Prediction<I>> {
  const kernels = options.kernels ?? defaultKernels();
  const shape = { inputs: model.inputSize, outputs: model.outputSize };
  return (source) =>
    defer(() => {
      const ws = createWorkspace(model, 1, kernels.allocate);
      const n = model.inputSize, m = model.outputSize, last = model.layers.length - 1;
      return source.pipe(
        filter((input) => {
          const x = isVector(input) ? input : typeof input === 'object' && input !== null ? (input as { x?: unknown }).x : input;
          // check only the features: a prediction needs no target
          const error = checkSample({ x, y: 0 }, { ...shape, outputs: 1 });
          if (error === null) return true;
          if (options.onReject === undefined) throw new StreamgradError(error.code, error.message, error.field);
          options.onReject({ error, sample: input });
          return false;
        }),
        map((input) => {
          const x = isVector(input) ? input : (input as { x: ArrayLike<number> }).x;
          for (let k = 0; k < n; k++) ws.x[k] = x[k];
          forwardPass(kernels, model, ws, 1);
          return { input, output: ws.a[last].slice(0, m) };
        }),
      );
    });
}

const isVector = (v: unknown): v is ArrayLike<number> => Array.isArray(v) || ArrayBuffer.isView(v);
