import { StreamgradError } from './errors.ts';
import { jsKernels } from './kernels-js.ts';
import { loadWasmKernels, wasmKernels, wasmSupported } from './kernels-wasm.ts';
import type { Kernels } from './kernels.ts';
import { nativeKernels, nativeStatus } from './kernels-native.ts';

/**
 * Which kernel backend runs the math:
 *
 * | choice       | kernels                                                                  |
 * |--------------|--------------------------------------------------------------------------|
 * | `auto`       | `native` where the addon loads, else `wasm` where the runtime has WebAssembly SIMD, else `js` (the default) |
 * | `native`     | the Node-API addon (`native/`): AVX-512 / AVX2+FMA / SSE2, both cores for large products; float64, FMA-rounded |
 * | `native-f32` | `native` with float32 matrix products (float32-accurate, like `wasm-f32`) |
 * | `wasm`       | WebAssembly SIMD, float64, bitwise the same results as `js`              |
 * | `wasm-f32`   | WebAssembly SIMD with float32 matrix products (faster, float32-accurate)  |
 * | `js`         | plain JavaScript, float64                                                |
 *
 * The default for everything that is not given kernels (createModel, createTrainer,
 * predict, …) is `auto`, or the `STREAMGRAD_BACKEND` environment variable when set
 * (`npm test` runs the suite under `auto` and under `js`).
 */
export const BACKENDS = ['auto', 'native', 'native-f32', 'wasm', 'wasm-f32', 'js'] as const;
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
 * The kernels for a choice, synchronously. `auto` takes `native` when the addon loads;
 * otherwise (not built, a browser) it notes why in one line on stderr, once per process
 * and only in Node, and takes `wasm`, or `js` when WebAssembly SIMD is missing or the
 * module cannot be compiled synchronously (a browser's main thread: `await loadKernels()`
 * first there). `native`, `native-f32`, `wasm` and `wasm-f32` throw `SG_ERR_CONFIG` instead.
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
    case 'native':
      return nativeKernels('f64');
    case 'native-f32':
      return nativeKernels('f32');
    case 'auto':
      if (nativeStatus().available) return nativeKernels('f64');
      noteFallback();
      return bitwiseKernels();
  }
}

let bitwise: Kernels | null = null;
/**
 * The fastest kernels that compute bitwise what `js` computes: `wasm` where its module
 * compiles here (synchronously), else `js`. Chosen once per process. `auto` falls back to
 * them without the native addon; serving's batch predictions use them always, so that an
 * answer never depends on the batch it came in.
 */
export function bitwiseKernels(): Kernels {
  if (bitwise === null) {
    try {
      bitwise = wasmSupported() ? wasmKernels('f64') : jsKernels;
    } catch {
      bitwise = jsKernels;
    }
  }
  return bitwise;
}

/** As `selectKernels`, instantiating the WebAssembly module asynchronously (browsers). */
export async function loadKernels(choice: BackendChoice = 'auto'): Promise<Kernels> {
  checkChoice(choice, 'backend');
  if (choice === 'native' || choice === 'native-f32' || (choice === 'auto' && nativeStatus().available)) return selectKernels(choice);
  if (choice === 'auto') noteFallback();
  if (choice === 'js' || (choice === 'auto' && !wasmSupported())) return jsKernels;
  try {
    return await loadWasmKernels(choice === 'wasm-f32' ? 'f32' : 'f64');
  } catch (e) {
    if (choice === 'auto') return jsKernels;
    throw e;
  }
}

let noted = false;
/**
 * `auto` without the native addon: one line on stderr, once, in Node only (a browser never
 * has the addon, and says nothing). STREAMGRAD_NATIVE=0 turns the addon off without a note.
 */
function noteFallback(): void {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; stderr?: { write(s: string): unknown } } }).process;
  if (noted || proc?.stderr === undefined || proc.env?.STREAMGRAD_NATIVE === '0') return;
  noted = true;
  proc.stderr.write(`streamgrad: native kernels unavailable (${nativeStatus().reason}); the auto backend uses wasm\n`);
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
