/**
 * The WebAssembly backend (core/kernels-wasm.ts, assembly/): the shared kernel suite
 * (test/helpers/kernel-suite.ts) with wasm's own bar — every kernel bitwise against the
 * JavaScript backend over shapes that walk every tile and remainder path, the fused
 * network passes bitwise, the PyTorch fixtures through `wasm` (1e-9, and bitwise the `js`
 * replay, with zero copies) and through `wasm-f32` (its documented tolerance), the command
 * line; then what only wasm has: the memory rules (views survive growth, nothing allocated
 * per step, foreign arrays through counted copies, size checks, fixed-size unshared memory,
 * collected arrays come back), backend selection, and the browser bundle.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { defaultKernels, resolveKernels, selectKernels } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import { initialize } from '../core/init.ts';
import { jsKernels } from '../core/kernels-js.ts';
import { createWasmRuntime, instantiateWasmRuntime, processWasmRuntime, wasmKernels, type WasmRuntime } from '../core/kernels-wasm.ts';
import type { Kernels } from '../core/kernels.ts';
import { nativeSupported } from '../core/kernels-native.ts';
import { cloneModel, createModel } from '../core/model.ts';
import { Rng } from '../core/rng.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { randArray, runTrain } from './helpers/math.ts';
import { checkProducts, expectSameBits, kernelSuite, shapes } from './helpers/kernel-suite.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rt: WasmRuntime = createWasmRuntime();
const W = rt.kernels.f64;
const W32 = rt.kernels.f32;

/** A copy of `values` in the runtime's memory. */
function inWasm(values: Float64Array, kernels: Kernels = W): Float64Array {
  const a = kernels.allocate(values.length);
  a.set(values);
  return a;
}

const SHAPES = shapes([1, 2, 3, 4, 5, 7, 8, 9, 13], [[64, 64, 32], [32, 16, 64], [17, 33, 13], [64, 256, 10]]);

describe('wasm products', () => {
  it(`denseForward and denseBackward are bitwise the JavaScript kernels over ${SHAPES.length} shapes (rows 1..9 × n 1..9 × m, and wide ones)`, () => {
    checkProducts(W, inWasm, 'wasm', 'bitwise', SHAPES, 1);
  });

  it('wasm-f32 products agree with float64 to float32 accuracy on the same shapes (every tile and remainder path)', () => {
    checkProducts(W32, inWasm, 'wasm-f32', { u: 2 ** -24 }, SHAPES, 6);
  });
});

kernelSuite({ name: 'wasm', f64: W, f32: W32, place: inWasm, exact: true, passSizes: { units: 12, inputs: 11, rows: 9 }, copies: () => rt.stats().copies });

// ---------------------------------------------------------------------------------------

describe('WebAssembly memory', () => {
  it('views stay valid while many models and trainers are created and the memory grows', () => {
    const local = createWasmRuntime({ memoryBytes: 1 << 20 });
    const K = local.kernels.f64;
    const topology = { inputSize: 6, layers: [{ units: 16, activation: 'relu' as const }, { units: 2, activation: 'linear' as const }] };
    const first = initialize(createModel(topology, K), 'he', 1);
    const snapshot = first.params.slice();
    const firstTrainer = createTrainer({ model: first, loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 }, kernels: K });
    const keep: Trainer[] = [];
    for (let i = 0; i < 60; i++) {
      const big = initialize(createModel({ inputSize: 64, layers: [{ units: 256, activation: 'relu' }, { units: 10, activation: 'softmax' }] }, K), 'he', i);
      keep.push(createTrainer({ model: big, loss: 'cross_entropy', optimizer: { type: 'momentum', learningRate: 0.01 }, kernels: K }));
    }
    const stats = local.stats();
    expect(stats.grows).toBeGreaterThan(2);
    expect(stats.memoryBytes).toBeGreaterThan(60 * 8 * 16_000);
    // the first model's arrays were made before every growth and still view its memory
    expect(first.params.length).toBe(snapshot.length);
    expect(first.params.byteLength).toBe(snapshot.length * 8);
    expectSameBits(first.params, snapshot, 'params after growth');
    expect(local.owns(first.params) && local.owns(firstTrainer.workspace.grads)).toBe(true);
    // and training it still works in place, bitwise as the js backend
    const twin = createTrainer({ model: cloneModel(first, jsKernels), loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 }, kernels: jsKernels });
    const samples = Array.from({ length: 50 }, (_, i) => ({ x: [1, 2, 3, 4, 5, 6].map((v) => Math.sin(v * i)), y: [Math.cos(i), i % 3] }));
    runTrain(firstTrainer, samples, { batch: 4 });
    runTrain(twin, samples, { batch: 4 });
    expectSameBits(first.params, twin.model.params, 'trained after growth');
    for (const t of keep) expect(t.model.params.byteLength).toBe(t.model.params.length * 8);
    expect(local.stats().copies).toBe(0);
  });

  it('allocates nothing per step: 10,000 steps leave the memory and the live blocks as they were after the first', () => {
    const local = createWasmRuntime();
    for (const kernels of [local.kernels.f64, local.kernels.f32]) {
      const model = initialize(createModel({ inputSize: 8, layers: [{ units: 32, activation: 'relu' }, { units: 32, activation: 'tanh' }, { units: 1, activation: 'linear' }] }, kernels), 'he', 3);
      const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 }, kernels });
      const rng = new Rng(8);
      const samples = Array.from({ length: 10_001 }, () => { const x = Array.from(randArray(rng, 8)); return { x, y: [x[0] * x[1]] }; });
      runTrain(trainer, samples.slice(0, 1));
      const before = local.stats();
      runTrain(trainer, samples.slice(1));
      const after = local.stats();
      expect(trainer.counters.steps).toBe(10_001);
      expect(after.memoryBytes).toBe(before.memoryBytes);
      expect(after.grows).toBe(before.grows);
      expect(after.allocatedBytes).toBeLessThanOrEqual(before.allocatedBytes);
      expect(after.copies).toBe(0);
    }
  });

  it('takes arrays from outside its memory through copies (counted), with the same bits', () => {
    const local = createWasmRuntime();
    const K = local.kernels.f64;
    const rng = new Rng(9);
    const [rows, n, m] = [5, 7, 3];
    const x = randArray(rng, rows * n), Wt = randArray(rng, m * n), b = randArray(rng, m);
    const z = new Float64Array(rows * m), zJ = new Float64Array(rows * m);
    K.denseForward(x, Wt, b, z, rows, n, m);
    jsKernels.denseForward(x, Wt, b, zJ, rows, n, m);
    expectSameBits(z, zJ, 'z through copies');
    expect(local.stats().copies).toBe(1);
    // a whole trainer on a JS-heap model: correct, only slower
    const model = initialize(createModel({ inputSize: 3, layers: [{ units: 4, activation: 'tanh' }, { units: 1, activation: 'linear' }] }, jsKernels), 'pytorch', 2);
    const twin = cloneModel(model, jsKernels);
    const samples = Array.from({ length: 20 }, (_, i) => ({ x: [i / 20, Math.sin(i), 1], y: [i % 2] }));
    runTrain(createTrainer({ model, loss: 'mse', optimizer: { type: 'momentum', learningRate: 0.1 }, kernels: K }), samples, { batch: 3 });
    runTrain(createTrainer({ model: twin, loss: 'mse', optimizer: { type: 'momentum', learningRate: 0.1 }, kernels: jsKernels }), samples, { batch: 3 });
    expectSameBits(model.params, twin.params, 'trained through copies');
    expect(local.stats().copies).toBeGreaterThan(20);
    const live = local.stats().allocatedBytes;
    K.sgd(new Float64Array(100), new Float64Array(100), 0.1);
    expect(local.stats().allocatedBytes).toBe(live); // the staging blocks went back
  });

  it('refuses shapes its arrays cannot hold (a RangeError, never a write into another array)', () => {
    const a = W.allocate(6), b = W.allocate(2), z = W.allocate(4), guard = W.allocate(8).fill(1);
    expect(() => W.denseForward(a, W.allocate(6), b, z, 3, 2, 2)).toThrow(RangeError); // z needs 6
    expect(() => W.denseBackward(a, z, W.allocate(3), W.allocate(6), b, null, 2, 3, 2)).toThrow(RangeError); // W needs 6
    expect(() => W.sgd(W.allocate(10), b, 0.1)).toThrow(RangeError);
    expect(Array.from(guard)).toEqual(new Array(8).fill(1));
  });

  it('an unshared memory (pages without cross-origin isolation) has a fixed size: running out is SG_ERR_CONFIG, earlier views intact', () => {
    const local = createWasmRuntime({ shared: false, memoryBytes: 1 << 20 });
    expect(local.stats().shared).toBe(false);
    const keep = local.kernels.f64.allocate(1000).fill(2.5);
    let error: unknown;
    try {
      for (let i = 0; i < 100; i++) local.kernels.f64.allocate(100_000);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StreamgradError);
    expect((error as StreamgradError).code).toBe('SG_ERR_CONFIG');
    expect((error as StreamgradError).field).toBe('backend');
    expect(keep.length).toBe(1000);
    expect(keep.every((v) => v === 2.5)).toBe(true);
    expect(local.stats().memoryBytes).toBe(1 << 20);
  });

  it('gives the memory of garbage-collected arrays back and reuses it (node --expose-gc)', async () => {
    const script = `
      import { createWasmRuntime } from './core/kernels-wasm.ts';
      const rt = createWasmRuntime({ memoryBytes: 1 << 20 });
      const K = rt.kernels.f64;
      const keep = K.allocate(1000).fill(1);
      const base = rt.stats().allocatedBytes;
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 20; i++) K.allocate(10_000);
        await new Promise((r) => setTimeout(r, 0));
        globalThis.gc();
      }
      await new Promise((r) => setTimeout(r, 10));
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
      const s = rt.stats();
      console.log(JSON.stringify({ base, after: s.allocatedBytes, memory: s.memoryBytes, ok: keep.every((v) => v === 1) }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx/esm', '--input-type=module', '-e', script], { cwd: root });
    const r = JSON.parse(stdout.trim()) as { base: number; after: number; memory: number; ok: boolean };
    expect(r.ok).toBe(true);
    // 600 arrays of 80 kB were made; without reuse the memory would hold 48 MB
    expect(r.memory).toBeLessThan(16 << 20);
    expect(r.after).toBeLessThan(r.base + 20 * 80_064 + 1);
  });
});

// ---------------------------------------------------------------------------------------

describe('backend selection', () => {
  it('selectKernels: js, wasm, wasm-f32, auto (native where the addon loads, else wasm where SIMD is), and SG_ERR_CONFIG for anything else', () => {
    expect(selectKernels('js')).toBe(jsKernels);
    expect(selectKernels('wasm')).toBe(wasmKernels('f64'));
    expect(selectKernels('wasm').name).toBe('wasm');
    expect(selectKernels('wasm-f32').name).toBe('wasm-f32');
    expect(selectKernels('auto').name).toBe(nativeSupported() ? 'native' : 'wasm'); // Node 20 has WebAssembly SIMD
    expect(() => selectKernels('gpu' as never)).toThrow(StreamgradError);
    expect(resolveKernels('js')).toBe(jsKernels);
    expect(resolveKernels(W)).toBe(W);
  });

  it('the default backend is STREAMGRAD_BACKEND when set, else auto; createModel and createTrainer use it', () => {
    const env = process.env.STREAMGRAD_BACKEND;
    const expected = env === undefined || env === '' || env === 'auto' ? (nativeSupported() ? 'native' : 'wasm') : env;
    expect(defaultKernels().name).toBe(expected);
    const model = createModel({ inputSize: 2, layers: [{ units: 1, activation: 'linear' }] });
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 } });
    expect(trainer.kernels).toBe(defaultKernels());
    expect(processWasmRuntime()?.owns(model.params) ?? false).toBe(expected.startsWith('wasm')); // js, native: ArrayBuffers of their own
  });

  it('createTrainer takes a choice by name and refuses an unknown one', () => {
    const model = createModel({ inputSize: 2, layers: [{ units: 1, activation: 'linear' }] }, wasmKernels('f32'));
    expect(createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 }, kernels: 'wasm-f32' }).kernels.name).toBe('wasm-f32');
    expect(() => createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 }, kernels: 'fast' as never })).toThrow(/backend/);
  });

  it('the async loader gives a working runtime (what a browser uses)', async () => {
    const local = await instantiateWasmRuntime();
    const a = local.kernels.f64.allocate(4).fill(2);
    expect(local.kernels.f64.sumOfSquares(a)).toBe(16);
  });
});

describe('in a browser bundle', () => {
  it('core/backend.ts bundles for the browser (no Node APIs) and runs where there is no require, process or fs', async () => {
    const esbuild = await import('esbuild');
    const out = await esbuild.build({
      entryPoints: [resolve(root, 'core/backend.ts')], bundle: true, write: false, platform: 'browser', format: 'iife',
      globalName: 'streamgrad', target: 'es2022', logLevel: 'silent',
    });
    const code = out.outputFiles[0].text;
    expect(code).not.toMatch(/require\(|node:/);
    // a fresh V8 context: JavaScript builtins and WebAssembly, plus what every browser has (atob)
    const context = { atob, console, result: null as unknown };
    runInNewContext(`${code}
      result = (async () => {
        const k = await streamgrad.loadKernels('wasm');
        const js = await streamgrad.loadKernels('js');
        const x = k.allocate(6), W = k.allocate(6), b = k.allocate(2), z = k.allocate(6);
        x.set([1, 2, 3, 4, 5, 6]); W.set([0.5, -1, 2, 0.25, 1, -3]); b.set([0.1, -0.2]);
        k.denseForward(x, W, b, z, 3, 2, 2);
        const zj = new Float64Array(6);
        js.denseForward(x, W, b, zj, 3, 2, 2);
        return { name: k.name, z: Array.from(z), zj: Array.from(zj), hasProcess: typeof process !== 'undefined', hasRequire: typeof require !== 'undefined' };
      })();`, context);
    const r = (await context.result) as { name: string; z: number[]; zj: number[]; hasProcess: boolean; hasRequire: boolean };
    expect(r.hasProcess || r.hasRequire).toBe(false);
    expect(r.name).toBe('wasm');
    expect(r.z).toEqual(r.zj);
  });
});
