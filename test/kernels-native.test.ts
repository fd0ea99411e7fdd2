/**
 * The native backend (core/kernels-native.ts, native/): the shared kernel suite
 * (test/helpers/kernel-suite.ts) with native's bar — products against the JavaScript
 * backend to a few float64 ulps (fused multiply-adds and its own summation order) on every
 * instruction set this CPU has, with and without the helper thread; elementwise kernels
 * bitwise (sigmoid, tanh and softmax to libm's rounding); the fused passes to rounding; the
 * PyTorch fixtures at 1e-9 (`native`, every instruction set) and at wasm-f32's tolerance
 * (`native-f32`); in-place work on arrays from anywhere; the command line — then size
 * checks, the helper thread (deterministic, never for batch 1), backend selection and the
 * fallback note.
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
import { selectKernels } from '../core/backend.ts';
import { initialize } from '../core/init.ts';
import { jsKernels } from '../core/kernels-js.ts';
import { nativeInfo, nativeKernels, nativePhases, nativeStatus, setNativeIsa, setNativeParallel } from '../core/kernels-native.ts';
import { wasmKernels } from '../core/kernels-wasm.ts';
import type { Kernels } from '../core/kernels.ts';
import { cloneModel, createModel } from '../core/model.ts';
import { forwardPass } from '../core/network.ts';
import { Rng } from '../core/rng.ts';
import { createTrainer } from '../core/trainer.ts';
import { createWorkspace } from '../core/workspace.ts';
import { randArray, randInt } from './helpers/math.ts';
import { checkProducts, expectSameBits, kernelSuite, shapes } from './helpers/kernel-suite.ts';
import { expectClose } from './helpers/reference.ts';

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

const SHAPES = shapes([1, 2, 3, 5, 8, 9, 13, 17, 33], [[64, 64, 32], [32, 16, 64], [17, 33, 13], [64, 256, 10], [13, 70, 100], [64, 256, 256], [3, 40, 300]]);
/** A copy of `values` at an odd offset of a larger plain array: native works in place on arrays from anywhere. */
const offset = (values: Float64Array) => { const big = new Float64Array(values.length + 3); big.set(values, 1); return big.subarray(1, 1 + values.length); };
const checkNative = (kernels: Kernels, label: string, u: number) => checkProducts(kernels, offset, label, { u }, SHAPES);

describe('native products agree with the JavaScript kernels to float64 rounding', () => {
  for (const isa of ISAS) {
    it(`${isa}: denseForward and denseBackward over ${SHAPES.length} shapes, one thread and split across both`, () => {
      expect(setNativeIsa(isa)).toBe(true);
      expect(nativeInfo().isa).toBe(isa);
      setNativeParallel(1);
      checkNative(N, `${isa} 1 thread`, 2 ** -52);
      setNativeParallel(2, 0); // every product of ≥ 2 register tiles of rows splits
      const runs = nativeInfo().parallelRuns;
      checkNative(N, `${isa} 2 threads`, 2 ** -52);
      expect(nativeInfo().parallelRuns).toBeGreaterThan(runs);
    });
  }

  it('native-f32 products agree with float64 to float32 rounding, on every instruction set', () => {
    for (const isa of ISAS) {
      setNativeIsa(isa);
      checkNative(N32, `${isa} f32`, 2 ** -23);
    }
  });

  it('a CPU without an instruction set cannot be forced onto it; an unknown name is refused', () => {
    expect(setNativeIsa('neon')).toBe(false);
    expect(nativeInfo().isa).toBe(best);
  });
});

describe('native passes', () => {
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

describe('the norm and the optimizer through a plan that does not run by halves', () => {
  // a workspace's plan holds the pointers of its gradient and its model's parameters: the
  // backward pass leaves Σ g² (one call fewer a step), and the rules run on the plan's
  // pointers without the arrays being passed; both must be bitwise the flat kernels' results
  const rng = new Rng(15);
  const topology = { inputSize: 5, layers: [{ units: 7, activation: 'tanh' as const }, { units: 3, activation: 'linear' as const }] };
  const backwardOnce = (inputSize = 5, units = 7) => {
    const model = initialize(createModel({ ...topology, inputSize, layers: [{ units, activation: 'relu' }, topology.layers[1]] }, N), 'he', 4);
    const ws = createWorkspace(model, 3, N.allocate);
    forwardPass(N, model, ws, 3, randArray(rng, 3 * inputSize));
    ws.delta[1].set(randArray(rng, 9));
    return { model, ws, sumOfSquares: N.backwardPass!(model, ws, 3) };
  };

  it('the backward pass returns Σ g², bitwise the flat sumOfSquares (js\'s to rounding: native sums in 32 lanes); a plan that runs by halves leaves it to sumOfSquares', () => {
    for (let q = 0; q < 5; q++) {
      const { ws, sumOfSquares } = backwardOnce();
      expect(Object.is(sumOfSquares, N.sumOfSquares(ws.grads.slice())), 'the flat native sum').toBe(true);
      const js = jsKernels.sumOfSquares(ws.grads.slice());
      expect(Math.abs(sumOfSquares! - js), 'js\'s sum').toBeLessThanOrEqual(ws.grads.length * 2 ** -52 * js);
      expect(Object.is(N.sumOfSquares(ws.grads), sumOfSquares), 'sumOfSquares on the plan\'s gradient').toBe(true);
    }
    // 136 → 144: a layer cut in halves (native/src/kernels.c sg_split_of)
    const owned = backwardOnce(136, 144);
    expect(owned.sumOfSquares).toBeUndefined();
    // the halves' partial sums in a fixed order: js's sum to rounding
    const js = jsKernels.sumOfSquares(owned.ws.grads.slice());
    expect(Math.abs(N.sumOfSquares(owned.ws.grads) - js)).toBeLessThanOrEqual(1e-12 * js);
  });

  it('every rule and the clipping scale on the plan\'s arrays: bitwise the flat call on copies', () => {
    const { model, ws } = backwardOnce();
    const n = model.params.length;
    type Rule = (k: Kernels, p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array) => void;
    const rules: Record<string, Rule> = {
      sgd: (k, p, g) => k.sgd(p, g, 0.05),
      momentum: (k, p, g, m) => k.momentum(p, g, m, 0.02, 0.9),
      adam: (k, p, g, m, v) => k.adam(p, g, m, v, 0.003, 0.9, 0.999, 0.7, 1e-8),
      rmsprop: (k, p, g, _m, v) => k.rmsprop(p, g, v, 0.002, 0.99, 1e-8),
      adagrad: (k, p, g, m) => k.adagrad(p, g, m, 0.02, 1e-10),
      scale: (k, _p, g) => k.scale(g, 0.37),
    };
    for (const [name, rule] of Object.entries(rules)) {
      const m = randArray(rng, n, 0, 1), v = randArray(rng, n, 0, 1);
      const flat = { p: model.params.slice(), g: ws.grads.slice(), m: m.slice(), v: v.slice() };
      rule(N, model.params, ws.grads, m, v);
      rule(N, flat.p, flat.g, flat.m, flat.v);
      expectSameBits(model.params, flat.p, `${name}: parameters`);
      expectSameBits(ws.grads, flat.g, `${name}: gradient`);
      expectSameBits(m, flat.m, `${name}: m`);
      expectSameBits(v, flat.v, `${name}: v`);
    }
    expect(() => N.momentum(model.params, ws.grads, new Float64Array(n - 1), 0.1, 0.9)).toThrow(/m: \d+ values/);
  });

  it('a transferred parameter buffer never reaches the plan\'s pointers: the flat kernel sees it empty', () => {
    const { model, ws } = backwardOnce();
    const buffer = model.params.buffer as ArrayBuffer; // native.allocate: a plain ArrayBuffer
    const moved = structuredClone(buffer, { transfer: [buffer] });
    const before = new Float64Array(moved).slice();
    expect(model.params.length).toBe(0);
    N.sgd(model.params, ws.grads, 0.5);
    expectSameBits(new Float64Array(moved), before, 'the moved parameters');
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

kernelSuite({
  name: 'native', f64: N, f32: N32, place: offset, exact: false, roundedActivations: ['sigmoid', 'tanh', 'softmax'],
  passSizes: { units: 40, inputs: 30, rows: 20 },
  fixtureRuns: ISAS.map((isa) => ({ label: isa, apply: () => { setNativeIsa(isa); setNativeParallel(2, 0); } })),
  fixtureRunsTitle: 'on every instruction set, with products split across both threads',
});

describe('both cores', () => {
  it('a split product gives bitwise the one-thread result (rows never change hands mid-sum), and batch 1 never splits', async () => {
    const rng = new Rng(9);
    const samples = Array.from({ length: 256 }, () => {
      const y = new Array<number>(10).fill(0);
      y[randInt(rng, 0, 9)] = 1;
      return { x: Array.from(randArray(rng, 64, -1, 1)), y };
    });
    // each hidden activation: the derivative is applied chunk by chunk to the dx rows a thread computed
    for (const activation of ['relu', 'tanh', 'sigmoid', 'leaky_relu'] as const) {
      const topology = { inputSize: 64, layers: [{ units: 256, activation }, { units: 256, activation }, { units: 10, activation: 'softmax' as const }] };
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
      const before = nativeInfo();
      const two = await train(2, 64);
      const after = nativeInfo();
      expect(after.parallelRuns).toBeGreaterThan(before.parallelRuns);
      expect(after.callerChunks + after.helperChunks, 'shared products are computed chunk by chunk').toBeGreaterThan(before.callerChunks + before.helperChunks + after.parallelRuns - before.parallelRuns);
      expectSameBits(two, one, `${activation}: params after 4 steps of batch 64, split vs one thread (the helper took ${after.helperChunks - before.helperChunks} chunks)`);
      const single = nativeInfo().parallelRuns;
      await train(2, 1);
      expect(nativeInfo().parallelRuns, 'batch 1 steps, threshold 0').toBe(single);
    }
  });
});

describe('both cores, by measurement', () => {
  it('at the default threshold each workspace times its steps shared and on one thread, and either way the parameters are bitwise the one-thread ones', async () => {
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

describe('both cores, each owning half of every wide layer', () => {
  // layers of ≥ 128 neurons over ≥ 128 inputs are cut in two halves for good (144 → 64 + 80; the
  // 176-neuron layer over 20 inputs is not: it runs whole on the caller while the helper prepares
  // its half of the next layer): each thread runs its neurons' forward product, gW rows, part of
  // the norm and optimizer update
  type Optimizer = Parameters<typeof createTrainer>[0]['optimizer'];
  const OPTIMIZERS: readonly Optimizer[] = [
    { type: 'sgd', learningRate: 0.05 },
    { type: 'momentum', learningRate: 0.02, momentum: 0.9 },
    { type: 'adam', learningRate: 0.003 },
    { type: 'rmsprop', learningRate: 0.002 },
    { type: 'adagrad', learningRate: 0.02 },
  ];
  const ACTIVATIONS = ['relu', 'tanh', 'sigmoid', 'leaky_relu', 'linear'] as const;
  const rng = new Rng(33);
  const steps = 5, batchSize = 16;
  const WIDE = 136; // inputs for a first layer that is cut too
  const samples = Array.from({ length: steps * batchSize }, () => {
    const y = new Array<number>(3).fill(0);
    y[randInt(rng, 0, 2)] = 1;
    return { x: Array.from(randArray(rng, WIDE, -1, 1)), y };
  });
  const narrowSamples = samples.map((s) => ({ x: s.x.slice(0, 20), y: s.y }));
  type Hidden = { units: number; activation: (typeof ACTIVATIONS)[number] };
  const train = async (kernels: Kernels, threads: 1 | 2, optimizer: Optimizer, activation: (typeof ACTIVATIONS)[number], clipNorm?: number,
    hidden: readonly Hidden[] = [{ units: 176, activation }, { units: 144, activation: 'relu' }], inputSize: 20 | typeof WIDE = 20) => {
    if (kernels !== jsKernels) setNativeParallel(threads, threads === 2 ? 0 : -1);
    const topology = { inputSize, layers: [...hidden, { units: 3, activation: 'softmax' as const }] };
    const model = initialize(createModel(topology, kernels), 'he', 8);
    const trainer = createTrainer({ model, loss: 'cross_entropy', optimizer, clipNorm, kernels });
    await new Promise<void>((done, fail) => {
      from(inputSize === 20 ? narrowSamples : samples).pipe(batch(batchSize), forward(trainer), loss(trainer), backward(trainer), update(trainer)).subscribe({ error: fail, complete: done });
    });
    return { params: model.params, clipped: trainer.counters.clipped };
  };

  it('every optimizer, with and without clipping, every hidden activation: one and two threads bitwise equal, within 1e-9 of js; every phase offered to the helper', async () => {
    const before = nativePhases();
    for (const [q, optimizer] of OPTIMIZERS.entries()) {
      const activation = ACTIVATIONS[q];
      for (const clipNorm of [undefined, 0.05]) {
        const what = `${optimizer.type}, ${activation}, clip ${clipNorm ?? 'off'}`;
        const one = await train(N, 1, optimizer, activation, clipNorm);
        const two = await train(N, 2, optimizer, activation, clipNorm);
        const js = await train(jsKernels, 1, optimizer, activation, clipNorm);
        expectSameBits(two.params, one.params, `${what}: two threads vs one`);
        expectClose(one.params, js.params, `${what}: native vs js`);
        expect(two.clipped, what).toBe(js.clipped);
        if (clipNorm !== undefined) expect(js.clipped, `${what}: the clipping is exercised`).toBeGreaterThan(0);
      }
    }
    const after = nativePhases();
    for (const phase of ['forward', 'backward', 'norm', 'update'] as const) {
      expect(after[phase].sharedJobs - before[phase].sharedJobs, `${phase} jobs offered to the helper`).toBeGreaterThan(0);
      expect(after[phase].jobs - before[phase].jobs, `${phase} jobs`).toBeGreaterThan(after[phase].sharedJobs - before[phase].sharedJobs);
    }
  });

  it('on every instruction set, float64 and float32: one and two threads bitwise equal', async () => {
    for (const isa of ISAS) {
      setNativeIsa(isa);
      for (const kernels of [N, nativeKernels('f32')]) {
        const one = await train(kernels, 1, OPTIMIZERS[2], 'tanh', 0.05);
        const two = await train(kernels, 2, OPTIMIZERS[2], 'tanh', 0.05);
        expectSameBits(two.params, one.params, `${isa} ${kernels.name}: two threads vs one`);
      }
    }
  });

  it('a cut layer over a narrow one (its dx partly the helper\'s, all added by the caller), float64 and float32: one and two threads bitwise equal, within 1e-9 of js', async () => {
    // 20 → 128 (not cut: 20 inputs; the caller's) → 160 (80 + 80) → 3: the helper's partial dx covers all 128 columns below
    const hidden: readonly Hidden[] = [{ units: 128, activation: 'tanh' }, { units: 160, activation: 'relu' }];
    for (const kernels of [N, nativeKernels('f32')]) {
      const one = await train(kernels, 1, OPTIMIZERS[1], 'tanh', 0.05, hidden);
      const two = await train(kernels, 2, OPTIMIZERS[1], 'tanh', 0.05, hidden);
      expectSameBits(two.params, one.params, `${kernels.name}: two threads vs one`);
      if (kernels === N) expectClose(one.params, (await train(jsKernels, 1, OPTIMIZERS[1], 'tanh', 0.05, hidden)).params, 'native vs js');
    }
  });

  it('two cut layers in a row, the first over the input (no layer before it for the caller), float64 and float32: one and two threads bitwise equal, within 1e-9 of js', async () => {
    // 136 → 144 (64 + 80) → 176 (80 + 96) → 3: each job is handed over with nothing for the caller to run first
    const hidden: readonly Hidden[] = [{ units: 144, activation: 'sigmoid' }, { units: 176, activation: 'leaky_relu' }];
    for (const kernels of [N, nativeKernels('f32')]) {
      for (const optimizer of [OPTIMIZERS[1], OPTIMIZERS[2]]) {
        const one = await train(kernels, 1, optimizer, 'tanh', 0.05, hidden, WIDE);
        const two = await train(kernels, 2, optimizer, 'tanh', 0.05, hidden, WIDE);
        expectSameBits(two.params, one.params, `${kernels.name} ${optimizer.type}: two threads vs one`);
        if (kernels === N) expectClose(one.params, (await train(jsKernels, 1, optimizer, 'tanh', 0.05, hidden, WIDE)).params, 'native vs js');
      }
    }
  });

  it('native-f32: one and two threads bitwise equal', async () => {
    const N32 = nativeKernels('f32');
    for (const optimizer of [OPTIMIZERS[1], OPTIMIZERS[2]]) {
      const one = await train(N32, 1, optimizer, 'relu', 0.05);
      const two = await train(N32, 2, optimizer, 'relu', 0.05);
      expectSameBits(two.params, one.params, `native-f32 ${optimizer.type}: two threads vs one`);
    }
  });

  it('a helper descheduled while it prepares its half never outlives the job: W3 steps on two threads with every core busy run to the end, bitwise one thread\'s', async () => {
    // the helper prepared its half from the job's arguments, on the caller's stack, after the
    // caller may have taken every chunk and returned: a SIGSEGV now and then under load (in 4
    // of 6 such children before the fix); spinning workers keep the helper descheduled often
    const code = `import { Worker } from 'node:worker_threads';
      import { setNativeParallel } from './core/kernels-native.ts';
      import { selectKernels } from './core/backend.ts';
      import { runBare, toBatches } from './bench/runs.ts';
      import { createWorkloadTrainer, makeSamples, WORKLOADS } from './bench/workloads.ts';
      const spinners = Array.from({ length: 2 }, () => new Worker('for (;;);', { eval: true }));
      const kernels = selectKernels('native-f32');
      const batches = toBatches(makeSamples('w3', 64 * 400), 64);
      const params = [];
      for (const threads of [2, 2, 2, 1]) {
        setNativeParallel(threads, 0);
        const trainer = createWorkloadTrainer(WORKLOADS.w3, kernels);
        runBare(trainer, batches);
        params.push(Buffer.from(trainer.model.params.buffer, trainer.model.params.byteOffset, trainer.model.params.byteLength).toString('base64'));
      }
      for (const s of spinners) await s.terminate();
      console.log(JSON.stringify({ same: params.every((p) => p === params[0]) }));`;
    // three processes: the crash it guards against came in about half of them
    for (let i = 0; i < 3; i++) {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx/esm', '--input-type=module', '-e', code], { cwd: root, timeout: 120_000 });
      expect(JSON.parse(stdout)).toEqual({ same: true });
    }
  }, 180_000);
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
});
