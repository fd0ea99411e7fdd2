import { jsKernels } from '../../../../pipeline/kernels-js.ts';
import type { Kernels } from '../../../../pipeline/kernels.ts';

/**
 * The browser build's stand-in for `pipeline/backend.ts` (the bundler swaps it in, see
 * build.mjs): the page runs the engine's own model, workspace and forward pass on the
 * plain JavaScript kernels, without the WebAssembly backend and its bytes.
 */
export function defaultKernels(): Kernels {
  return jsKernels;
}
