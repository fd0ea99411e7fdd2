import { StreamgradError } from './errors.ts';
import { jsKernels } from './kernels-js.ts';
import { loadWasmKernels, wasmKernels, wasmSupported } from './kernels-wasm.ts';
import type { Kernels } from './kernels.ts';

/**
 * Which kernel backend runs the math:
 *
 * | choice     | kernels                                                                 |
 * |------------|-------------------------------------------------------------------------|
 * | `auto`     | `wasm` where the runtime has WebAssembly SIMD, else `js` (the default)  |
 * | `wasm`     | WebAssembly SIMD, float64, bitwise the same results as `js`             |
 * | `wasm-f32` | WebAssembly SIMD with float32 matrix products (faster, float32-accurate) |
 * | `js`       | plain JavaScript, float64                                               |
 *
 * The default for everything that is not given kernels (createModel, createTrainer,
 * predict, …) is `auto`, or the `STREAMGRAD_BACKEND` environment variable when set
 * (`npm test` runs the suite under `auto` and under `js`).
 */
export const BACKENDS = ['auto', 'wasm', 'wasm-f32', 'js'] as const;
/** A kernel backend name (see `BACKENDS`). */
export type BackendChoice = (typeof BACKENDS)[number];

/** Whether `value` is one of `BACKENDS`. */
export function isBackendChoice(value: unknown): value is BackendChoice {
  return typeof value === 'string' && (BACKENDS as readonly string[]).includes(value);
}

function checkChoice(choice: unknown, field: string): asserts choice is BackendChoice {
  if (!isBackendChoice(choice)) {
    throw new StreamgradError('SG_ERR_CONFIG', `${field}: unknown backend ${JSON.stringify(choice)}; use ${BACKENDS.join(', ')}`, field);
  }
}

/**
 * The kernels for a choice, synchronously. `auto` falls back to `js` when WebAssembly SIMD
 * is missing or the module cannot be compiled synchronously (a browser's main thread:
 * `await loadKernels()` first there); `wasm` and `wasm-f32` throw `SG_ERR_CONFIG` instead.
 */
export function selectKernels(choice: BackendChoice = 'auto'): Kernels {
  checkChoice(choice, 'backend');
  switch (choice) {
    case 'js':
      return jsKernels;
    case 'wasm':
      return wasmKernels('f64');
    case 'wasm-f32':
      return wasmKernels('f32');
    case 'auto':
      if (!wasmSupported()) return jsKernels;
      try {
        return wasmKernels('f64');
      } catch {
        return jsKernels;
      }
  }
}

/** As `selectKernels`, instantiating the WebAssembly module asynchronously (browsers). */
export async function loadKernels(choice: BackendChoice = 'auto'): Promise<Kernels> {
  checkChoice(choice, 'backend');
  if (choice === 'js' || (choice === 'auto' && !wasmSupported())) return jsKernels;
  try {
    return await loadWasmKernels(choice === 'wasm-f32' ? 'f32' : 'f64');
  } catch (e) {
    if (choice === 'auto') return jsKernels;
    throw e;
  }
}

let defaults: Kernels | null = null;

/** The kernels used where none are given: `STREAMGRAD_BACKEND` if set, else `auto`. Chosen once per process. */
export function defaultKernels(): Kernels {
  if (defaults === null) {
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.STREAMGRAD_BACKEND;
    const choice = env === undefined || env === '' ? 'auto' : env;
    checkChoice(choice, 'STREAMGRAD_BACKEND');
    defaults = selectKernels(choice);
  }
  return defaults;
}

/** Kernels from a choice, from kernels as they are, or the default when neither is given. */
export function resolveKernels(kernels: Kernels | BackendChoice | undefined): Kernels {
  if (kernels === undefined) return defaultKernels();
  return typeof kernels === 'string' ? selectKernels(kernels) : kernels;
}
