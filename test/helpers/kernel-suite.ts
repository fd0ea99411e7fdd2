/**
 * The checks every compiled kernel backend passes, run by test/kernels-wasm.test.ts and
 * test/kernels-native.test.ts over their own backend: products against the JavaScript
 * kernels (bitwise, or within the rounding bound of any summation order), elementwise
 * kernels and optimizer rules, the fused network passes, the PyTorch fixtures in float64
 * (1e-9) and float32 (the documented tolerance), and `streamgrad train --backend`.
 * What only one backend has (wasm's memory, native's instruction sets and helper thread)
 * stays in its own file.
 */
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { from } from 'rxjs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { backward } from '../../operators/backward.ts';
import { batch } from '../../operators/batch.ts';
import { forward } from '../../operators/forward.ts';
import { loss } from '../../operators/loss.ts';
import { update } from '../../operators/update.ts';
import { type Activation, ACTIVATIONS } from '../../core/activations.ts';
import { initialize } from '../../core/init.ts';
import { jsKernels } from '../../core/kernels-js.ts';
import { F32_LONG_RUN_TOLERANCE, F32_TOLERANCE } from '../../core/kernels-wasm.ts';
import type { Kernels } from '../../core/kernels.ts';
import { lossGradient } from '../../core/losses.ts';
import { modelFromJSON } from '../../pipeline/model-file.ts';
import { cloneModel, createModel, type LayerSpec, type Model } from '../../core/model.ts';
import { backwardPass, forwardPass } from '../../core/network.ts';
import { Rng } from '../../core/rng.ts';
import { createTrainer, type Trainer } from '../../core/trainer.ts';
import { createWorkspace } from '../../core/workspace.ts';
import { randArray, randInt } from './math.ts';
import { expectClose, expectModelClose, type Fixture, loadFixtures, scaledError } from './reference.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Exactly the bytes an array views. */
const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Throws naming the first element where `actual` and `expected` differ in any bit (-0 and NaN payloads included). */
export function expectSameBits(actual: Float64Array, expected: Float64Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  if (!bytes(actual).equals(bytes(expected))) {
    const i = actual.findIndex((v, q) => !Object.is(v, expected[q]));
    throw new Error(`${what}: not bitwise equal, first at [${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/**
 * |actual − expected| ≤ (terms + 2) · u · Σ|terms| per element: the bound of any summation
 * order, with or without fused multiply-adds (u = 2⁻⁵² for float64, 2⁻²⁴ for float32
 * operands). `abs(i)` is element i's Σ|terms|.
 */
export function expectWithinRounding(actual: Float64Array, expected: Float64Array, terms: number, abs: (i: number) => number, what: string, u = 2 ** -52): void {
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= (terms + 2) * u * abs(i))) throw new Error(`${what} [${i}]: ${actual[i]} vs ${expected[i]} (error ${err}, bound ${(terms + 2) * u * abs(i)})`);
  }
}

/** Random deltas with many exact zeros (dead rows, dead neurons), as the skip paths need. */
export function sparseDeltas(rng: Rng, rows: number, m: number): Float64Array {
  const d = randArray(rng, rows * m, -2, 2);
  for (let q = 0; q < d.length; q++) if (rng.next() < 0.3) d[q] = 0;
  if (rows > 1 && rng.next() < 0.5) d.fill(0, (rows - 1) * m, rows * m);
  const j = randInt(rng, 0, m - 1);
  if (rng.next() < 0.5) for (let r = 0; r < Math.min(rows, 4); r++) d[r * m + j] = 0;
  return d;
}

/** The (rows, n, m) shapes of rows 1..9 × n 1..9 × `ms`, then `wide`. */
export function shapes(ms: readonly number[], wide: readonly [number, number, number][]): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let rows = 1; rows <= 9; rows++) for (let n = 1; n <= 9; n++) for (const m of ms) out.push([rows, n, m]);
  return [...out, ...wide];
}

/** How a product must agree with the JavaScript kernels: bit for bit, or within rounding of unit `u`. */
export type Agreement = 'bitwise' | { readonly u: number };

/** A compiled backend, as the shared suite sees it. */
export interface KernelBackend {
  /** Its name on the command line (`--backend wasm`); `${name}-f32` is its float32 variant. */
  readonly name: string;
  readonly f64: Kernels;
  readonly f32: Kernels;
  /**
   * An array the backend works on, holding a copy of `values`: in its own memory (wasm), or
   * a subarray at an odd offset of a plain array (native works in place on arrays from anywhere).
   */
  place(values: Float64Array): Float64Array;
  /** Float64 products and passes: bitwise js (same summation order), or within float64 rounding. */
  readonly exact: boolean;
  /** Activations whose forward output is only within libm's rounding of js (default: none). */
  readonly roundedActivations?: readonly Activation[];
  /** The largest layer, input and batch of the random networks of the fused-pass check. */
  readonly passSizes: { readonly units: number; readonly inputs: number; readonly rows: number };
  /** The configurations the float64 fixtures replay under, in turn (instruction sets, threads); default one. */
  readonly fixtureRuns?: readonly { readonly label: string; apply(): void }[];
  /** What the fixture tests' names say of those configurations ("on every instruction set"). */
  readonly fixtureRunsTitle?: string;
  /** How many foreign arrays the backend copied so far (wasm); the shared checks must cause none. */
  copies?(): number;
}

/**
 * Every product of `kernels` (denseForward, denseBackward with and without dx, accumulating
 * into gW and gb) against the JavaScript kernels over `shapes`, on deltas with exact zeros;
 * gb is always bitwise (float64 sums in the same order); nothing is written past the rows.
 */
export function checkProducts(kernels: Kernels, place: (values: Float64Array) => Float64Array, label: string, agreement: Agreement, all: readonly [number, number, number][], seed = 11): void {
  const rng = new Rng(seed);
  const agree = (actual: Float64Array, expected: Float64Array, terms: number, abs: (i: number) => number, what: string) => {
    if (agreement === 'bitwise') expectSameBits(actual, expected, what);
    else expectWithinRounding(actual, expected, terms, abs, what, agreement.u);
  };
  for (const [rows, n, m] of all) {
    const at = `${label} ${rows}×${n}×${m}`;
    const x = randArray(rng, rows * n, -2, 2), Wt = randArray(rng, m * n), b = randArray(rng, m), d = sparseDeltas(rng, rows, m);
    const xK = place(x), WK = place(Wt), bK = place(b), dK = place(d);
    const zJ = new Float64Array(rows * m), z = place(new Float64Array(rows * m + 3).fill(7));
    jsKernels.denseForward(x, Wt, b, zJ, rows, n, m);
    kernels.denseForward(xK, WK, bK, z, rows, n, m);
    agree(z.subarray(0, rows * m), zJ, n + 1, (q) => {
      const i = Math.floor(q / m), j = q % m;
      let s = Math.abs(b[j]);
      for (let k = 0; k < n; k++) s += Math.abs(x[i * n + k] * Wt[j * n + k]);
      return s;
    }, `z ${at}`);
    expect(Array.from(z.subarray(rows * m)), `z ${at}: nothing written past the rows`).toEqual([7, 7, 7]);
    const gW0 = randArray(rng, m * n), gb0 = randArray(rng, m);
    const gWabs = (q: number) => {
      const j = Math.floor(q / n), k = q % n;
      let s = Math.abs(gW0[q]);
      for (let i = 0; i < rows; i++) s += Math.abs(d[i * m + j] * x[i * n + k]);
      return s;
    };
    for (const withDx of [true, false]) {
      const how = `${at}${withDx ? '' : ' without dx'}`;
      const gWJ = gW0.slice(), gbJ = gb0.slice(), dxJ = withDx ? new Float64Array(rows * n).fill(3) : null;
      const gWK = place(gW0), gbK = place(gb0), dxK = withDx ? place(new Float64Array(rows * n + 2).fill(3).fill(7, rows * n)) : null;
      jsKernels.denseBackward(x, d, Wt, gWJ, gbJ, dxJ, rows, n, m);
      kernels.denseBackward(xK, dK, WK, gWK, gbK, dxK === null ? null : dxK, rows, n, m);
      expectSameBits(gbK, gbJ, `gb ${how} (float64 sums in the same order)`);
      agree(gWK, gWJ, rows + 1, gWabs, `gW ${how}`);
      if (dxJ !== null && dxK !== null) {
        agree(dxK.subarray(0, rows * n), dxJ, m, (q) => {
          const i = Math.floor(q / n), k = q % n;
          let s = 0;
          for (let j = 0; j < m; j++) s += Math.abs(d[i * m + j] * Wt[j * n + k]);
          return s;
        }, `dx ${how}`);
        expect(Array.from(dxK.subarray(rows * n)), `dx ${how}: nothing written past the rows`).toEqual([7, 7]);
      }
    }
  }
}

/** Replays a fixture through the real operators; calls `check` per step with the step and its reference. */
export async function replayFixture(fx: Fixture, kernels: Kernels, check: (model: Model, step: { outputs: Float64Array; loss: number; gradients: Float64Array | null }, ref: Fixture['steps'][number], s: number) => void): Promise<Trainer> {
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

/**
 * Registers the shared checks for `backend` (call it at the top level of the backend's test file).
 *
 * @example
 * kernelSuite({ name: 'wasm', f64: W, f32: W32, place: inWasm, exact: true, passSizes: { units: 12, inputs: 11, rows: 9 } });
 */
export function kernelSuite(backend: KernelBackend): void {
  const { name, f64: K, f32: K32, place } = backend;
  const rounded = new Set(backend.roundedActivations ?? []);
  const same = (actual: Float64Array, expected: Float64Array, what: string) => (backend.exact ? expectSameBits(actual, expected, what) : expectClose(actual, expected, what));

  describe(`${name} elementwise kernels are bitwise the JavaScript kernels`, () => {
    it(`activate and activationBackward for every activation, odd and even lengths, zeros and negatives${rounded.size > 0 ? ` (${[...rounded].join(', ')} forward to libm's rounding)` : ''}`, () => {
      const rng = new Rng(3);
      for (const kind of ACTIVATIONS) {
        for (const [rows, m] of [[1, 1], [1, 2], [3, 5], [4, 4], [7, 9], [2, 33]]) {
          const z = randArray(rng, rows * m, -3, 3);
          z[0] = 0; if (z.length > 2) z[2] = -0;
          const aJ = new Float64Array(rows * m), aK = place(new Float64Array(rows * m));
          jsKernels.activate(kind, z, aJ, rows, m);
          K.activate(kind, place(z), aK, rows, m);
          if (rounded.has(kind)) expectWithinRounding(aK, aJ, 8, (q) => Math.abs(aJ[q]), `${kind} a ${rows}×${m}`);
          else expectSameBits(aK, aJ, `${kind} a ${rows}×${m}`);
          const d = randArray(rng, rows * m, -2, 2);
          const dJ = d.slice(), dK = place(d);
          jsKernels.activationBackward(kind, z, aJ, dJ, rows, m);
          K.activationBackward(kind, place(z), place(aJ), dK, rows, m);
          expectSameBits(dK, dJ, `${kind} delta ${rows}×${m}`);
        }
      }
    });

    it('sumOfSquares (to rounding where the backend is not exact), scale and every optimizer rule, lengths 0..17 and 1153', () => {
      const rng = new Rng(4);
      for (const len of [...Array.from({ length: 18 }, (_, i) => i), 1153]) {
        const g = randArray(rng, len, -3, 3), p = randArray(rng, len), m1 = randArray(rng, len), v1 = randArray(rng, len, 0, 1);
        // an exact backend sums in js's order; native in 32 lanes (a shorter chain of additions)
        const sum = K.sumOfSquares(place(g)), js = jsKernels.sumOfSquares(g);
        if (backend.exact) expect(sum, `sumOfSquares ${len}`).toBe(js);
        else expect(Math.abs(sum - js), `sumOfSquares ${len}`).toBeLessThanOrEqual(len * 2 ** -52 * js);
        const runs: [string, (k: Kernels, a: Float64Array[]) => void][] = [
          ['scale', (k, [P]) => k.scale(P, -0.37)],
          ['sgd', (k, [P, G]) => k.sgd(P, G, 0.013)],
          ['momentum', (k, [P, G, M]) => k.momentum(P, G, M, 0.05, 0.9)],
          ['adam', (k, [P, G, M, V]) => k.adam(P, G, M, V, 0.01 / (1 - 0.9 ** 3), 0.9, 0.999, Math.sqrt(1 - 0.999 ** 3), 1e-8)],
          ['rmsprop', (k, [P, G, , V]) => k.rmsprop(P, G, V, 0.01, 0.99, 1e-8)],
          ['adagrad', (k, [P, G, , V]) => k.adagrad(P, G, V, 0.1, 1e-10)],
        ];
        for (const [rule, run] of runs) {
          const js = [p.slice(), g.slice(), m1.slice(), v1.slice()];
          const ka = [place(p), place(g), place(m1), place(v1)];
          for (let t = 0; t < 3; t++) { run(jsKernels, js); run(K, ka); }
          ka.forEach((a, i) => expectSameBits(a, js[i], `${rule} len ${len} array ${i}`));
        }
      }
    });
  });

  describe(`${name} fused passes`, () => {
    it(`forwardPass / backwardPass equal network.ts's layer-by-layer passes over the JavaScript kernels (${backend.exact ? 'bitwise' : 'to rounding'}), every activation`, () => {
      const copies = backend.copies?.();
      const rng = new Rng(5);
      const { units, inputs, rows: maxRows } = backend.passSizes;
      const hidden: Activation[] = ['linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu'];
      for (let trial = 0; trial < 40; trial++) {
        const depth = randInt(rng, 1, 4);
        const layers: LayerSpec[] = [];
        for (let l = 0; l < depth; l++) {
          const last = l === depth - 1;
          layers.push({ units: randInt(rng, 1, units), activation: last ? (['linear', 'sigmoid', 'softmax', 'tanh'] as const)[trial % 4] : hidden[randInt(rng, 0, hidden.length - 1)] });
        }
        const inputSize = randInt(rng, 1, inputs), rows = randInt(rng, 1, maxRows);
        const mJ = initialize(createModel({ inputSize, layers }, jsKernels), 'pytorch', trial), mK = cloneModel(mJ, K);
        const wsJ = createWorkspace(mJ, rows, jsKernels.allocate), wsK = createWorkspace(mK, rows, K.allocate);
        const x = randArray(rng, rows * inputSize, -2, 2), y = randArray(rng, rows * mJ.outputSize);
        wsJ.x.set(x); wsK.x.set(x);
        forwardPass(jsKernels, mJ, wsJ, rows);
        forwardPass(K, mK, wsK, rows);
        const last = depth - 1;
        for (let l = 0; l < depth; l++) {
          same(wsK.z[l].subarray(0, rows * layers[l].units), wsJ.z[l].subarray(0, rows * layers[l].units), `trial ${trial} z[${l}]`);
          same(wsK.a[l].subarray(0, rows * layers[l].units), wsJ.a[l].subarray(0, rows * layers[l].units), `trial ${trial} a[${l}]`);
        }
        for (const [k, ws] of [[jsKernels, wsJ], [K, wsK]] as const) {
          lossGradient('mse', layers[last].activation, ws.z[last], ws.a[last], y, rows, mJ.outputSize, ws.delta[last], k.activationBackward);
          ws.grads.fill(5); // the pass must write every gradient
        }
        backwardPass(jsKernels, mJ, wsJ, rows);
        backwardPass(K, mK, wsK, rows);
        same(wsK.grads, wsJ.grads, `trial ${trial} grads`);
      }
      if (copies !== undefined) expect(backend.copies!()).toBe(copies);
    });
  });

  const fixtures = loadFixtures();
  const runs = backend.fixtureRuns ?? [{ label: name, apply: () => undefined }];
  describe(`the PyTorch fixtures through the ${name} backend`, () => {
    for (const fx of fixtures) {
      const also = [backend.fixtureRunsTitle, backend.copies !== undefined ? 'with zero copies' : undefined].filter((t) => t !== undefined).map((t) => `, ${t}`).join('');
      it(`${fx.name}: matches the reference to 1e-9${backend.exact ? ' and the js backend bitwise,' : ''} step by step${also}`, async () => {
        const copies = backend.copies?.();
        const jsParams: Float64Array[] = [];
        if (backend.exact) await replayFixture(fx, jsKernels, (model) => { jsParams.push(model.params.slice()); });
        for (const run of runs) {
          run.apply();
          let worst = 0;
          await replayFixture(fx, K, (model, step, ref, s) => {
            const at = `${run.label} ${fx.name} step ${s}`;
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
            if (backend.exact) expectSameBits(model.params, jsParams[s], `${at} params vs js`);
          });
          expect(worst).toBeLessThanOrEqual(1e-9);
        }
        if (copies !== undefined) expect(backend.copies!()).toBe(copies);
      });
    }

    it(`${name}-f32 stays within its documented tolerance of the reference: outputs and losses ${F32_TOLERANCE} every step, parameters ${F32_TOLERANCE} (${F32_LONG_RUN_TOLERANCE} after 2,000 steps)`, async () => {
      let worstOutputs = 0;
      for (const fx of fixtures) {
        let outputs = 0, params = 0;
        await replayFixture(fx, K32, (model, step, ref) => {
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
  });

  describe(`streamgrad train --backend ${name}`, () => {
    it(`${name} saves ${backend.exact ? 'the model js saves, bit for bit' : 'a model within 1e-9 of js\'s'}, ${name}-f32 a float32-close one; an unknown backend is a usage error (exit 2)`, async () => {
      const { mkdtemp, readFile, rm, writeFile } = await import('node:fs/promises');
      const { tmpdir } = await import('node:os');
      const dir = await mkdtemp(resolve(tmpdir(), `sg-backend-${name}-`));
      // removed when the test ends, passed or not (before: never, two folders a run), after its
      // command lines are stopped (a timed-out test's would write on into it)
      const stop = new AbortController();
      onTestFinished(async () => {
        stop.abort();
        await rm(dir, { recursive: true, force: true });
      });
      const lines: string[] = [];
      for (let i = 0; i < 200; i++) { const x = [Math.sin(i), Math.cos(0.7 * i), (i % 5) / 5]; lines.push(JSON.stringify({ x, y: [x[0] * x[1] + x[2]] })); }
      await writeFile(resolve(dir, 'data.ndjson'), `${lines.join('\n')}\n`);
      const cli = (choice: string) => promisify(execFile)(process.execPath, ['bin/streamgrad.mjs', 'train', '--data', resolve(dir, 'data.ndjson'),
        '--layers', '3,8:tanh,8:relu,1:linear', '--seed', '3', '--batch', '4', '--optimizer', 'adam', '--backend', choice, '--save', resolve(dir, `${choice}.json`)], { cwd: root, signal: stop.signal, killSignal: 'SIGKILL' });
      const choices = ['js', name, `${name}-f32`];
      await Promise.all(choices.map(cli));
      const [js, f64, f32] = await Promise.all(choices.map((b) => readFile(resolve(dir, `${b}.json`), 'utf8')));
      const flat = (doc: string) => (JSON.parse(doc) as { layers: { weights: number[][]; bias: number[] }[] }).layers.flatMap((l) => [...l.weights.flat(), ...l.bias]);
      if (backend.exact) expect(f64).toBe(js);
      else expect(scaledError(flat(f64), flat(js), 1)).toBeLessThan(1e-9);
      expect(f32).not.toBe(js);
      expect(scaledError(flat(f32), flat(js), 1)).toBeLessThan(F32_TOLERANCE);
      const bad = await cli('gpu').then(() => null, (e: { code: number; stderr: string }) => e);
      expect(bad?.code).toBe(2);
      expect(bad?.stderr).toMatch(/--backend: unknown value "gpu"; use auto, native, native-f32, wasm, wasm-f32, js/);
    }, 180_000); // four command lines: 20-30 s on a loaded 2-core machine
  });
}
