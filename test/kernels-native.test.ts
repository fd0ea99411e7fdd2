/**
 * The native backend (pipeline/kernels-native.ts, native/): its products against the
 * JavaScript backend to a few float64 ulps (fused multiply-adds and its own summation
 * order) on every instruction set this CPU has, with and without the helper thread; its
 * elementwise kernels bitwise; the fused passes; the PyTorch fixtures at 1e-9 (`native`)
 * and at wasm-f32's tolerance (`native-f32`); in-place work on arrays from anywhere; size
 * checks; the helper thread (deterministic, never for batch 1); backend selection, the
 * fallback note, and the command line.
 *
 * `npm test` builds the addon first (`pretest` → native/build.mjs); these tests require it,
 * as CI runs on machines with node-gyp, make and a C compiler.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { from } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { backward } from '../operators/backward.ts';
import { batch } from '../operators/batch.ts';
import { forward } from '../operators/forward.ts';
import { loss } from '../operators/loss.ts';
import { update } from '../operators/update.ts';
import { type Activation, ACTIVATIONS } from '../core/activations.ts';
import { selectKernels } from '../core/backend.ts';
import { initialize } from '../core/init.ts';
import { jsKernels } from '../core/kernels-js.ts';
import { nativeInfo, nativeKernels, nativeStatus, setNativeIsa, setNativeParallel } from '../core/kernels-native.ts';
import { F32_LONG_RUN_TOLERANCE, F32_TOLERANCE, wasmKernels } from '../core/kernels-wasm.ts';
import type { Kernels } from '../core/kernels.ts';
import { lossGradient } from '../core/losses.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { cloneModel, createModel, type LayerSpec, type Model } from '../core/model.ts';
import { backwardPass, forwardPass } from '../core/network.ts';
import { Rng } from '../core/rng.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { createWorkspace } from '../core/workspace.ts';
import { randArray, randInt } from './helpers/math.ts';
import { expectClose, expectModelClose, type Fixture, loadFixtures, scaledError } from './helpers/reference.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const status = nativeStatus();
if (!status.available) throw new Error(`the native addon is needed by these tests: ${status.reason} (npm run build:native)`);
const N = nativeKernels('f64');
const N32 = nativeKernels('f32');
const best = nativeInfo().bestIsa;
/** The instruction sets this CPU runs, best first. */
const ISAS = ['avx512', 'avx2', 'sse2'].slice(['avx512', 'avx2', 'sse2'].indexOf(best));
const defaultFlops = nativeInfo().parallelFlops;

afterEach(() => {
  setNativeIsa(best);
  setNativeParallel(2, defaultFlops);
});

const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
function expectSameBits(actual: Float64Array, expected: Float64Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  if (!bytes(actual).equals(bytes(expected))) {
    const i = actual.findIndex((v, q) => !Object.is(v, expected[q]));
    throw new Error(`${what}: not bitwise equal, first at [${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/**
 * |native − js| ≤ (terms + 2) · 2⁻⁵² · Σ|terms| per element: the bound of any summation
 * order, with or without fused multiply-adds. `abs(i)` is element i's Σ|terms|.
 */
function expectWithinRounding(actual: Float64Array, expected: Float64Array, terms: number, abs: (i: number) => number, what: string, u = 2 ** -52): void {
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= (terms + 2) * u * abs(i))) throw new Error(`${what} [${i}]: ${actual[i]} vs ${expected[i]} (error ${err}, bound ${(terms + 2) * u * abs(i)})`);
  }
}

const SHAPES: [number, number, number][] = [];
for (let rows = 1; rows <= 9; rows++) for (let n = 1; n <= 9; n++) for (const m of [1, 2, 3, 5, 8, 9, 13, 17, 33]) SHAPES.push([rows, n, m]);
SHAPES.push([64, 64, 32], [32, 16, 64], [17, 33, 13], [64, 256, 10], [13, 70, 100], [64, 256, 256], [3, 40, 300]);

/** Every product of `kernels` against js over SHAPES, within float64 (or float32) rounding. */
function checkProducts(kernels: Kernels, label: string, u: number): void {
  const rng = new Rng(11);
  for (const [rows, n, m] of SHAPES) {
    const at = `${label} ${rows}×${n}×${m}`;
    const x = randArray(rng, rows * n, -2, 2), Wt = randArray(rng, m * n), b = randArray(rng, m), d = randArray(rng, rows * m, -2, 2);
    const zJ = new Float64Array(rows * m), z = new Float64Array(rows * m + 3).fill(7);
    jsKernels.denseForward(x, Wt, b, zJ, rows, n, m);
    kernels.denseForward(x, Wt, b, z, rows, n, m);
    expectWithinRounding(z, zJ, n + 1, (q) => {
      const i = Math.floor(q / m), j = q % m;
      let s = Math.abs(b[j]);
      for (let k = 0; k < n; k++) s += Math.abs(x[i * n + k] * Wt[j * n + k]);
      return s;
    }, `z ${at}`, u);
    expect(Array.from(z.subarray(rows * m)), `z ${at}: nothing written past the rows`).toEqual([7, 7, 7]);
    const gW0 = randArray(rng, m * n), gb0 = randArray(rng, m);
    const gWJ = gW0.slice(), gbJ = gb0.slice(), dxJ = new Float64Array(rows * n);
    const gWN = gW0.slice(), gbN = gb0.slice(), dxN = new Float64Array(rows * n + 2).fill(7);
    jsKernels.denseBackward(x, d, Wt, gWJ, gbJ, dxJ, rows, n, m);
    kernels.denseBackward(x, d, Wt, gWN, gbN, dxN, rows, n, m);
    expectSameBits(gbN, gbJ, `gb ${at} (float64 sums in the same order)`);
    expectWithinRounding(gWN, gWJ, rows + 1, (q) => {
      const j = Math.floor(q / n), k = q % n;
      let s = Math.abs(gW0[q]);
      for (let i = 0; i < rows; i++) s += Math.abs(d[i * m + j] * x[i * n + k]);
      return s;
    }, `gW ${at}`, u);
    expectWithinRounding(dxN.subarray(0, rows * n), dxJ, m, (q) => {
      const i = Math.floor(q / n), k = q % n;
      let s = 0;
      for (let j = 0; j < m; j++) s += Math.abs(d[i * m + j] * Wt[j * n + k]);
      return s;
    }, `dx ${at}`, u);
    expect(Array.from(dxN.subarray(rows * n)), `dx ${at}: nothing written past the rows`).toEqual([7, 7]);
    const gWn = gW0.slice(), gbn = gb0.slice(), gWj = gW0.slice(), gbj = gb0.slice();
    kernels.denseBackward(x, d, Wt, gWn, gbn, null, rows, n, m);
    jsKernels.denseBackward(x, d, Wt, gWj, gbj, null, rows, n, m);
    expectSameBits(gbn, gbj, `gb without dx ${at}`);
  }
}

describe('native products agree with the JavaScript kernels to float64 rounding', () => {
  for (const isa of ISAS) {
    it(`${isa}: denseForward and denseBackward over ${SHAPES.length} shapes, one thread and split across both`, () => {
      expect(setNativeIsa(isa)).toBe(true);
      expect(nativeInfo().isa).toBe(isa);
      setNativeParallel(1);
      checkProducts(N, `${isa} 1 thread`, 2 ** -52);
      setNativeParallel(2, 0); // every product of ≥ 2 register tiles of rows splits
      const runs = nativeInfo().parallelRuns;
      checkProducts(N, `${isa} 2 threads`, 2 ** -52);
      expect(nativeInfo().parallelRuns).toBeGreaterThan(runs);
    });
  }

  it('native-f32 products agree with float64 to float32 rounding, on every instruction set', () => {
    for (const isa of ISAS) {
      setNativeIsa(isa);
      checkProducts(N32, `${isa} f32`, 2 ** -23);
    }
  });

  it('a CPU without an instruction set cannot be forced onto it; an unknown name is refused', () => {
    expect(setNativeIsa('neon')).toBe(false);
    expect(nativeInfo().isa).toBe(best);
  });
});

describe('native elementwise kernels are bitwise the JavaScript kernels', () => {
  it('activate and activationBackward: ReLU family bitwise; sigmoid, tanh and softmax to libm\'s rounding', () => {
    const rng = new Rng(3);
    for (const kind of ACTIVATIONS) {
      for (const [rows, m] of [[1, 1], [1, 2], [3, 5], [4, 4], [7, 9], [2, 33]]) {
        const z = randArray(rng, rows * m, -3, 3);
        z[0] = 0; if (z.length > 2) z[2] = -0;
        const aJ = new Float64Array(rows * m), aN = new Float64Array(rows * m);
        jsKernels.activate(kind, z, aJ, rows, m);
        N.activate(kind, z, aN, rows, m);
        const exact = !['sigmoid', 'tanh', 'softmax'].includes(kind);
        if (exact) expectSameBits(aN, aJ, `${kind} a ${rows}×${m}`);
        else expectWithinRounding(aN, aJ, 8, (q) => Math.abs(aJ[q]), `${kind} a ${rows}×${m}`);
        const d = randArray(rng, rows * m, -2, 2);
        const dJ = d.slice(), dN = d.slice();
        jsKernels.activationBackward(kind, z, aJ, dJ, rows, m);
        N.activationBackward(kind, z, aJ, dN, rows, m);
        expectSameBits(dN, dJ, `${kind} delta ${rows}×${m}`);
      }
    }
  });

  it('sumOfSquares, scale and every optimizer rule, lengths 0..17 and 1153, on subarrays at odd offsets', () => {
    const rng = new Rng(4);
    for (const len of [...Array.from({ length: 18 }, (_, i) => i), 1153]) {
      const g = randArray(rng, len, -3, 3), p = randArray(rng, len), m1 = randArray(rng, len), v1 = randArray(rng, len, 0, 1);
      const offset = (a: Float64Array) => { const big = new Float64Array(a.length + 3); big.set(a, 1); return big.subarray(1, 1 + a.length); };
      expect(N.sumOfSquares(offset(g)), `sumOfSquares ${len}`).toBe(jsKernels.sumOfSquares(g));
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
        const na = [offset(p), offset(g), offset(m1), offset(v1)];
        for (let t = 0; t < 3; t++) { run(jsKernels, js); run(N, na); }
        na.forEach((a, i) => expectSameBits(a, js[i], `${name} len ${len} array ${i}`));
      }
    }
  });
});

describe('native fused passes', () => {
  it('forwardPass / backwardPass equal network.ts\'s layer-by-layer passes over the JavaScript kernels (to rounding), every activation', () => {
    const rng = new Rng(5);
    const hidden: Activation[] = ['linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu'];
    for (let trial = 0; trial < 40; trial++) {
      const depth = randInt(rng, 1, 4);
      const layers: LayerSpec[] = [];
      for (let l = 0; l < depth; l++) {
        const last = l === depth - 1;
        layers.push({ units: randInt(rng, 1, 40), activation: last ? (['linear', 'sigmoid', 'softmax', 'tanh'] as const)[trial % 4] : hidden[randInt(rng, 0, hidden.length - 1)] });
      }
      const inputSize = randInt(rng, 1, 30), rows = randInt(rng, 1, 20);
      const mJ = initialize(createModel({ inputSize, layers }, jsKernels), 'pytorch', trial), mN = cloneModel(mJ, N);
      const wsJ = createWorkspace(mJ, rows, jsKernels.allocate), wsN = createWorkspace(mN, rows, N.allocate);
      const x = randArray(rng, rows * inputSize, -2, 2), y = randArray(rng, rows * mJ.outputSize);
      wsJ.x.set(x); wsN.x.set(x);
      forwardPass(jsKernels, mJ, wsJ, rows);
      forwardPass(N, mN, wsN, rows);
      const last = depth - 1;
      for (let l = 0; l < depth; l++) expectClose(wsN.a[l].subarray(0, rows * layers[l].units), wsJ.a[l].subarray(0, rows * layers[l].units), `trial ${trial} a[${l}]`);
      for (const [k, ws] of [[jsKernels, wsJ], [N, wsN]] as const) {
        lossGradient('mse', layers[last].activation, ws.z[last], ws.a[last], y, rows, mJ.outputSize, ws.delta[last], k.activationBackward);
        ws.grads.fill(5); // the pass must write every gradient
      }
      backwardPass(jsKernels, mJ, wsJ, rows);
      backwardPass(N, mN, wsN, rows);
      expectClose(wsN.grads, wsJ.grads, `trial ${trial} grads`);
    }
  });

  it('a pass over an input other than the workspace\'s, and over more rows than the workspace holds (RangeError)', () => {
    const model = initialize(createModel({ inputSize: 3, layers: [{ units: 4, activation: 'relu' }, { units: 2, activation: 'linear' }] }, N), 'he', 1);
    const ws = createWorkspace(model, 2, N.allocate), wsJ = createWorkspace(cloneModel(model, jsKernels), 2, jsKernels.allocate);
    const input = new Float64Array([0.5, -1, 2, 1, 1, 1]);
    forwardPass(N, model, ws, 2, input);
    forwardPass(jsKernels, wsJ === null ? model : model, wsJ, 2, input);
    expectClose(ws.a[1].subarray(0, 4), wsJ.a[1].subarray(0, 4), 'output');
    expect(() => N.forwardPass!(model, ws, 3, ws.x)).toThrow(RangeError);
    expect(() => N.forwardPass!(model, ws, 2, new Float64Array(5))).toThrow(/input/);
  });
});

describe('native size and type checks', () => {
  it('refuses arrays too short for the shapes (RangeError, nothing written) and arrays that are not Float64Array (TypeError)', () => {
    const x = new Float64Array(6), W = new Float64Array(6), b = new Float64Array(2), z = new Float64Array(5).fill(3);
    expect(() => N.denseForward(x, W, b, z, 3, 2, 2)).toThrow(/z: 5 values, the shapes need 6/);
    expect(Array.from(z)).toEqual([3, 3, 3, 3, 3]);
    expect(() => N.denseBackward(x, new Float64Array(6), W, new Float64Array(3), b, null, 3, 2, 2)).toThrow(RangeError);
    expect(() => N.sgd(new Float64Array(4), new Float64Array(3), 0.1)).toThrow(/g: 3 values/);
    expect(() => N.denseForward(new Float32Array(6) as never, W, b, new Float64Array(6), 3, 2, 2)).toThrow(TypeError);
    expect(() => N.activate('relu', z, new Float64Array(2), 1, 5)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------

const fixtures = loadFixtures();

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

describe('the PyTorch fixtures through the native backend', () => {
  for (const fx of fixtures) {
    it(`${fx.name}: matches the reference to 1e-9 step by step, on every instruction set, with products split across both threads`, async () => {
      for (const isa of ISAS) {
        setNativeIsa(isa);
        setNativeParallel(2, 0);
        let worst = 0;
        await replay(fx, N, (model, step, ref, s) => {
          const at = `${isa} ${fx.name} step ${s}`;
          if (ref.outputs) expectClose(step.outputs, ref.outputs.flat(), `${at} outputs`);
          expectClose([step.loss], [ref.loss], `${at} loss`);
          if (ref.gradients) {
            ref.gradients.forEach((rg, l) => {
              const layer = model.layers[l];
              expectClose(step.gradients!.subarray(layer.weightOffset, layer.biasOffset), rg.weights.flat(), `${at} gradients[${l}].weights`);
            });
          }
          expectModelClose(model.layers as never, ref.model, `${at} model`);
          ref.model.layers.forEach((layer, l) => { worst = Math.max(worst, scaledError(model.layers[l].weights, layer.weights.flat(), 1)); });
        });
        expect(worst).toBeLessThanOrEqual(1e-9);
      }
    });
  }

  it(`native-f32 stays within wasm-f32's tolerance: outputs and losses ${F32_TOLERANCE}, parameters ${F32_TOLERANCE} (${F32_LONG_RUN_TOLERANCE} after 2,000 steps)`, async () => {
    for (const fx of fixtures) {
      let outputs = 0, params = 0;
      await replay(fx, N32, (model, step, ref) => {
        if (ref.outputs) outputs = Math.max(outputs, scaledError(step.outputs, ref.outputs.flat(), 1));
        outputs = Math.max(outputs, scaledError([step.loss], [ref.loss], 1));
        ref.model.layers.forEach((layer, l) => {
          params = Math.max(params, scaledError(model.layers[l].weights, layer.weights.flat(), 1), scaledError(model.layers[l].bias, layer.bias, 1));
        });
      });
      expect(outputs, `${fx.name}: outputs and losses`).toBeLessThanOrEqual(F32_TOLERANCE);
      expect(params, `${fx.name}: parameters`).toBeLessThanOrEqual(fx.steps.length > 100 ? F32_LONG_RUN_TOLERANCE : F32_TOLERANCE);
    }
  });
});

describe('both cores', () => {
  it('a split product gives bitwise the one-thread result (rows never change hands mid-sum), and batch 1 never splits', async () => {
    const topology = { inputSize: 64, layers: [{ units: 256, activation: 'relu' as const }, { units: 256, activation: 'relu' as const }, { units: 10, activation: 'softmax' as const }] };
    const rng = new Rng(9);
    const samples = Array.from({ length: 256 }, () => {
      const y = new Array<number>(10).fill(0);
      y[randInt(rng, 0, 9)] = 1;
      return { x: Array.from(randArray(rng, 64, -1, 1)), y };
    });
    const train = async (threads: 1 | 2, batchSize: number) => {
      setNativeParallel(threads, threads === 2 ? 0 : -1);
      const model = initialize(createModel(topology, N), 'he', 4);
      const trainer = createTrainer({ model, loss: 'cross_entropy', optimizer: { type: 'momentum', learningRate: 0.01, momentum: 0.9 }, kernels: N });
      await new Promise<void>((done, fail) => {
        from(samples).pipe(batch(batchSize), forward(trainer), loss(trainer), backward(trainer), update(trainer)).subscribe({ error: fail, complete: done });
      });
      return model.params;
    };
    const one = await train(1, 64);
    const before = nativeInfo().parallelRuns;
    const two = await train(2, 64);
    expect(nativeInfo().parallelRuns).toBeGreaterThan(before);
    expectSameBits(two, one, 'params after 4 steps of batch 64, split vs one thread');
    const single = nativeInfo().parallelRuns;
    await train(2, 1);
    expect(nativeInfo().parallelRuns, 'batch 1 steps, threshold 0').toBe(single);
  });
});

describe('both cores, by measurement', () => {
  it('at the default threshold each workspace times its passes shared and on one thread, and either way the parameters are bitwise the one-thread ones', async () => {
    const topology = { inputSize: 64, layers: [{ units: 256, activation: 'relu' as const }, { units: 256, activation: 'relu' as const }, { units: 10, activation: 'softmax' as const }] };
    const rng = new Rng(21);
    const steps = 24, batchSize = 64; // 64×256×256 products: 8.4·10⁶ operations, over the default threshold
    const samples = Array.from({ length: steps * batchSize }, () => {
      const y = new Array<number>(10).fill(0);
      y[randInt(rng, 0, 9)] = 1;
      return { x: Array.from(randArray(rng, 64, -1, 1)), y };
    });
    const train = async (threads: 1 | 2) => {
      setNativeParallel(threads, defaultFlops);
      const model = initialize(createModel(topology, N), 'he', 5);
      const trainer = createTrainer({ model, loss: 'cross_entropy', optimizer: { type: 'momentum', learningRate: 0.01, momentum: 0.9 }, kernels: N });
      await new Promise<void>((done, fail) => {
        from(samples).pipe(batch(batchSize), forward(trainer), loss(trainer), backward(trainer), update(trainer)).subscribe({ error: fail, complete: done });
      });
      return model.params;
    };
    expect(defaultFlops).toBeLessThanOrEqual(2 * 64 * 256 * 256);
    const one = await train(1);
    const before = nativeInfo();
    const two = await train(2);
    const after = nativeInfo();
    const shared = after.sharedPasses - before.sharedPasses, solo = after.soloPasses - before.soloPasses;
    expect(shared + solo, 'every forward and backward pass measured').toBe(2 * steps);
    expect(shared, 'both ways tried').toBeGreaterThan(0);
    expect(solo, 'both ways tried').toBeGreaterThan(0);
    expectSameBits(two, one, `params after ${steps} steps, ${shared} passes shared and ${solo} on one thread, vs one thread`);
  });
});

describe('native backend selection', () => {
  it('auto is native where the addon loads; native and native-f32 by name; allocate gives plain ArrayBuffer-backed arrays the kernels use in place', () => {
    expect(selectKernels('auto')).toBe(N);
    expect(selectKernels('native')).toBe(N);
    expect(selectKernels('native-f32')).toBe(N32);
    const a = N.allocate(5);
    expect(a).toBeInstanceOf(Float64Array);
    expect(a.buffer).toBeInstanceOf(ArrayBuffer);
    // a wasm memory view works in place too
    const w = wasmKernels('f64').allocate(4).fill(1), g = wasmKernels('f64').allocate(4).fill(2);
    N.sgd(w, g, 0.5);
    expect(Array.from(w)).toEqual([0, 0, 0, 0]);
  });

  it('without the addon, auto takes wasm with a one-line note on stderr; native by name is SG_ERR_CONFIG naming the reason', async () => {
    const code = `import { selectKernels } from './core/backend.ts';
      const k = selectKernels('auto'); selectKernels('auto');
      let err = null; try { selectKernels('native'); } catch (e) { err = e.code + ' ' + e.message; }
      console.log(JSON.stringify({ name: k.name, err }));`;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx/esm', '--input-type=module', '-e', code],
      { cwd: root, env: { ...process.env, STREAMGRAD_NATIVE_ISA: 'avx1024' } });
    const out = JSON.parse(stdout) as { name: string; err: string };
    expect(out.name).toBe('wasm');
    expect(out.err).toMatch(/^SG_ERR_CONFIG backend: the native kernels are unavailable: the addon did not load: STREAMGRAD_NATIVE_ISA=avx1024/);
    expect(stderr).toBe('streamgrad: native kernels unavailable (the addon did not load: STREAMGRAD_NATIVE_ISA=avx1024: this CPU has no avx1024); the auto backend uses wasm\n');
  });

  it('streamgrad train --backend native and native-f32 save models close to js', async () => {
    const { mkdtemp, readFile, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(resolve(tmpdir(), 'sg-native-'));
    const lines: string[] = [];
    for (let i = 0; i < 200; i++) { const x = [Math.sin(i), Math.cos(0.7 * i), (i % 5) / 5]; lines.push(JSON.stringify({ x, y: [x[0] * x[1] + x[2]] })); }
    await writeFile(resolve(dir, 'data.ndjson'), `${lines.join('\n')}\n`);
    const cli = (backend: string) => promisify(execFile)(process.execPath, ['bin/streamgrad.mjs', 'train', '--data', resolve(dir, 'data.ndjson'),
      '--layers', '3,8:tanh,8:relu,1:linear', '--seed', '3', '--batch', '4', '--optimizer', 'adam', '--backend', backend, '--save', resolve(dir, `${backend}.json`)], { cwd: root });
    await Promise.all([cli('js'), cli('native'), cli('native-f32')]);
    const flat = (doc: string) => (JSON.parse(doc) as { layers: { weights: number[][]; bias: number[] }[] }).layers.flatMap((l) => [...l.weights.flat(), ...l.bias]);
    const [js, native, f32] = await Promise.all(['js', 'native', 'native-f32'].map(async (b) => flat(await readFile(resolve(dir, `${b}.json`), 'utf8'))));
    expect(scaledError(native, js, 1)).toBeLessThan(1e-9);
    expect(scaledError(f32, js, 1)).toBeLessThan(F32_TOLERANCE);
  });
});
