/**
 * The optimizers against their formulas written out per scalar: sgd, momentum and adam as
 * test/fixtures/reference/FORMAT.md states them, rmsprop and adagrad as PyTorch documents them;
 * learning-rate changes, hyper-parameter validation, and global-norm gradient clipping
 * (RELIABILITY row 17).
 */
import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { jsKernels } from '../core/kernels-js.ts';
import { cloneModel } from '../core/model.ts';
import {
  createOptimizer, MAX_LEARNING_RATE, optimizerSettings, optimizerStep, setLearningRate, type OptimizerConfig,
} from '../core/optimizers.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';
import { backwardStep, forwardStep, lossStep } from '../core/step.ts';
import { train } from '../pipeline/train.ts';
import { createTrainer } from '../core/trainer.ts';
import { parseExperiment } from '../runtime/experiment-schema.ts';
import { buildModel, expectAllClose, expectStreamgradError, randArray, randInt, runTrain } from './helpers/math.ts';

const REL = 1e-14;
const TINY = 1e-300; // relative comparisons without a floor

/** A scalar reference optimizer: one update of p (array of plain numbers) by g, with its own state. */
type Reference = (p: number[], g: readonly number[], t: number, lr: number) => void;

function referenceFor(config: OptimizerConfig, size: number): Reference {
  const m = new Array<number>(size).fill(0), v = new Array<number>(size).fill(0);
  switch (config.type) {
    case 'sgd':
      return (p, g, _t, lr) => { for (let i = 0; i < size; i++) p[i] = p[i] - lr * g[i]; };
    case 'momentum': {
      const mu = config.momentum ?? 0.9;
      return (p, g, _t, lr) => {
        for (let i = 0; i < size; i++) { m[i] = mu * m[i] + g[i]; p[i] = p[i] - lr * m[i]; }
      };
    }
    case 'adam': {
      const b1 = config.beta1 ?? 0.9, b2 = config.beta2 ?? 0.999, eps = config.epsilon ?? 1e-8;
      return (p, g, t, lr) => {
        for (let i = 0; i < size; i++) {
          m[i] = b1 * m[i] + (1 - b1) * g[i];
          v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
          p[i] = p[i] - (lr / (1 - b1 ** t)) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + eps);
        }
      };
    }
    case 'rmsprop': {
      // torch.optim.RMSprop, centered=False, momentum=0: v = αv + (1−α)g², p −= lr·g/(√v + ε)
      const alpha = config.alpha ?? 0.99, eps = config.epsilon ?? 1e-8;
      return (p, g, _t, lr) => {
        for (let i = 0; i < size; i++) {
          v[i] = alpha * v[i] + (1 - alpha) * g[i] * g[i];
          p[i] = p[i] - lr * g[i] / (Math.sqrt(v[i]) + eps);
        }
      };
    }
    case 'adagrad': {
      // torch.optim.Adagrad, lr_decay=0, initial_accumulator_value=0: s += g², p −= lr·g/(√s + ε)
      const eps = config.epsilon ?? 1e-10;
      return (p, g, _t, lr) => {
        for (let i = 0; i < size; i++) {
          m[i] = m[i] + g[i] * g[i];
          p[i] = p[i] - lr * g[i] / (Math.sqrt(m[i]) + eps);
        }
      };
    }
  }
}

/** Runs `steps` updates of the engine's optimizer and of the scalar reference on the same gradients. */
function compare(config: OptimizerConfig, steps: number, seed: number): void {
  const rng = new Rng(seed);
  const size = randInt(rng, 1, 13);
  const params = randArray(rng, size, -1, 1);
  const ref = Array.from(params);
  const state = createOptimizer(config, size);
  const reference = referenceFor(config, size);
  for (let t = 1; t <= steps; t++) {
    // gradients of varied scale, with an exact zero now and then
    const g = randArray(rng, size, -1, 1).map((v) => (rng.next() < 0.1 ? 0 : v * 10 ** randInt(rng, -3, 1)));
    const gBefore = g.slice();
    optimizerStep(jsKernels, state, params, g);
    reference(ref, Array.from(g), t, config.learningRate);
    expect(Array.from(g), 'the optimizer must not change the gradient').toEqual(Array.from(gBefore));
    expect(state.t).toBe(t);
    expectAllClose(params, ref, REL, `${config.type} step ${t} (seed ${seed})`, TINY);
  }
}

const CONFIGS: readonly OptimizerConfig[] = [
  { type: 'sgd', learningRate: 0.1 },
  { type: 'momentum', learningRate: 0.05, momentum: 0.9 },
  { type: 'momentum', learningRate: 0.3 }, // default μ = 0.9
  { type: 'adam', learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 },
  { type: 'adam', learningRate: 0.003, beta1: 0.5, beta2: 0.9, epsilon: 1e-6 },
  { type: 'rmsprop', learningRate: 0.01 }, // PyTorch defaults α = 0.99, ε = 1e-8
  { type: 'rmsprop', learningRate: 0.002, alpha: 0.9, epsilon: 1e-6 },
  { type: 'adagrad', learningRate: 0.1 }, // PyTorch default ε = 1e-10
];

describe('optimizer updates against scalar formulas (1e-14 relative)', () => {
  for (const config of CONFIGS) {
    const label = JSON.stringify(config);
    it(`${label}: one step`, () => {
      for (let seed = 0; seed < 20; seed++) compare(config, 1, seed);
    });
    it(`${label}: 50 steps, state carried`, () => {
      for (let seed = 100; seed < 110; seed++) compare(config, 50, seed);
    });
  }

  it('the first momentum step is plain sgd (v = g) and adam\'s first step moves each parameter by ≈ lr·sign(g)', () => {
    const rng = new Rng(5);
    const g = randArray(rng, 8, -1, 1).map((v) => v + Math.sign(v) * 0.1);
    const p0 = randArray(rng, 8);
    const pm = p0.slice(), ps = p0.slice(), pa = p0.slice();
    optimizerStep(jsKernels, createOptimizer({ type: 'momentum', learningRate: 0.1, momentum: 0.9 }, 8), pm, g);
    optimizerStep(jsKernels, createOptimizer({ type: 'sgd', learningRate: 0.1 }, 8), ps, g);
    expect(Array.from(pm)).toEqual(Array.from(ps));
    optimizerStep(jsKernels, createOptimizer({ type: 'adam', learningRate: 0.01 }, 8), pa, g);
    for (let i = 0; i < 8; i++) expect(Math.abs((p0[i] - pa[i]) - 0.01 * Math.sign(g[i]))).toBeLessThan(1e-8);
  });

  it('fills in PyTorch\'s defaults', () => {
    expect(optimizerSettings({ type: 'adam', learningRate: 1 })).toMatchObject({ beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
    expect(optimizerSettings({ type: 'rmsprop', learningRate: 1 })).toMatchObject({ alpha: 0.99, epsilon: 1e-8 });
    expect(optimizerSettings({ type: 'adagrad', learningRate: 1 })).toMatchObject({ epsilon: 1e-10 });
    expect(optimizerSettings({ type: 'momentum', learningRate: 1 })).toMatchObject({ momentum: 0.9 });
  });
});

describe('setLearningRate', () => {
  for (const config of CONFIGS) {
    it(`${config.type}: a new rate applies from the next update on, not before`, () => {
      const rng = new Rng(11);
      const size = 6;
      const params = randArray(rng, size), ref = Array.from(params);
      const state = createOptimizer(config, size), reference = referenceFor(config, size);
      const rates = [config.learningRate, config.learningRate, config.learningRate * 3, config.learningRate * 3, config.learningRate / 7];
      for (let t = 1; t <= rates.length; t++) {
        if (rates[t - 1] !== state.learningRate) setLearningRate(state, rates[t - 1]);
        const g = randArray(rng, size);
        optimizerStep(jsKernels, state, params, g);
        reference(ref, Array.from(g), t, rates[t - 1]);
        expectAllClose(params, ref, REL, `${config.type} step ${t}`, TINY);
      }
      expect(state.learningRate).toBe(config.learningRate / 7);
    });
  }

  it('rejects NaN, ±Infinity, 0, negative and non-numbers with SG_ERR_CONFIG naming learningRate, leaving the rate alone', () => {
    const state = createOptimizer({ type: 'adam', learningRate: 0.01 }, 3);
    for (const bad of [NaN, Infinity, -Infinity, 0, -0, -0.1, '0.1' as unknown as number, null as unknown as number]) {
      const e = expectStreamgradError(() => setLearningRate(state, bad), 'SG_ERR_CONFIG');
      expect(e.field).toBe('learningRate');
      expect(e.message).toContain('learningRate');
      expect(state.learningRate).toBe(0.01);
    }
  });
});

describe('learning-rate bounds (issue 17, case 8): 0 < lr ≤ MAX_LEARNING_RATE at every door', () => {
  it('createTrainer, setLearningRate and a config\'s lr take 10 and refuse 10.5 and 1e308 with SG_ERR_CONFIG naming the field', () => {
    expect(MAX_LEARNING_RATE).toBe(10);
    const model = () => buildModel(2, [{ units: 3, activation: 'tanh' }, { units: 1, activation: 'linear' }], 1);
    expect(createTrainer({ model: model(), loss: 'mse', optimizer: { type: 'sgd', learningRate: 10 } }).optimizer.learningRate).toBe(10);
    for (const bad of [10.5, 1e308]) {
      const e = expectStreamgradError(() => createTrainer({ model: model(), loss: 'mse', optimizer: { type: 'adam', learningRate: bad } }), 'SG_ERR_CONFIG');
      expect(e.field).toBe('optimizer.learningRate');
      expect(e.message).toBe(`optimizer.learningRate: must be at most 10, got ${String(bad)}`);
      const state = createOptimizer({ type: 'sgd', learningRate: 0.1 }, 3);
      expect(expectStreamgradError(() => setLearningRate(state, bad), 'SG_ERR_CONFIG').message).toBe(`learningRate: must be at most 10, got ${String(bad)}`);
      expect(state.learningRate).toBe(0.1);
      const parsed = parseExperiment({ source: { simulated: 'xor', samples: 10 }, models: [{ layers: '2,4:tanh,1:sigmoid', loss: 'bce', optimizer: { type: 'sgd', lr: bad } }] });
      expect(parsed.ok ? [] : parsed.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([`models[0].optimizer.lr: must be at most 10, got ${String(bad)}`]);
    }
  });
});

describe('optimizerSettings validation', () => {
  const cases: [string, unknown, string][] = [
    ['unknown type', { type: 'nesterov', learningRate: 0.1 }, 'optimizer'],
    ['missing type', { learningRate: 0.1 }, 'optimizer'],
    ['learning rate 0', { type: 'sgd', learningRate: 0 }, 'optimizer.learningRate'],
    ['learning rate NaN', { type: 'adam', learningRate: NaN }, 'optimizer.learningRate'],
    ['learning rate missing', { type: 'sgd' }, 'optimizer.learningRate'],
    ['negative momentum', { type: 'momentum', learningRate: 0.1, momentum: -0.5 }, 'optimizer.momentum'],
    ['momentum 1', { type: 'momentum', learningRate: 0.1, momentum: 1 }, 'optimizer.momentum'],
    ['momentum NaN', { type: 'momentum', learningRate: 0.1, momentum: NaN }, 'optimizer.momentum'],
    ['beta1 = 1', { type: 'adam', learningRate: 0.1, beta1: 1 }, 'optimizer.beta1'],
    ['beta2 > 1', { type: 'adam', learningRate: 0.1, beta2: 1.5 }, 'optimizer.beta2'],
    ['beta1 negative', { type: 'adam', learningRate: 0.1, beta1: -0.1 }, 'optimizer.beta1'],
    ['alpha = 1', { type: 'rmsprop', learningRate: 0.1, alpha: 1 }, 'optimizer.alpha'],
    ['negative epsilon', { type: 'adam', learningRate: 0.1, epsilon: -1e-8 }, 'optimizer.epsilon'],
    ['infinite epsilon', { type: 'adagrad', learningRate: 0.1, epsilon: Infinity }, 'optimizer.epsilon'],
    // √v + ε with v = 0 (a parameter whose gradient has always been 0) would be 0/0
    ['adam epsilon 0', { type: 'adam', learningRate: 0.1, epsilon: 0 }, 'optimizer.epsilon'],
  ];
  for (const [name, config, field] of cases) {
    it(`rejects ${name} with SG_ERR_CONFIG on ${field}`, () => {
      const e = expectStreamgradError(() => optimizerSettings(config as OptimizerConfig), 'SG_ERR_CONFIG');
      expect(e.field).toBe(field);
      expect(e.message.startsWith(`${field}:`)).toBe(true);
      // createOptimizer and createTrainer go through the same check
      expectStreamgradError(() => createOptimizer(config as OptimizerConfig, 4), 'SG_ERR_CONFIG');
    });
  }

  it('accepts the edges of the valid ranges', () => {
    expect(() => optimizerSettings({ type: 'momentum', learningRate: 1e-12, momentum: 0 })).not.toThrow();
    expect(() => optimizerSettings({ type: 'adam', learningRate: 10, beta1: 0, beta2: 0.999999, epsilon: 1e-300 })).not.toThrow();
    expect(() => optimizerSettings({ type: 'rmsprop', learningRate: 1, alpha: 0 })).not.toThrow();
  });
});

describe('global-norm gradient clipping (trainer clipNorm)', () => {
  const norm = (g: ArrayLike<number>) => Math.sqrt(Array.from(g).reduce((s, v) => s + v * v, 0));

  it('scales the gradient to norm ≤ clipNorm, keeps its direction, and reports the pre-clip norm', () => {
    const rng = new Rng(21);
    let clippedSeen = 0, unclippedSeen = 0;
    for (let trial = 0; trial < 30; trial++) {
      const model = buildModel(3, [{ units: 5, activation: 'tanh' }, { units: 2, activation: 'linear' }], trial);
      const free = createTrainer({ model: cloneModel(model), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 } });
      const clipNorm = 10 ** rng.uniform(-2, 1);
      const clipped = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 }, clipNorm });
      const samples: Sample[] = Array.from({ length: 4 }, () => ({ x: Array.from(randArray(rng, 3, -5, 5)), y: Array.from(randArray(rng, 2, -5, 5)) }));
      const raw = backwardStep(free, lossStep(free, forwardStep(free, samples)));
      const step = backwardStep(clipped, lossStep(clipped, forwardStep(clipped, samples)));
      const g0 = raw.gradients!.slice(), g = step.gradients!;
      const n0 = norm(g0);
      expect(Math.abs(step.gradNorm - n0) / n0, 'reported norm is the pre-clip norm').toBeLessThanOrEqual(1e-12);
      expect(step.gradNorm).toBe(raw.gradNorm);
      if (n0 > clipNorm) {
        clippedSeen++;
        expect(step.clipped).toBe(true);
        expect(norm(g)).toBeLessThanOrEqual(clipNorm);
        expect(norm(g)).toBeGreaterThan(clipNorm * (1 - 1e-5)); // clipped to the threshold, not below it
        const c = norm(g) / n0;
        expectAllClose(g, g0.map((v) => v * c), 1e-12, 'clipped gradient is a positive multiple of the raw one', 0);
      } else {
        unclippedSeen++;
        expect(step.clipped).toBe(false);
        expect(Array.from(g)).toEqual(Array.from(g0));
      }
      expect(clipped.counters.clipped).toBe(step.clipped ? 1 : 0);
    }
    expect(clippedSeen).toBeGreaterThan(3);
    expect(unclippedSeen).toBeGreaterThan(3);
  });

  it('rejects a clipNorm that is not a finite number > 0', () => {
    const model = buildModel(2, [{ units: 1, activation: 'linear' }], 1);
    for (const clipNorm of [0, -1, NaN, Infinity]) {
      const e = expectStreamgradError(() => createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 1 }, clipNorm }), 'SG_ERR_CONFIG');
      expect(e.field).toBe('clipNorm');
    }
  });

  it('RELIABILITY 17: lr = 10 on unscaled inputs keeps every weight finite with clipping; post-clip norm ≤ max at every step', () => {
    const rng = new Rng(17);
    const samples: Sample[] = Array.from({ length: 400 }, () => {
      const x = [rng.uniform(0, 1000), rng.uniform(-500, 500), rng.uniform(0, 2000)];
      return { x, y: [0.3 * x[0] - 0.2 * x[1] + 0.01 * x[2] + 7] };
    });
    const topology = [{ units: 8, activation: 'relu' as const }, { units: 1, activation: 'linear' as const }];
    const clipNorm = 1;
    const trainer = createTrainer({ model: buildModel(3, topology, 3), loss: 'mse', optimizer: { type: 'sgd', learningRate: 10 }, clipNorm });
    let worstPostClip = 0;
    const results = runTrain(trainer, samples, { batch: 4 }, () => { worstPostClip = Math.max(worstPostClip, norm(trainer.workspace.grads)); });
    expect(results.length).toBe(100);
    expect(trainer.model.params.every(Number.isFinite)).toBe(true);
    expect(results.every((r) => r.updated && Number.isFinite(r.loss))).toBe(true);
    expect(worstPostClip).toBeLessThanOrEqual(clipNorm);
    const clippedSteps = results.filter((r) => r.clipped);
    expect(clippedSteps.length).toBeGreaterThan(50);
    expect(clippedSteps.every((r) => r.gradNorm > clipNorm)).toBe(true); // the metric is the pre-clip norm
    expect(trainer.counters.clipped).toBe(clippedSteps.length);

    // the same run without clipping blows up: the numeric guard skips steps and the stream ends SG_ERR_DIVERGED
    const wild = createTrainer({ model: buildModel(3, topology, 3), loss: 'mse', optimizer: { type: 'sgd', learningRate: 10 } });
    let error: unknown = null;
    let steps = 0;
    from(samples).pipe(train(wild, { batch: 4 })).subscribe({ next: () => steps++, error: (e) => { error = e; } });
    // measured: the loss reaches ~1e82 by step 5 and is Infinity from step 55; the 10th skip in a row (step 64) ends it
    expect((error as { code?: string } | null)?.code, `unclipped lr=10 run after ${steps} steps`).toBe('SG_ERR_DIVERGED');
    expect(steps).toBeLessThan(100);
  });
});
