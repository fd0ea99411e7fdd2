/**
 * The lecture's claims about perceptrons and MLPs, checked on the real engine:
 *
 * 1. Without activations a deep net collapses to one affine map W̃x + b̃; a relu breaks that.
 * 2. A single perceptron fires sign(w·x + b) and the perceptron rule learns a separable stream.
 * 3. A lone sigmoid unit cannot learn XOR; a 2→4→1 sigmoid net can.
 * 4. A sigmoid unit trained with bce is logistic regression (compared with a Newton/IRLS fit),
 *    and σ' = σ(1 − σ).
 * 5. Michaelis–Menten kinetics V·S/(K + S) is learned online by small relu nets, far better
 *    than by a linear model.
 *
 * Thresholds were measured on these seeds and set with margin; the measured values are in
 * the comments next to each assertion.
 */
import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { predict } from '../operators/predict.ts';
import { jsKernels } from '../core/kernels-js.ts';
import { cloneModel, createModel, type LayerSpec, type Model } from '../core/model.ts';
import { setLearningRate } from '../core/optimizers.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';
import { forwardStep } from '../core/step.ts';
import { createTrainer } from '../core/trainer.ts';
import type { Kernels } from '../core/kernels.ts';
import {
  buildModel, cosine, cycle, expectAllClose, logisticIRLS, naivePredict, randArray, runTrain,
} from './helpers/math.ts';

/** The engine's outputs for a list of inputs (one forward pass over the batch), copied out. */
function engineOutputs(model: Model, inputs: readonly number[][]): Float64Array {
  const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 1 } });
  const step = forwardStep(trainer, inputs.map((x) => ({ x, y: new Array<number>(model.outputSize).fill(0) })));
  return step.outputs.slice();
}

/** Outputs of the `predict` operator, one array per input. */
function predictOutputs(model: Model, inputs: readonly number[][], kernels?: Kernels): number[][] {
  const out: number[][] = [];
  from(inputs).pipe(predict(model, { kernels })).subscribe(({ output }) => out.push(Array.from(output)));
  return out;
}

describe('1. a deep net without activations is one affine map', () => {
  const sizes = [5, 7, 4, 6, 3]; // 5 → 7 → 4 → 6 → 3, four layers

  /** C = A·B for row-major A (r×k) and B (k×c). */
  const matmul = (A: Float64Array, B: Float64Array, r: number, k: number, c: number) => {
    const C = new Float64Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) { let s = 0; for (let q = 0; q < k; q++) s += A[i * k + q] * B[q * c + j]; C[i * c + j] = s; }
    return C;
  };

  it('W̃ = W₄W₃W₂W₁ and b̃ = W₄(W₃(W₂b₁ + b₂) + b₃) + b₄ reproduce the net\'s outputs to 1e-12 (relative)', () => {
    const layers: LayerSpec[] = sizes.slice(1).map((units) => ({ units, activation: 'linear' }));
    const model = buildModel(sizes[0], layers, 4, 'xavier');
    for (let q = 0; q < model.params.length; q++) model.params[q] += new Rng(q).uniform(-0.5, 0.5); // nonzero biases too
    let W = model.layers[0].weights.slice(), b = model.layers[0].bias.slice();
    for (const layer of model.layers.slice(1)) {
      W = matmul(layer.weights, W, layer.outputs, layer.inputs, sizes[0]);
      b = matmul(layer.weights, b, layer.outputs, layer.inputs, 1).map((v, i) => v + layer.bias[i]);
    }
    const rng = new Rng(40);
    const inputs = Array.from({ length: 50 }, () => Array.from(randArray(rng, sizes[0], -3, 3)));
    const collapsed = inputs.flatMap((x) => Array.from(matmul(W, Float64Array.from(x), 3, sizes[0], 1).map((v, i) => v + b[i])));
    const deep = engineOutputs(model, inputs);
    let scale = 0;
    for (const v of collapsed) scale = Math.max(scale, Math.abs(v));
    expect(scale).toBeGreaterThan(0.1); // not a degenerate all-zero map
    expectAllClose(deep, collapsed, 1e-12, 'deep linear net vs W̃x + b̃', scale);
    expect(predictOutputs(model, inputs).flat().every((v, i) => Math.abs(v - deep[i]) <= 1e-12 * scale)).toBe(true);
  });

  it('with relu between the layers the same weights do not collapse: some input differs from W̃x + b̃', () => {
    const linear = buildModel(sizes[0], sizes.slice(1).map((units) => ({ units, activation: 'linear' as const })), 4, 'xavier');
    const relu = createModel({ inputSize: sizes[0], layers: sizes.slice(1).map((units, l) => ({ units, activation: l < 3 ? 'relu' as const : 'linear' as const })) });
    relu.params.set(linear.params);
    const rng = new Rng(41);
    const inputs = Array.from({ length: 50 }, () => Array.from(randArray(rng, sizes[0], -3, 3)));
    const a = engineOutputs(linear, inputs), r = engineOutputs(relu, inputs);
    let worst = 0;
    for (let q = 0; q < a.length; q++) worst = Math.max(worst, Math.abs(a[q] - r[q]));
    expect(worst).toBeGreaterThan(0.1);
    // and no affine map fits it: f(x) + f(−x) = 2·f(0) holds for every affine f, not for the relu net
    const x = inputs[0], minus = x.map((v) => -v), zero = x.map(() => 0);
    const f = engineOutputs(relu, [x, minus, zero]), l = engineOutputs(linear, [x, minus, zero]);
    let reluGap = 0, linearGap = 0;
    for (let k = 0; k < 3; k++) {
      reluGap = Math.max(reluGap, Math.abs(f[k] + f[3 + k] - 2 * f[6 + k]));
      linearGap = Math.max(linearGap, Math.abs(l[k] + l[3 + k] - 2 * l[6 + k]));
    }
    expect(linearGap).toBeLessThan(1e-12);
    expect(reluGap).toBeGreaterThan(1e-3);
  });
});

describe('2. the perceptron', () => {
  it('z = w·x + b fires sign(z): +1, −1, and 0 exactly on the boundary', () => {
    const model = buildModel(3, [{ units: 1, activation: 'sign' }], 6);
    const rng = new Rng(60);
    const inputs = Array.from({ length: 40 }, () => Array.from(randArray(rng, 3, -2, 2)));
    const [w0, w1, w2] = model.layers[0].weights;
    model.layers[0].bias[0] = 0;
    inputs.push([0, 0, 0], [w1, -w0, 0]); // z = 0 exactly: w0·w1 − w1·w0 + 0 = 0
    // js kernels: exactly w·x + b as written; a fused multiply-add (the native backend) keeps
    // the rounding error of w0·w1, so z on the boundary comes out ±1 ulp instead of 0
    const fired = predictOutputs(model, inputs, jsKernels).map((o) => o[0]);
    const expected = inputs.map((x) => Math.sign(w0 * x[0] + w1 * x[1] + w2 * x[2]));
    expect(fired).toEqual(expected);
    expect(new Set(fired)).toEqual(new Set([1, -1, 0]));
  });

  /** 200 points of a 2-D stream, separable by x₁ − 2x₂ + 2.5 = 0 with a margin ≥ 0.05 (seeded). */
  function separableStream(): { x: number[]; y: number }[] {
    const rng = new Rng(3);
    const points: { x: number[]; y: number }[] = [];
    while (points.length < 200) {
      const x = [rng.uniform(-3, 3), rng.uniform(-3, 3)];
      const s = x[0] - 2 * x[1] + 2.5;
      if (Math.abs(s) / Math.sqrt(5) < 0.05) continue;
      points.push({ x, y: s > 0 ? 1 : -1 });
    }
    return points;
  }

  it('the perceptron rule, from zero weights, learns a separable stream: mistakes per pass fall to 0, then 100% on the training points', () => {
    const points = separableStream();
    const passes = 30;
    const model = createModel({ inputSize: 2, layers: [{ units: 1, activation: 'sign' }] }); // all zeros
    expect(model.params.every((p) => p === 0)).toBe(true);
    const trainer = createTrainer({ model, loss: 'perceptron', optimizer: { type: 'sgd', learningRate: 0.1 } });
    const results = runTrain(trainer, cycle(points, passes));
    expect(results.length).toBe(passes * points.length);
    const mistakes = Array.from({ length: passes }, (_, p) => results.slice(p * 200, (p + 1) * 200).filter((r) => r.loss > 0).length);
    // measured: [22, 9, 10, 9, 5, 3, 0, 0, …]. Mistakes per pass need not fall monotonically; they trend down,
    // and once a pass is mistake-free the weights stop changing, so every later pass is mistake-free too.
    expect(mistakes[0]).toBeGreaterThan(0);
    expect(mistakes[0]).toBe(Math.max(...mistakes));
    const converged = mistakes.indexOf(0);
    expect(converged, `mistakes per pass: ${mistakes}`).toBeGreaterThan(0);
    expect(mistakes.slice(converged).every((k) => k === 0)).toBe(true);
    const half = Math.ceil(converged / 2);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(mistakes.slice(half, converged))).toBeLessThan(sum(mistakes.slice(0, half)));
    // a mistake-free pass leaves the weights alone, and every training point is now right
    const fired = predictOutputs(model, points.map((s) => s.x)).map((o) => o[0]);
    expect(fired).toEqual(points.map((s) => s.y));
    expect(results.at(-1)!.metrics.accuracy).toBe(1);
    // Novikoff: mistakes ≤ (R/γ)² for any separator; with (1, −2, 2.5) on x̃ = (x, 1)
    const u = [1, -2, 2.5], norm = Math.hypot(...u);
    const gamma = Math.min(...points.map((s) => s.y * (u[0] * s.x[0] + u[1] * s.x[1] + u[2]) / norm));
    const R = Math.max(...points.map((s) => Math.hypot(s.x[0], s.x[1], 1)));
    expect(mistakes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual((R / gamma) ** 2);
  });

  it('from zero weights the learning rate only scales the weights: lr 0.1 and lr 1 make the same mistakes', () => {
    const points = separableStream();
    const run = (lr: number) => {
      const model = createModel({ inputSize: 2, layers: [{ units: 1, activation: 'sign' }] });
      const trainer = createTrainer({ model, loss: 'perceptron', optimizer: { type: 'sgd', learningRate: lr } });
      return { losses: runTrain(trainer, cycle(points, 4)).map((r) => r.loss), params: Array.from(model.params) };
    };
    const small = run(0.1), big = run(1);
    expect(big.losses).toEqual(small.losses);
    expectAllClose(big.params, small.params.map((p) => p * 10), 1e-12, 'weights scale with lr');
  });
});

describe('3. XOR', () => {
  const X = [[0, 0], [0, 1], [1, 0], [1, 1]], Y = [0, 1, 1, 0];
  const points: Sample[] = X.map((x, i) => ({ x, y: [Y[i]] }));
  const bce = (model: Model) => X.reduce((s, x, i) => {
    const a = naivePredict(model, x)[0];
    return s - (Y[i] * Math.log(a) + (1 - Y[i]) * Math.log(1 - a));
  }, 0) / 4;
  const correct = (model: Model) => X.filter((x, i) => (naivePredict(model, x)[0] > 0.5) === (Y[i] === 1)).length;

  it('a lone sigmoid unit cannot learn it: after 8000 online steps ≤ 3 of 4 right and the loss stays ≥ ln 2', () => {
    const trainer = createTrainer({ model: buildModel(2, [{ units: 1, activation: 'sigmoid' }], 1), loss: 'bce', optimizer: { type: 'sgd', learningRate: 0.5 } });
    const results = runTrain(trainer, cycle(points, 2000));
    expect(results.length).toBe(8000);
    // measured: 1 of 4 right, loss 0.7083 over the 4 points, rolling prequential loss 0.846
    expect(correct(trainer.model)).toBeLessThanOrEqual(3);
    // for XOR, bce over the 4 points is ≥ ln 2 for every w, b (convexity + the symmetry x → 1 − x)
    expect(bce(trainer.model)).toBeGreaterThanOrEqual(Math.LN2 - 1e-12);
    expect(results.at(-1)!.metrics.loss).toBeGreaterThan(0.4);
  });

  it('a 2→4→1 sigmoid net learns it: all 4 points right and loss < 0.1 (seeds 1, 2, 3)', () => {
    for (const seed of [1, 2, 3]) {
      const model = buildModel(2, [{ units: 4, activation: 'sigmoid' }, { units: 1, activation: 'sigmoid' }], seed);
      const trainer = createTrainer({ model, loss: 'bce', optimizer: { type: 'sgd', learningRate: 0.5 } });
      const results = runTrain(trainer, cycle(points, 2000));
      // measured: losses 0.0029, 0.0028, 0.0027 (seeds 1, 2, 3; seeds 4..8 also learn it, ≤ 0.0027)
      expect(correct(model), `seed ${seed}`).toBe(4);
      expect(bce(model), `seed ${seed}`).toBeLessThan(0.1);
      expect(results.at(-1)!.metrics.accuracy).toBe(1);
    }
  });
});

describe('4. a sigmoid unit with bce is logistic regression', () => {
  /** 300 points from two overlapping Gaussian classes (not separable). */
  function overlapping(): { xs: number[][]; ys: number[] } {
    const rng = new Rng(42);
    const xs: number[][] = [], ys: number[] = [];
    for (let i = 0; i < 300; i++) {
      const c = rng.next() < 0.5 ? 1 : 0;
      const mu = c === 1 ? [1.0, 0.5] : [-0.5, -0.5];
      xs.push([mu[0] + rng.normal(), mu[1] + 1.2 * rng.normal()]);
      ys.push(c);
    }
    return { xs, ys };
  }

  it('online SGD with a decaying rate reaches the Newton/IRLS maximum-likelihood fit (cosine > 0.9999, |Δ|∞ < 0.02)', () => {
    const { xs, ys } = overlapping();
    const ref = logisticIRLS(xs, ys); // measured: w = (1.5483, 0.8869), b = −0.5195
    // the reference is the maximum: the log-likelihood gradient vanishes there
    const grad = [0, 0, 0];
    xs.forEach((x, s) => {
      const mu = 1 / (1 + Math.exp(-(ref[0] * x[0] + ref[1] * x[1] + ref[2])));
      grad[0] += (ys[s] - mu) * x[0]; grad[1] += (ys[s] - mu) * x[1]; grad[2] += ys[s] - mu;
    });
    expect(Math.max(...grad.map(Math.abs))).toBeLessThan(1e-9);
    // the classes overlap: even the best linear boundary misclassifies some points
    const refWrong = xs.filter((x, s) => (ref[0] * x[0] + ref[1] * x[1] + ref[2] > 0) !== (ys[s] === 1)).length;
    expect(refWrong).toBeGreaterThan(20);

    const model = createModel({ inputSize: 2, layers: [{ units: 1, activation: 'sigmoid' }] });
    const lr0 = 0.1, tau = 300;
    const trainer = createTrainer({ model, loss: 'bce', optimizer: { type: 'sgd', learningRate: lr0 } });
    const samples = xs.map((x, s) => ({ x, y: [ys[s]] }));
    // lr_t = lr0 / (1 + t/τ): Robbins–Monro, so the iterates settle on the minimum of the mean loss
    const results = runTrain(trainer, cycle(samples, 100), {}, (r) => setLearningRate(trainer.optimizer, lr0 / (1 + (r.step + 1) / tau)));
    expect(results.length).toBe(30_000);
    const learned = Array.from(model.params); // [w1, w2, b]
    // measured: cosine 0.9999974 (angle 0.13°), largest coordinate difference 0.0039 (the bias, 0.4 % low)
    expect(cosine(learned, ref)).toBeGreaterThan(0.9999);
    for (let k = 0; k < 3; k++) expect(Math.abs(learned[k] - ref[k]), `param ${k}`).toBeLessThan(0.02);
  });

  it('σ\'(z) = σ(z)(1 − σ(z)): the sigmoid layer\'s backward pass against the formula and a finite difference', () => {
    const z = Float64Array.from([-30, -8, -2, -0.5, 0, 1e-3, 0.7, 3, 12, 30]);
    const a = new Float64Array(z.length), d = new Float64Array(z.length).fill(1);
    jsKernels.activate('sigmoid', z, a, 1, z.length);
    jsKernels.activationBackward('sigmoid', z, a, d, 1, z.length);
    const sigma = (v: number) => 1 / (1 + Math.exp(-v));
    for (let q = 0; q < z.length; q++) {
      const s = sigma(z[q]);
      expect(Math.abs(d[q] - s * (1 - s)), `z = ${z[q]}`).toBeLessThanOrEqual(1e-15);
      const fd = (sigma(z[q] + 1e-5) - sigma(z[q] - 1e-5)) / 2e-5;
      expect(Math.abs(d[q] - fd), `finite difference at z = ${z[q]}`).toBeLessThanOrEqual(1e-9);
    }
    expect(d[4]).toBe(0.25); // the steepest point
    // an upstream delta is multiplied by it: chain rule
    const up = Float64Array.from(z, (_, q) => q - 4.5);
    const expected = Array.from(up, (u, q) => u * sigma(z[q]) * (1 - sigma(z[q])));
    jsKernels.activationBackward('sigmoid', z, a, up, 1, z.length);
    expectAllClose(up, expected, 1e-15, 'δ·σ(1 − σ)');
  });
});

describe('5. Michaelis–Menten V·S/(K + S), learned online', () => {
  const V = 2, K = 0.5, NOISE = 0.01, N = 60_000;
  const mm = (S: number) => (V * S) / (K + S);
  /** S uniform in [0, 5), y = V·S/(K + S) + N(0, 0.01²): a seeded stream of 60 000 samples. */
  function stream(): Sample[] {
    const rng = new Rng(2024);
    return Array.from({ length: N }, () => { const S = rng.uniform(0, 5); return { x: [S], y: [mm(S) + NOISE * rng.normal()] }; });
  }

  /** Adam, batches of 4, lr 0.01/(1 + t/500); the final rolling (prequential) MSE over the last 1000 samples, and the noise-free MSE on a grid. */
  function learn(layers: LayerSpec[], data: readonly Sample[]): { prequential: number; grid: number; model: Model } {
    const lr0 = 0.01, tau = 500;
    const trainer = createTrainer({ model: buildModel(1, layers, 1, 'auto'), loss: 'mse', optimizer: { type: 'adam', learningRate: lr0 } });
    const results = runTrain(trainer, data, { batch: 4, window: 1000 }, (r) => setLearningRate(trainer.optimizer, lr0 / (1 + (r.step + 1) / tau)));
    expect(results.length).toBe(N / 4);
    expect(results.every((r) => r.updated)).toBe(true);
    let grid = 0;
    for (let i = 0; i <= 100; i++) { const S = (5 * i) / 100; grid += (naivePredict(trainer.model, [S])[0] - mm(S)) ** 2; }
    return { prequential: results.at(-1)!.metrics.loss, grid: grid / 101, model: cloneModel(trainer.model) };
  }

  it('1→32→1 and 1→16→16→1 relu nets reach a rolling MSE < 1e-3, more than 10× better than a linear model (3.9e-2)', () => {
    const data = stream();
    const linear = learn([{ units: 1, activation: 'linear' }], data);
    const one = learn([{ units: 32, activation: 'relu' }, { units: 1, activation: 'linear' }], data);
    const two = learn([{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }], data);
    // measured, rolling prequential MSE: linear 3.85e-2, one hidden 2.8e-4, two hidden 2.3e-4 (the noise
    // alone contributes 1e-4); over init seeds 1..8 the one-hidden net ranged 2.0e-4 … 4.6e-4 and the
    // two-hidden 2.3e-4 … 7.0e-4, so 1e-3 holds with margin 3.5× here and 1.4× for the worst seed.
    expect(linear.prequential).toBeGreaterThan(1e-2);
    expect(one.prequential).toBeLessThan(1e-3);
    expect(two.prequential).toBeLessThan(1e-3);
    expect(one.prequential * 10).toBeLessThan(linear.prequential);
    expect(two.prequential * 10).toBeLessThan(linear.prequential);
    // the fitted curves are close to the true one on all of [0, 5] (101-point grid, no noise), not only on
    // the stream's average. measured: linear 4.6e-2, one hidden 3.5e-4, two hidden 9.5e-5 (seeds 1..8:
    // up to 5.0e-4 and 8.3e-4; most of it is the sharp knee at S → 0, where the slope is V/K = 4)
    expect(one.grid).toBeLessThan(2e-3);
    expect(two.grid).toBeLessThan(2e-3);
    expect(linear.grid).toBeGreaterThan(1e-2);
    // and they saturate like the enzyme: f(5) − f(2.5) is much smaller than f(1) − f(0)
    // (true curve: 0.152 vs 1.333; measured nets: 0.157 vs 1.177 and 0.171 vs 1.265)
    for (const m of [one.model, two.model]) {
      const f = (S: number) => naivePredict(m, [S])[0];
      expect(f(5) - f(2.5)).toBeLessThan(0.5 * (f(1) - f(0)));
    }
  });
});
