/**
 * The WebAssembly backend (core/kernels-wasm.ts, assembly/): every kernel bitwise
 * against the JavaScript backend over shapes that walk every tile and remainder path,
 * the fused network passes, the PyTorch fixtures through `wasm` (1e-9, and bitwise the
 * `js` replay) and through `wasm-f32` (its documented tolerance), the memory rules (views
 * survive growth, nothing allocated per step, foreign arrays through counted copies, size
 * checks, fixed-size unshared memory, collected arrays come back), backend selection, and
 * the browser bundle.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runInNewContext } from 'node:vm';
import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { backward } from '../operators/backward.ts';
import { batch } from '../operators/batch.ts';
import { forward } from '../operators/forward.ts';
import { loss } from '../operators/loss.ts';
import { update } from '../operators/update.ts';
import { type Activation, ACTIVATIONS } from '../core/activations.ts';
import { defaultKernels, resolveKernels, selectKernels } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import { initialize } from '../core/init.ts';
import { jsKernels } from '../core/kernels-js.ts';
import {
  createWasmRuntime, F32_LONG_RUN_TOLERANCE, F32_TOLERANCE, instantiateWasmRuntime, processWasmRuntime, wasmKernels, type WasmRuntime,
} from '../core/kernels-wasm.ts';
import type { Kernels } from '../core/kernels.ts';
import { lossGradient } from '../core/losses.ts';
import { nativeSupported } from '../core/kernels-native.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { cloneModel, createModel, type LayerSpec, type Model } from '../core/model.ts';
import { backwardPass, forwardPass } from '../core/network.ts';
import { Rng } from '../core/rng.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { createWorkspace } from '../core/workspace.ts';
import { randArray, randInt, runTrain } from './helpers/math.ts';
import { expectClose, expectModelClose, type Fixture, loadFixtures, scaledError } from './helpers/reference.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rt: WasmRuntime = createWasmRuntime();
const W = rt.kernels.f64;
const W32 = rt.kernels.f32;

/** Exactly the bytes an array views. */
const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
function expectSameBits(actual: Float64Array, expected: Float64Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  if (!bytes(actual).equals(bytes(expected))) {
    const i = actual.findIndex((v, q) => !Object.is(v, expected[q]));
    throw new Error(`${what}: not bitwise equal, first at [${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** A copy of `values` in the runtime's memory. */
function inWasm(values: Float64Array, kernels: Kernels = W): Float64Array {
  const a = kernels.allocate(values.length);
  a.set(values);
  return a;
}

/** Random deltas with many exact zeros (dead rows, dead neurons), as the skip paths need. */
function sparseDeltas(rng: Rng, rows: number, m: number): Float64Array {
  const d = randArray(rng, rows * m, -2, 2);
  for (let q = 0; q < d.length; q++) if (rng.next() < 0.3) d[q] = 0;
  if (rows > 1 && rng.next() < 0.5) d.fill(0, (rows - 1) * m, rows * m);
  const j = randInt(rng, 0, m - 1);
  if (rng.next() < 0.5) for (let r = 0; r < Math.min(rows, 4); r++) d[r * m + j] = 0;
  return d;
}

const SHAPES: [number, number, number][] = [];
for (let rows = 1; rows <= 9; rows++) for (let n = 1; n <= 9; n++) for (const m of [1, 2, 3, 4, 5, 7, 8, 9, 13]) SHAPES.push([rows, n, m]);
SHAPES.push([64, 64, 32], [32, 16, 64], [17, 33, 13], [64, 256, 10]);

describe('wasm kernels are bitwise the JavaScript kernels', () => {
  it(`denseForward and the fused forward with every activation, over ${SHAPES.length} shapes (rows 1..9 × n 1..9 × m, and wide ones)`, () => {
    const rng = new Rng(1);
    for (const [rows, n, m] of SHAPES) {
      const x = randArray(rng, rows * n, -2, 2), Wt = randArray(rng, m * n), b = randArray(rng, m);
      const zJ = new Float64Array(rows * m);
      jsKernels.denseForward(x, Wt, b, zJ, rows, n, m);
      const z = W.allocate(rows * m + 3).fill(7);
      W.denseForward(inWasm(x), inWasm(Wt), inWasm(b), z, rows, n, m);
      expectSameBits(z.subarray(0, rows * m), zJ, `z rows=${rows} n=${n} m=${m}`);
      expect(Array.from(z.subarray(rows * m))).toEqual([7, 7, 7]); // nothing written past the rows
    }
  });

  it('denseBackward (gb, gW with the all-zero skips, dx over non-zero deltas), with and without dx, accumulating', () => {
    const rng = new Rng(2);
    for (const [rows, n, m] of SHAPES) {
      const x = randArray(rng, rows * n, -2, 2), d = sparseDeltas(rng, rows, m), Wt = randArray(rng, m * n);
      const gW0 = randArray(rng, m * n), gb0 = randArray(rng, m);
      for (const withDx of [true, false]) {
        const gWJ = gW0.slice(), gbJ = gb0.slice(), dxJ = withDx ? new Float64Array(rows * n).fill(3) : null;
        jsKernels.denseBackward(x, d, Wt, gWJ, gbJ, dxJ, rows, n, m);
        const gWW = inWasm(gW0), gbW = inWasm(gb0), dxW = withDx ? inWasm(new Float64Array(rows * n).fill(3)) : null;
        W.denseBackward(inWasm(x), inWasm(d), inWasm(Wt), gWW, gbW, dxW, rows, n, m);
        const at = `rows=${rows} n=${n} m=${m} dx=${withDx}`;
        expectSameBits(gWW, gWJ, `gW ${at}`);
        expectSameBits(gbW, gbJ, `gb ${at}`);
        if (dxJ !== null) expectSameBits(dxW!, dxJ, `dx ${at}`);
      }
    }
  });

  it('activate and activationBackward for every activation, odd and even lengths, zeros and negatives', () => {
    const rng = new Rng(3);
    for (const kind of ACTIVATIONS) {
      for (const [rows, m] of [[1, 1], [1, 2], [3, 5], [4, 4], [7, 9], [2, 33]]) {
        const z = randArray(rng, rows * m, -3, 3);
        z[0] = 0; if (z.length > 2) z[2] = -0;
        const aJ = new Float64Array(rows * m), aW = W.allocate(rows * m);
        jsKernels.activate(kind, z, aJ, rows, m);
        W.activate(kind, inWasm(z), aW, rows, m);
        expectSameBits(aW, aJ, `${kind} a ${rows}×${m}`);
        const d = randArray(rng, rows * m, -2, 2);
        const dJ = d.slice(), dW = inWasm(d);
        jsKernels.activationBackward(kind, z, aJ, dJ, rows, m);
        W.activationBackward(kind, inWasm(z), aW, dW, rows, m);
        expectSameBits(dW, dJ, `${kind} delta ${rows}×${m}`);
      }
    }
  });

  it('sumOfSquares, scale and every optimizer rule, lengths 0..17 and 1153', () => {
    const rng = new Rng(4);
    for (const len of [...Array.from({ length: 18 }, (_, i) => i), 1153]) {
      const g = randArray(rng, len, -3, 3), p = randArray(rng, len), m1 = randArray(rng, len), v1 = randArray(rng, len, 0, 1);
      expect(W.sumOfSquares(inWasm(g)), `sumOfSquares ${len}`).toBe(jsKernels.sumOfSquares(g));
      const runs: [string, (k: Kernels, a: Float64Array[]) => void][] = [
        ['scale', (k, [P]) => k.scale(P, -0.37)],
        ['sgd', (k, [P, G]) => k.sgd(P, G, 0.013)],
        ['momentum', (k, [P, G, M]) => k.momentum(P, G, M, 0.05, 0.9)],
        ['adam', (k, [P, G, M, V]) => k.adam(P, G, M, V, 0.01 / (1 - 0.9 ** 3), 0.9, 0.999, Math.sqrt(1 - 0.999 ** 3), 1e-8)],
        ['rmsprop', (k, [P, G, , V]) => k.rmsprop(P, G, V, 0.01, 0.99, 1e-8)],
        ['adagrad', (k, [P, G, , V]) => k.adagrad(P, G, V, 0.1, 1e-10)],
      ];
      for (const [name, run] of runs) {
        const js = [p.slice(), g.slice(), m1.slice(), v1.slice()];
        const wa = [inWasm(p), inWasm(g), inWasm(m1), inWasm(v1)];
        for (let t = 0; t < 3; t++) { run(jsKernels, js); run(W, wa); }
        wa.forEach((a, i) => expectSameBits(a, js[i], `${name} len ${len} array ${i}`));
      }
    }
  });

  it('the fused forwardPass / backwardPass equal network.ts\'s layer-by-layer passes over the JavaScript kernels, every activation', () => {
    const rng = new Rng(5);
    const hidden: Activation[] = ['linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu'];
    for (let trial = 0; trial < 40; trial++) {
      const depth = randInt(rng, 1, 4);
      const layers: LayerSpec[] = [];
      for (let l = 0; l < depth; l++) {
        const last = l === depth - 1;
        layers.push({ units: randInt(rng, 1, 12), activation: last ? (['linear', 'sigmoid', 'softmax', 'tanh'] as const)[trial % 4] : hidden[randInt(rng, 0, hidden.length - 1)] });
      }
      const inputSize = randInt(rng, 1, 11), rows = randInt(rng, 1, 9);
      const topology = { inputSize, layers };
      const mJ = initialize(createModel(topology, jsKernels), 'pytorch', trial), mW = cloneModel(mJ, W);
      const wsJ = createWorkspace(mJ, rows, jsKernels.allocate), wsW = createWorkspace(mW, rows, W.allocate);
      const x = randArray(rng, rows * inputSize, -2, 2), y = randArray(rng, rows * mJ.outputSize);
      wsJ.x.set(x); wsW.x.set(x);
      forwardPass(jsKernels, mJ, wsJ, rows);
      forwardPass(W, mW, wsW, rows);
      const last = depth - 1;
      for (let l = 0; l < depth; l++) {
        expectSameBits(wsW.z[l].subarray(0, rows * layers[l].units), wsJ.z[l].subarray(0, rows * layers[l].units), `trial ${trial} z[${l}]`);
        expectSameBits(wsW.a[l].subarray(0, rows * layers[l].units), wsJ.a[l].subarray(0, rows * layers[l].units), `trial ${trial} a[${l}]`);
      }
      for (const [k, ws] of [[jsKernels, wsJ], [W, wsW]] as const) {
        lossGradient('mse', layers[last].activation, ws.z[last], ws.a[last], y, rows, mJ.outputSize, ws.delta[last], k.activationBackward);
        ws.grads.fill(5); // the pass must zero it
      }
      backwardPass(jsKernels, mJ, wsJ, rows);
      backwardPass(W, mW, wsW, rows);
      expectSameBits(wsW.grads, wsJ.grads, `trial ${trial} grads`);
    }
    expect(rt.stats().copies).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------

const fixtures = loadFixtures();

/** Replays a fixture through the real operators; calls `check` per step with the step and its reference. */
async function replay(fx: Fixture, kernels: Kernels, check: (model: Model, step: { outputs: Float64Array; loss: number; gradients: Float64Array | null }, ref: Fixture['steps'][number], s: number) => void): Promise<Trainer> {
  const model = cloneModel(modelFromJSON(fx.model), kernels);
  const trainer = createTrainer({ model, loss: fx.loss, optimizer: fx.optimizer, kernels });
  let s = 0;
  await new Promise<void>((done, fail) => {
    from(fx.samples).pipe(batch(fx.batchSize), forward(trainer), loss(trainer), backward(trainer), update(trainer)).subscribe({
      next(step) { check(model, step, fx.steps[s], s); s++; },
      error: fail,
      complete: done,
    });
  });
  expect(s).toBe(fx.steps.length);
  return trainer;
}

describe('the PyTorch fixtures through the wasm backend', () => {
  for (const fx of fixtures) {
    it(`${fx.name}: matches the reference to 1e-9 and the js backend bitwise, step by step, with zero copies`, async () => {
      const copies = rt.stats().copies;
      const jsParams: Float64Array[] = [];
      await replay(fx, jsKernels, (model) => { jsParams.push(model.params.slice()); });
      await replay(fx, W, (model, step, ref, s) => {
        const at = `${fx.name} step ${s}`;
        if (ref.outputs) expectClose(step.outputs, ref.outputs.flat(), `${at} outputs`);
        expectClose([step.loss], [ref.loss], `${at} loss`);
        if (ref.gradients) {
          ref.gradients.forEach((rg, l) => {
            const layer = model.layers[l];
            expectClose(step.gradients!.subarray(layer.weightOffset, layer.biasOffset), rg.weights.flat(), `${at} gradients[${l}].weights`);
          });
        }
        expectModelClose(model.layers as never, ref.model, `${at} model`);
        expectSameBits(model.params, jsParams[s], `${at} params vs js`);
      });
      expect(rt.stats().copies).toBe(copies);
    });
  }
});

describe('wasm-f32 (float32 products)', () => {
  it(`stays within its documented tolerance of the reference: outputs and losses ${F32_TOLERANCE} every step, parameters ${F32_TOLERANCE} (${F32_LONG_RUN_TOLERANCE} after 2,000 steps)`, async () => {
    let worstOutputs = 0;
    for (const fx of fixtures) {
      let outputs = 0, params = 0;
      await replay(fx, W32, (model, step, ref) => {
        if (ref.outputs) outputs = Math.max(outputs, scaledError(step.outputs, ref.outputs.flat(), 1));
        outputs = Math.max(outputs, scaledError([step.loss], [ref.loss], 1));
        ref.model.layers.forEach((layer, l) => {
          params = Math.max(params, scaledError(model.layers[l].weights, layer.weights.flat(), 1), scaledError(model.layers[l].bias, layer.bias, 1));
        });
      });
      expect(outputs, `${fx.name}: outputs and losses, worst ${outputs.toExponential(2)}`).toBeLessThanOrEqual(F32_TOLERANCE);
      const tol = fx.steps.length > 100 ? F32_LONG_RUN_TOLERANCE : F32_TOLERANCE;
      expect(params, `${fx.name}: parameters, worst ${params.toExponential(2)}`).toBeLessThanOrEqual(tol);
      worstOutputs = Math.max(worstOutputs, outputs);
    }
    // and it is float32, not float64: the trajectories do differ
    expect(worstOutputs).toBeGreaterThan(1e-9);
  });

  it('its products agree with float64 to float32 accuracy on random shapes (every tile and remainder path)', () => {
    const rng = new Rng(6);
    for (const [rows, n, m] of SHAPES) {
      const x = inWasm(randArray(rng, rows * n, -2, 2)), Wt = inWasm(randArray(rng, m * n)), b = inWasm(randArray(rng, m));
      const z64 = W.allocate(rows * m), z32 = W.allocate(rows * m);
      W.denseForward(x, Wt, b, z64, rows, n, m);
      W32.denseForward(x, Wt, b, z32, rows, n, m);
      // float32 rounding of the operands and of each partial sum: |error| ≤ (terms + 2) · 2⁻²⁴ · Σ|terms|
      const u = 2 ** -24;
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < m; j++) {
          let abs = Math.abs(b[j]);
          for (let k = 0; k < n; k++) abs += Math.abs(x[i * n + k] * Wt[j * n + k]);
          expect(Math.abs(z32[i * m + j] - z64[i * m + j]), `z ${rows}×${n}×${m} [${i}][${j}]`).toBeLessThanOrEqual((n + 3) * u * abs);
        }
      }
      const d = inWasm(sparseDeltas(rng, rows, m));
      const g64 = W.allocate(m * n), gb64 = W.allocate(m), dx64 = W.allocate(rows * n);
      const g32 = W.allocate(m * n), gb32 = W.allocate(m), dx32 = W.allocate(rows * n);
      W.denseBackward(x, d, Wt, g64, gb64, dx64, rows, n, m);
      W32.denseBackward(x, d, Wt, g32, gb32, dx32, rows, n, m);
      expectSameBits(gb32, gb64, `gb ${rows}×${n}×${m} (float64 in both)`);
      for (let j = 0; j < m; j++) {
        for (let k = 0; k < n; k++) {
          let abs = 0;
          for (let i = 0; i < rows; i++) abs += Math.abs(d[i * m + j] * x[i * n + k]);
          expect(Math.abs(g32[j * n + k] - g64[j * n + k]), `gW ${rows}×${n}×${m} [${j}][${k}]`).toBeLessThanOrEqual((rows + 3) * u * abs);
        }
      }
      for (let i = 0; i < rows; i++) {
        for (let k = 0; k < n; k++) {
          let abs = 0;
          for (let j = 0; j < m; j++) abs += Math.abs(d[i * m + j] * Wt[j * n + k]);
          expect(Math.abs(dx32[i * n + k] - dx64[i * n + k]), `dx ${rows}×${n}×${m} [${i}][${k}]`).toBeLessThanOrEqual((m + 3) * u * abs);
        }
      }
    }
  });
});

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

describe('streamgrad train --backend', () => {
  it('js and wasm save the same model bit for bit, wasm-f32 a float32-close one; an unknown backend is a usage error (exit 2)', async () => {
    const { mkdtemp, readFile, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(resolve(tmpdir(), 'sg-backend-'));
    const lines: string[] = [];
    for (let i = 0; i < 200; i++) { const x = [Math.sin(i), Math.cos(0.7 * i), (i % 5) / 5]; lines.push(JSON.stringify({ x, y: [x[0] * x[1] + x[2]] })); }
    await writeFile(resolve(dir, 'data.ndjson'), `${lines.join('\n')}\n`);
    const cli = (backend: string) => promisify(execFile)(process.execPath, ['bin/streamgrad.mjs', 'train', '--data', resolve(dir, 'data.ndjson'),
      '--layers', '3,8:tanh,8:relu,1:linear', '--seed', '3', '--batch', '4', '--optimizer', 'adam', '--backend', backend, '--save', resolve(dir, `${backend}.json`)], { cwd: root });
    await Promise.all([cli('js'), cli('wasm'), cli('wasm-f32')]);
    const [js, wasm, f32] = await Promise.all(['js', 'wasm', 'wasm-f32'].map((b) => readFile(resolve(dir, `${b}.json`), 'utf8')));
    expect(wasm).toBe(js);
    expect(f32).not.toBe(js);
    const flat = (doc: string) => (JSON.parse(doc) as { layers: { weights: number[][]; bias: number[] }[] }).layers.flatMap((l) => [...l.weights.flat(), ...l.bias]);
    expect(scaledError(flat(f32), flat(js), 1)).toBeLessThan(F32_TOLERANCE);
    const bad = await cli('gpu').then(() => null, (e: { code: number; stderr: string }) => e);
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).toMatch(/--backend: unknown value "gpu"; use auto, native, native-f32, wasm, wasm-f32, js/);
  });
});
