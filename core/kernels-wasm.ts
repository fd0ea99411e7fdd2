import type { Activation } from './activations.ts';
import { StreamgradError } from './errors.ts';
import { jsKernels } from './kernels-js.ts';
import type { Kernels } from './kernels.ts';
import type { Model, Workspace } from './shapes.ts';
import { WASM_SHARED, WASM_UNSHARED } from './kernels-wasm-bytes.ts';

/**
 * The WebAssembly SIMD kernel backend (sources in `assembly/`, AssemblyScript).
 *
 * - **Bitwise the JavaScript backend.** `wasm` computes every element with the same
 *   operations in the same order as `kernels-js.ts` (SIMD lanes hold independent
 *   elements, never partial sums of one), so results, fixtures and checkpoints do not
 *   depend on the backend. `exp`-based activations (sigmoid, tanh, softmax) run the
 *   JavaScript code on the same arrays, for the same reason.
 * - **Zero copies.** Arrays from `allocate` live in the module's linear memory; kernels get
 *   their byte offsets. Any other `Float64Array` works too, through copies into and out of
 *   that memory (`wasmStats().copies` counts them): correct, only slower.
 * - **Views never go stale.** The memory is *shared* where the runtime allows it (Node, and
 *   cross-origin-isolated pages): growing a shared memory does not detach the buffers that
 *   existing views hold, so allocation can grow it at any time. Elsewhere (a page without
 *   cross-origin isolation) the memory is a plain one of fixed size (`memoryBytes`, 64 MiB
 *   by default) that never grows: growing would detach every view. Running out of it
 *   throws `SG_ERR_CONFIG` naming `backend`.
 * - **Memory comes back** when an array from `allocate` is garbage-collected
 *   (`FinalizationRegistry`). Subarrays do not keep their parent alive, so keep the array
 *   (or the Model / Workspace / OptimizerState holding it) while using views of it, as the
 *   engine does.
 * - **One call per pass.** `forwardPass` / `backwardPass` run every layer in one call
 *   (bias and activation fused into the product, the gradient written fresh rather than
 *   zeroed and re-read) from a table of the workspace's offsets kept in
 *   `Workspace.kernelCache`: in this V8, reading a typed array's `byteOffset` or `buffer`
 *   costs about 10 ns, more than a batch-1 layer's arithmetic.
 * - **One module instance per process** (`wasmKernels()`), shared by `wasm` and `wasm-f32`;
 *   `createWasmRuntime` makes separate ones (tests).
 *
 * `wasm-f32` (float32 mode): storage, activations, losses and optimizer updates stay
 * float64; the matrix products convert their operands to float32 and run four lanes per
 * SIMD operation instead of two. Results are float32-accurate, not bitwise anything. On
 * the reference fixtures (FORMAT.md's error relative to each array's scale): outputs and
 * losses stay within `F32_TOLERANCE` (2e-5; measured worst 9.9e-6, xor-long) at every
 * step of every fixture, and so do the parameters of the fixtures of up to 64 steps
 * (worst 6.0e-6); over xor-long's 2,000 SGD steps float32 rounding compounds and the
 * parameters drift up to 1.6e-3 (within `F32_LONG_RUN_TOLERANCE`, 5e-3). It pays from
 * batches of a few rows up; at batch size 1 converting the weights costs as much as the
 * product, and `wasm` is faster.
 *
 * In a browser, load with `await loadWasmKernels()` (or `loadKernels` in `backend.ts`):
 * browsers refuse to compile a module of this size synchronously on the main thread.
 * Nothing here uses Node APIs.
 */

export type WasmPrecision = 'f64' | 'f32';

// The slice of the WebAssembly JS API used here, typed locally: the project's lib (ES2023,
// no DOM) has no WebAssembly types, and declaring them globally would clash with a DOM lib.
interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmGlobal { readonly value: unknown }
type WasmModule = object;
interface WasmInstance { readonly exports: object }
interface WasmApi {
  readonly Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  readonly Module: new (bytes: Uint8Array<ArrayBuffer>) => WasmModule;
  readonly Instance: new (module: WasmModule, imports: object) => WasmInstance;
  validate(bytes: Uint8Array<ArrayBuffer>): boolean;
  compile(bytes: Uint8Array<ArrayBuffer>): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: object): Promise<WasmInstance>;
}
const wasmApi = (): WasmApi | undefined => (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
const WA = (): WasmApi => wasmApi()!;

/** `wasm-f32` against the float64 reference: outputs, losses, and parameters over short runs (see above; the tests check it). */
export const F32_TOLERANCE = 2e-5;
/** `wasm-f32` parameters after a long run (xor-long, 2,000 steps). */
export const F32_LONG_RUN_TOLERANCE = 5e-3;

export interface WasmRuntimeOptions {
  /** Use a shared memory (grows without detaching views). Default: where the runtime allows it. */
  readonly shared?: boolean;
  /** A shared memory's initial size, or an unshared memory's fixed size, in bytes (default 4 MiB / 64 MiB). */
  readonly memoryBytes?: number;
}

/** What a runtime's allocator holds: for tests, and for leak hunting. */
export interface WasmStats {
  readonly shared: boolean;
  /** Size of the linear memory. */
  readonly memoryBytes: number;
  /** Bytes in live blocks (arrays, scratch). */
  readonly allocatedBytes: number;
  readonly liveBlocks: number;
  /** Times the memory grew. */
  readonly grows: number;
  /** Kernel calls that had to copy arrays from outside the memory in and out. */
  readonly copies: number;
}

interface WasmExports {
  readonly heapBase: () => number;
  readonly denseForward: (x: number, W: number, b: number, z: number, a: number, rows: number, n: number, m: number, act: number, xp: number) => void;
  readonly denseBackward: (x: number, d: number, W: number, gW: number, gb: number, dx: number, rows: number, n: number, m: number, idx: number, fresh: number) => void;
  readonly denseForward32: (x: number, W: number, b: number, z: number, a: number, rows: number, n: number, m: number, act: number, s: number) => void;
  readonly denseBackward32: (x: number, d: number, W: number, gW: number, gb: number, dx: number, rows: number, n: number, m: number, s: number, fresh: number) => void;
  readonly activate: (kind: number, z: number, a: number, len: number) => void;
  readonly activationBackward: (kind: number, z: number, a: number, d: number, rows: number, m: number) => void;
  readonly sumOfSquares: (g: number, len: number) => number;
  readonly scale: (g: number, len: number, s: number) => void;
  readonly sgd: (p: number, g: number, len: number, lr: number) => void;
  readonly momentum: (p: number, g: number, v: number, len: number, lr: number, mu: number) => void;
  readonly adam: (p: number, g: number, m: number, v: number, len: number, stepSize: number, beta1: number, beta2: number, c2: number, epsilon: number) => void;
  readonly rmsprop: (p: number, g: number, v: number, len: number, lr: number, alpha: number, epsilon: number) => void;
  readonly adagrad: (p: number, g: number, s: number, len: number, lr: number, epsilon: number) => void;
  readonly forwardNet: (plan: number, rows: number, x: number, scratch: number, f32: number) => void;
  readonly backwardNet: (plan: number, rows: number, x: number, scratch: number, f32: number) => void;
  readonly [global: `ACT_${string}` | `PLAN_${string}`]: WasmGlobal;
}

const PAGE = 65_536;
const MAX_PAGES = 65_536; // the module's declared maximum (4 GiB)
const BLOCK = 64; // allocation granule and alignment: one cache line

function fail(message: string): never {
  throw new StreamgradError('SG_ERR_CONFIG', `backend: ${message}`, 'backend');
}

/**
 * The allocator over a runtime's linear memory: first-fit over a sorted free list,
 * 64-byte blocks, growth only inside `reserve`. Arrays are freed when collected.
 */
class Arena {
  buffer: ArrayBufferLike;
  /** Buffers of the memory before each growth (shared memory: their views stay valid). */
  private readonly older: ArrayBufferLike[] = [];
  private top: number;
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];
  private readonly live = new Map<number, number>();
  allocatedBytes = 0;
  grows = 0;
  copies = 0;
  private readonly registry = new FinalizationRegistry<number>((start) => this.release(start));

  constructor(readonly memory: WasmMemory, readonly shared: boolean, heapBase: number) {
    this.buffer = memory.buffer;
    this.top = Math.ceil(heapBase / BLOCK) * BLOCK;
  }

  /** Whether `a` views this memory (through the current buffer or one from before a growth). */
  owns(a: ArrayBufferView): boolean {
    const b = a.buffer;
    return b === this.buffer || (this.older.length > 0 && this.older.includes(b));
  }

  /** A zeroed Float64Array in this memory, returned to the free list when collected. */
  allocate(length: number): Float64Array {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`allocate: length must be an integer ≥ 0, got ${length}`);
    if (length === 0) return new Float64Array(this.buffer, 0, 0);
    const start = this.reserve(length * 8);
    const view = new Float64Array(this.buffer, start, length);
    view.fill(0);
    this.registry.register(view, start);
    return view;
  }

  /** `bytes` (rounded up to 64) of memory, 64-byte aligned; the caller releases it. */
  reserve(bytes: number): number {
    const size = Math.max(BLOCK, Math.ceil(bytes / BLOCK) * BLOCK);
    let start = -1;
    for (let i = 0; i < this.starts.length; i++) {
      if (this.lengths[i] < size) continue;
      start = this.starts[i];
      if (this.lengths[i] === size) { this.starts.splice(i, 1); this.lengths.splice(i, 1); }
      else { this.starts[i] += size; this.lengths[i] -= size; }
      break;
    }
    if (start < 0) {
      if (this.top + size > this.memory.buffer.byteLength) this.grow(this.top + size);
      start = this.top;
      this.top += size;
    }
    this.live.set(start, size);
    this.allocatedBytes += size;
    return start;
  }

  /** Returns a block to the free list, merging it with its neighbours. */
  release(start: number): void {
    const size = this.live.get(start);
    if (size === undefined) return;
    this.live.delete(start);
    this.allocatedBytes -= size;
    let i = 0;
    while (i < this.starts.length && this.starts[i] < start) i++;
    let s = start, len = size;
    if (i > 0 && this.starts[i - 1] + this.lengths[i - 1] === s) { i--; s = this.starts[i]; len += this.lengths[i]; this.starts.splice(i, 1); this.lengths.splice(i, 1); }
    if (i < this.starts.length && s + len === this.starts[i]) { len += this.lengths[i]; this.starts.splice(i, 1); this.lengths.splice(i, 1); }
    if (s + len === this.top) this.top = s; // the topmost block goes back to the bump region
    else { this.starts.splice(i, 0, s); this.lengths.splice(i, 0, len); }
  }

  get liveBlocks(): number {
    return this.live.size;
  }

  private grow(needed: number): void {
    const have = this.memory.buffer.byteLength / PAGE;
    const need = Math.ceil(needed / PAGE);
    if (!this.shared) {
      fail(`the WebAssembly memory is full (${have * PAGE} bytes, fixed because this runtime has no shared memory: growing would ` +
        'detach every array view); create the runtime with a larger memoryBytes, or use the js backend');
    }
    if (need > MAX_PAGES) fail(`the WebAssembly memory cannot hold ${needed} bytes (4 GiB at most); use the js backend`);
    const target = Math.min(MAX_PAGES, Math.max(need, have * 2));
    try {
      this.memory.grow(target - have);
    } catch {
      try {
        this.memory.grow(need - have);
      } catch (e) {
        fail(`the WebAssembly memory could not grow to ${needed} bytes (${String(e)}); use the js backend`);
      }
    }
    this.older.push(this.buffer);
    this.buffer = this.memory.buffer;
    this.grows++;
  }
}

/** One instantiated module with its memory and allocator; `kernels.f64` is `wasm`, `kernels.f32` is `wasm-f32`. */
export interface WasmRuntime {
  readonly memory: WasmMemory;
  readonly kernels: { readonly f64: Kernels; readonly f32: Kernels };
  stats(): WasmStats;
  /** Whether `a` lies in this runtime's memory (kernels then use it in place). */
  owns(a: ArrayBufferView): boolean;
}

// ---------------------------------------------------------------------------------------
// loading

let sharedBytes: Uint8Array<ArrayBuffer> | null = null;
let unsharedBytes: Uint8Array<ArrayBuffer> | null = null;
const compiled: { shared?: WasmModule; unshared?: WasmModule } = {};

function decode(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
const bytesOf = (shared: boolean): Uint8Array<ArrayBuffer> =>
  shared ? (sharedBytes ??= decode(WASM_SHARED)) : (unsharedBytes ??= decode(WASM_UNSHARED));

let simd: boolean | null = null;
/** Whether this runtime can run the kernels (WebAssembly with fixed-width SIMD). */
export function wasmSupported(): boolean {
  if (simd === null) {
    try {
      simd = WASM_UNSHARED !== '' && wasmApi() !== undefined && WA().validate(bytesOf(false));
    } catch {
      simd = false;
    }
  }
  return simd;
}

let sharedOk: boolean | null = null;
/** Whether this runtime allows a shared WebAssembly memory (Node does; pages need cross-origin isolation). */
export function sharedMemorySupported(): boolean {
  if (sharedOk === null) {
    try {
      sharedOk = new (WA().Memory)({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer
        && WA().validate(bytesOf(true));
    } catch {
      sharedOk = false;
    }
  }
  return sharedOk;
}

/** Why the kernels cannot run here: not built (a production install without the compiler), or no SIMD. */
function unsupported(): never {
  if (WASM_UNSHARED === '') fail('the WebAssembly kernels were not built (npm install with the devDependencies, then npm run build); use the js backend');
  fail('this JavaScript runtime has no WebAssembly SIMD; use the js backend');
}

function memoryFor(options: WasmRuntimeOptions): { memory: WasmMemory; shared: boolean } {
  if (!wasmSupported()) unsupported();
  const shared = options.shared ?? sharedMemorySupported();
  if (shared && !sharedMemorySupported()) fail('this JavaScript runtime has no shared WebAssembly memory (a page needs cross-origin isolation)');
  const bytes = options.memoryBytes ?? (shared ? 4 << 20 : 64 << 20);
  if (!Number.isSafeInteger(bytes) || bytes < PAGE || bytes > MAX_PAGES * PAGE) fail(`memoryBytes must be an integer in [64 KiB, 4 GiB], got ${bytes}`);
  const pages = Math.ceil(bytes / PAGE);
  const memory = shared
    ? new (WA().Memory)({ initial: pages, maximum: MAX_PAGES, shared: true })
    : new (WA().Memory)({ initial: pages, maximum: pages });
  return { memory, shared };
}

/** What the module imports: its memory, and the exp-based activations (bound once the runtime exists). */
interface HostImports {
  readonly imports: object;
  activateJs: (kind: number, z: number, a: number, rows: number, m: number) => void;
}
function hostImports(memory: WasmMemory): HostImports {
  const host: HostImports = {
    imports: { env: { memory, activateJs: (kind: number, z: number, a: number, rows: number, m: number) => host.activateJs(kind, z, a, rows, m) } },
    activateJs: () => { throw new Error('activateJs called before the runtime was bound'); },
  };
  return host;
}

/** A new module instance with its own memory, compiled and instantiated synchronously (Node, workers). */
export function createWasmRuntime(options: WasmRuntimeOptions = {}): WasmRuntime {
  if (!wasmSupported()) unsupported();
  const key = (options.shared ?? sharedMemorySupported()) ? 'shared' : 'unshared';
  // compile first: a browser's main thread refuses this synchronously, before any memory is reserved
  const module = (compiled[key] ??= new (WA().Module)(bytesOf(key === 'shared')));
  const { memory, shared } = memoryFor(options);
  const host = hostImports(memory);
  return runtimeOf(new (WA().Instance)(module, host.imports), memory, shared, host);
}

/** As `createWasmRuntime`, compiling and instantiating asynchronously (what browsers need for a module of this size). */
export async function instantiateWasmRuntime(options: WasmRuntimeOptions = {}): Promise<WasmRuntime> {
  const { memory, shared } = memoryFor(options);
  const key = shared ? 'shared' : 'unshared';
  const module = (compiled[key] ??= await WA().compile(bytesOf(shared)));
  const host = hostImports(memory);
  return runtimeOf(await WA().instantiate(module, host.imports), memory, shared, host);
}

let processRuntime: WasmRuntime | null = null;

/** The process's `wasm` (float64) or `wasm-f32` kernels; instantiates the module on first use. */
export function wasmKernels(precision: WasmPrecision = 'f64'): Kernels {
  processRuntime ??= createWasmRuntime();
  return processRuntime.kernels[precision];
}

/** As `wasmKernels`, loading asynchronously: call this once in a browser before anything else uses the backend. */
export async function loadWasmKernels(precision: WasmPrecision = 'f64'): Promise<Kernels> {
  processRuntime ??= await instantiateWasmRuntime();
  return processRuntime.kernels[precision];
}

/** The process runtime's allocator figures (instantiating it if needed). */
export function wasmStats(): WasmStats {
  processRuntime ??= createWasmRuntime();
  return processRuntime.stats();
}

/** The process runtime, when it exists. */
export function processWasmRuntime(): WasmRuntime | null {
  return processRuntime;
}

// ---------------------------------------------------------------------------------------
// the kernels

/**
 * A workspace's table of offsets for `forwardNet` / `backwardNet`, kept in
 * `Workspace.kernelCache`; `table` is null when some array lies outside the memory (the
 * passes then go layer by layer, through copies).
 */
interface Plan {
  readonly runtime: object;
  readonly model: Model;
  readonly x: Float64Array;
  readonly table: Float64Array | null;
  readonly at: number;
  readonly xAt: number;
  /** Scratch bytes of a forward pass (float64, float32), and float32 backward bytes per batch row and fixed. */
  readonly forward64: number;
  readonly forward32: number;
  readonly backward64: number;
  readonly backward32PerRow: number;
  readonly backward32Fixed: number;
}

function runtimeOf(instance: WasmInstance, memory: WasmMemory, shared: boolean, host: HostImports): WasmRuntime {
  const E = instance.exports as unknown as WasmExports;
  const arena = new Arena(memory, shared, E.heapBase());
  const codes = {
    linear: E.ACT_LINEAR.value as number, relu: E.ACT_RELU.value as number, leaky_relu: E.ACT_LEAKY_RELU.value as number,
    sign: E.ACT_SIGN.value as number, sigmoid: E.ACT_SIGMOID.value as number, tanh: E.ACT_TANH.value as number,
    softmax: E.ACT_SOFTMAX.value as number,
  } satisfies Record<Activation, number>;
  const names = new Map<number, Activation>(Object.entries(codes).map(([name, code]) => [code, name as Activation]));
  const NONE = E.ACT_NONE.value as number;
  const HEADER = E.PLAN_HEADER.value as number, STRIDE = E.PLAN_STRIDE.value as number;
  /** Activations the module computes; the exp-based ones run `jsKernels.activate`. */
  const inWasm = (kind: Activation) => kind === 'linear' || kind === 'relu' || kind === 'leaky_relu' || kind === 'sign';
  host.activateJs = (kind, z, a, rows, m) => {
    const len = rows * m;
    jsKernels.activate(names.get(kind)!, new Float64Array(arena.buffer, z, len), new Float64Array(arena.buffer, a, len), rows, m);
  };

  // scratch for the kernels' packed operands, grown (rarely) to the largest shape seen
  let scratchAt = 0, scratchBytes = 0;
  const scratch = (bytes: number): number => {
    if (bytes > scratchBytes) {
      if (scratchBytes > 0) arena.release(scratchAt);
      scratchBytes = Math.max(bytes, 2 * scratchBytes, 16_384);
      scratchAt = arena.reserve(scratchBytes);
    }
    return scratchAt;
  };

  const own = (a: Float64Array): boolean => a.buffer === arena.buffer || arena.owns(a);
  const need = (a: Float64Array, length: number, name: string): void => {
    if (a.length < length) throw new RangeError(`kernel argument ${name}: ${a.length} values, the shapes need ${length}`);
  };

  /**
   * The slow path: runs `call` on copies in this memory of the arrays that lie outside
   * it (copying the `written` ones back).
   */
  const viaCopies = (arrays: readonly (Float64Array | null)[], written: readonly boolean[], call: (p: readonly number[]) => void): void => {
    arena.copies++;
    const blocks: number[] = [];
    try {
      const staged = arrays.map((a) => a !== null && !own(a));
      const ptrs = arrays.map((a, i) => {
        if (a === null) return 0;
        if (!staged[i]) return a.byteOffset;
        const at = arena.reserve(a.byteLength);
        blocks.push(at);
        new Float64Array(arena.buffer, at, a.length).set(a);
        return at;
      });
      call(ptrs);
      arrays.forEach((a, i) => {
        if (a !== null && staged[i] && written[i]) a.set(new Float64Array(arena.buffer, ptrs[i], a.length));
      });
    } finally {
      for (const at of blocks) arena.release(at);
    }
  };

  const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;

  /** The plan for (model, ws), made on first use and after the workspace's buffers change. */
  const planFor = (model: Model, ws: Workspace): Plan => {
    const cached = ws.kernelCache as Plan | null;
    if (cached !== null && cached.runtime === arena && cached.model === model && cached.x === ws.x) return cached;
    return makePlan(model, ws);
  };

  // Slow paths live in functions of their own: V8 allocates a function's closure context
  // on every call that has a closure inside, even when the closure is never reached, and
  // these kernels run every step (issue #3: no allocation per step).
  const makePlan = (model: Model, ws: Workspace): Plan => {
    const layers = model.layers;
    let forward64 = 0, forward32 = 0, backward64 = 0, backward32PerRow = 0, backward32Fixed = 0;
    for (const { inputs: n, outputs: m } of layers) {
      forward64 = Math.max(forward64, 32 * n);
      forward32 = Math.max(forward32, align16(4 * m * n) + 32 * n);
      backward64 = Math.max(backward64, 4 * m);
      backward32PerRow = Math.max(backward32PerRow, 4 * (n + m));
      backward32Fixed = Math.max(backward32Fixed, 4 * m * n + 32);
    }
    const arrays = [ws.x, ws.grads, model.params, ...ws.z, ...ws.a, ...ws.delta];
    let table: Float64Array | null = null, at = 0;
    if (arrays.every(own)) {
      const words = HEADER + STRIDE * layers.length;
      table = arena.allocate(Math.ceil(words / 2));
      at = table.byteOffset;
      const t = new Int32Array(arena.buffer, at, words);
      t[0] = layers.length;
      t[1] = ws.grads.byteOffset;
      t[2] = ws.grads.length;
      layers.forEach((layer, l) => {
        t.set([
          layer.inputs, layer.outputs, codes[layer.activation],
          layer.weights.byteOffset, layer.bias.byteOffset,
          ws.z[l].byteOffset, ws.a[l].byteOffset, ws.delta[l].byteOffset,
          ws.grads.byteOffset + 8 * layer.weightOffset, ws.grads.byteOffset + 8 * layer.biasOffset,
        ], HEADER + STRIDE * l);
      });
    }
    const plan: Plan = {
      runtime: arena, model, x: ws.x, table, at, xAt: ws.x.byteOffset,
      forward64, forward32, backward64, backward32PerRow, backward32Fixed,
    };
    ws.kernelCache = plan;
    return plan;
  };

  /**
   * The kernels below on arrays outside WASM memory, through copies (slow, and rare), each
   * in a function of its own so that the fast path allocates nothing (see `makePlan`).
   */
  const copied = {
    activate: (kind: Activation, z: Float64Array, a: Float64Array, len: number) =>
      viaCopies([z, a], [false, true], (q) => E.activate(codes[kind], q[0], q[1], len)),
    activationBackward: (kind: Activation, z: Float64Array, a: Float64Array, d: Float64Array, rows: number, m: number) =>
      viaCopies([z, a, d], [false, false, true], (q) => E.activationBackward(codes[kind], q[0], q[1], q[2], rows, m)),
    sumOfSquares: (g: Float64Array): number => {
      let sum = 0;
      viaCopies([g], [false], (q) => { sum = E.sumOfSquares(q[0], g.length); });
      return sum;
    },
    scale: (g: Float64Array, s: number) => viaCopies([g], [true], (q) => E.scale(q[0], g.length, s)),
    sgd: (p: Float64Array, g: Float64Array, lr: number) => viaCopies([p, g], [true, false], (q) => E.sgd(q[0], q[1], p.length, lr)),
    momentum: (p: Float64Array, g: Float64Array, v: Float64Array, lr: number, mu: number) =>
      viaCopies([p, g, v], [true, false, true], (q) => E.momentum(q[0], q[1], q[2], p.length, lr, mu)),
    adam: (p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, stepSize: number, beta1: number, beta2: number, c2: number, epsilon: number) =>
      viaCopies([p, g, m, v], [true, false, true, true], (q) => E.adam(q[0], q[1], q[2], q[3], p.length, stepSize, beta1, beta2, c2, epsilon)),
    rmsprop: (p: Float64Array, g: Float64Array, v: Float64Array, lr: number, alpha: number, epsilon: number) =>
      viaCopies([p, g, v], [true, false, true], (q) => E.rmsprop(q[0], q[1], q[2], p.length, lr, alpha, epsilon)),
    adagrad: (p: Float64Array, g: Float64Array, s: Float64Array, lr: number, epsilon: number) =>
      viaCopies([p, g, s], [true, false, true], (q) => E.adagrad(q[0], q[1], q[2], p.length, lr, epsilon)),
  };

  /** Shared by both precisions: everything but the matrix products. */
  const common = {
    allocate: (length: number) => arena.allocate(length),

    activate(kind: Activation, z: Float64Array, a: Float64Array, rows: number, m: number): void {
      if (!inWasm(kind)) { jsKernels.activate(kind, z, a, rows, m); return; }
      const len = rows * m;
      need(z, len, 'z'); need(a, len, 'a');
      if (own(z) && own(a)) E.activate(codes[kind], z.byteOffset, a.byteOffset, len);
      else copied.activate(kind, z, a, len);
    },

    activationBackward(kind: Activation, z: Float64Array, a: Float64Array, d: Float64Array, rows: number, m: number): void {
      if (kind === 'linear') return;
      const len = rows * m;
      need(z, len, 'z'); need(a, len, 'a'); need(d, len, 'delta');
      if (own(z) && own(a) && own(d)) E.activationBackward(codes[kind], z.byteOffset, a.byteOffset, d.byteOffset, rows, m);
      else copied.activationBackward(kind, z, a, d, rows, m);
    },

    sumOfSquares(g: Float64Array): number {
      return own(g) ? E.sumOfSquares(g.byteOffset, g.length) : copied.sumOfSquares(g);
    },

    scale(g: Float64Array, s: number): void {
      if (own(g)) E.scale(g.byteOffset, g.length, s);
      else copied.scale(g, s);
    },

    sgd(p: Float64Array, g: Float64Array, lr: number): void {
      const len = p.length;
      need(g, len, 'g');
      if (own(p) && own(g)) E.sgd(p.byteOffset, g.byteOffset, len, lr);
      else copied.sgd(p, g, lr);
    },

    momentum(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, mu: number): void {
      const len = p.length;
      need(g, len, 'g'); need(v, len, 'v');
      if (own(p) && own(g) && own(v)) E.momentum(p.byteOffset, g.byteOffset, v.byteOffset, len, lr, mu);
      else copied.momentum(p, g, v, lr, mu);
    },

    adam(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array,
      stepSize: number, beta1: number, beta2: number, c2: number, epsilon: number): void {
      const len = p.length;
      need(g, len, 'g'); need(m, len, 'm'); need(v, len, 'v');
      if (own(p) && own(g) && own(m) && own(v)) E.adam(p.byteOffset, g.byteOffset, m.byteOffset, v.byteOffset, len, stepSize, beta1, beta2, c2, epsilon);
      else copied.adam(p, g, m, v, stepSize, beta1, beta2, c2, epsilon);
    },

    rmsprop(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, alpha: number, epsilon: number): void {
      const len = p.length;
      need(g, len, 'g'); need(v, len, 'v');
      if (own(p) && own(g) && own(v)) E.rmsprop(p.byteOffset, g.byteOffset, v.byteOffset, len, lr, alpha, epsilon);
      else copied.rmsprop(p, g, v, lr, alpha, epsilon);
    },

    adagrad(p: Float64Array, g: Float64Array, s: Float64Array, lr: number, epsilon: number): void {
      const len = p.length;
      need(g, len, 'g'); need(s, len, 's');
      if (own(p) && own(g) && own(s)) E.adagrad(p.byteOffset, g.byteOffset, s.byteOffset, len, lr, epsilon);
      else copied.adagrad(p, g, s, lr, epsilon);
    },
  };

  /** The matrix products and the fused passes of one precision. */
  const precision = (f32: boolean): Omit<Kernels, keyof typeof common | 'name'> => {
    const forward = f32 ? E.denseForward32 : E.denseForward;
    const backward = f32 ? E.denseBackward32 : E.denseBackward;
    const forwardScratch = f32 ? (n: number, m: number) => align16(4 * m * n) + 32 * n : (n: number) => 32 * n;
    const backwardScratch = f32 ? (rows: number, n: number, m: number) => align16(4 * rows * n) + align16(4 * rows * m) + 4 * m * n
      : (_rows: number, _n: number, m: number) => 4 * m;

    /** z = x·Wᵀ + b, and a = f(z) in the same pass when `act` is not NONE. */
    const dense = (act: number, x: Float64Array, W: Float64Array, b: Float64Array, z: Float64Array, a: Float64Array,
      rows: number, n: number, m: number): void => {
      need(x, rows * n, 'x'); need(W, m * n, 'W'); need(b, m, 'b'); need(z, rows * m, 'z'); need(a, rows * m, 'a');
      const s = scratch(forwardScratch(n, m));
      if (own(x) && own(W) && own(b) && own(z) && own(a)) forward(x.byteOffset, W.byteOffset, b.byteOffset, z.byteOffset, a.byteOffset, rows, n, m, act, s);
      else copiedDense(act, x, W, b, z, a, rows, n, m, s);
    };
    const copiedDense = (act: number, x: Float64Array, W: Float64Array, b: Float64Array, z: Float64Array, a: Float64Array,
      rows: number, n: number, m: number, s: number): void =>
      viaCopies([x, W, b, z, a], [false, false, false, true, act !== NONE], (q) => forward(q[0], q[1], q[2], q[3], q[4], rows, n, m, act, s));
    const denseForward = (x: Float64Array, W: Float64Array, b: Float64Array, z: Float64Array, rows: number, n: number, m: number): void =>
      dense(NONE, x, W, b, z, z, rows, n, m);
    const denseBackward = (x: Float64Array, delta: Float64Array, W: Float64Array, gW: Float64Array, gb: Float64Array,
      dx: Float64Array | null, rows: number, n: number, m: number): void => {
      need(x, rows * n, 'x'); need(delta, rows * m, 'delta'); need(W, m * n, 'W'); need(gW, m * n, 'gW'); need(gb, m, 'gb');
      if (dx !== null) need(dx, rows * n, 'dx');
      const s = scratch(backwardScratch(rows, n, m));
      if (own(x) && own(delta) && own(W) && own(gW) && own(gb) && (dx === null || own(dx))) {
        backward(x.byteOffset, delta.byteOffset, W.byteOffset, gW.byteOffset, gb.byteOffset, dx === null ? 0 : dx.byteOffset, rows, n, m, s, 0);
      } else {
        copiedDenseBackward(x, delta, W, gW, gb, dx, rows, n, m, s);
      }
    };
    const copiedDenseBackward = (x: Float64Array, delta: Float64Array, W: Float64Array, gW: Float64Array, gb: Float64Array,
      dx: Float64Array | null, rows: number, n: number, m: number, s: number): void =>
      viaCopies([x, delta, W, gW, gb, dx], [false, false, false, true, true, true], (q) => backward(q[0], q[1], q[2], q[3], q[4], q[5], rows, n, m, s, 0));
    const checkRows = (ws: Workspace, rows: number): void => {
      if (!(rows >= 0 && rows <= ws.capacity)) throw new RangeError(`a pass over ${rows} rows, the workspace holds ${ws.capacity}`);
    };

    return {
      denseForward,
      denseBackward,

      forwardPass(model: Model, ws: Workspace, rows: number, input: Float64Array): void {
        checkRows(ws, rows);
        const plan = planFor(model, ws);
        if (plan.table !== null && (input === ws.x || own(input))) {
          if (input !== ws.x) need(input, rows * model.inputSize, 'input');
          const xAt = input === ws.x ? plan.xAt : input.byteOffset;
          E.forwardNet(plan.at, rows, xAt, scratch(f32 ? plan.forward32 : plan.forward64), f32 ? 1 : 0);
          return;
        }
        const layers = model.layers;
        for (let l = 0; l < layers.length; l++) {
          const layer = layers[l], z = ws.z[l], a = ws.a[l], x = l === 0 ? input : ws.a[l - 1];
          if (inWasm(layer.activation)) {
            dense(codes[layer.activation], x, layer.weights, layer.bias, z, a, rows, layer.inputs, layer.outputs);
          } else {
            denseForward(x, layer.weights, layer.bias, z, rows, layer.inputs, layer.outputs);
            jsKernels.activate(layer.activation, z, a, rows, layer.outputs);
          }
        }
      },

      backwardPass(model: Model, ws: Workspace, rows: number): void {
        checkRows(ws, rows);
        const plan = planFor(model, ws);
        if (plan.table !== null) {
          const bytes = f32 ? plan.backward32Fixed + rows * plan.backward32PerRow : plan.backward64;
          E.backwardNet(plan.at, rows, plan.xAt, scratch(bytes), f32 ? 1 : 0);
          return;
        }
        const layers = model.layers;
        ws.grads.fill(0);
        for (let l = layers.length - 1; l >= 0; l--) {
          const layer = layers[l];
          const dx = l === 0 ? null : ws.delta[l - 1];
          denseBackward(l === 0 ? ws.x : ws.a[l - 1], ws.delta[l], layer.weights, ws.gradWeights[l], ws.gradBias[l], dx,
            rows, layer.inputs, layer.outputs);
          if (dx !== null) {
            const below = layers[l - 1];
            common.activationBackward(below.activation, ws.z[l - 1], ws.a[l - 1], dx, rows, below.outputs);
          }
        }
      },
    };
  };

  const f64: Kernels = { name: 'wasm', ...common, ...precision(false) };
  const f32: Kernels = { name: 'wasm-f32', ...common, ...precision(true) };

  return {
    memory,
    kernels: { f64, f32 },
    owns: (a) => arena.owns(a),
    stats: () => ({
      shared, memoryBytes: memory.buffer.byteLength, allocatedBytes: arena.allocatedBytes, liveBlocks: arena.liveBlocks,
      grows: arena.grows, copies: arena.copies,
    }),
  };
}
