import { from, map, Subject, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { backward } from '../operators/backward.ts';
import { batch } from '../operators/batch.ts';
import { forward } from '../operators/forward.ts';
import { loss } from '../operators/loss.ts';
import { prequential } from '../operators/prequential.ts';
import { update } from '../operators/update.ts';
import type { Activation } from '../core/activations.ts';
import type { Loss } from '../core/losses.ts';
import { cloneModel, type Model } from '../core/model.ts';
import { Rng } from '../core/rng.ts';
import { PrequentialEvaluator } from '../core/evaluation.ts';
import { RollingMean } from '../core/rolling-mean.ts';
import { type StepResult, train } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { collectSync, outputsOf, regressionSamples, seededModel, tinyTrainer } from './helpers/streams.ts';

interface Scored {
  readonly loss: number;
  readonly mae: number;
  readonly correct: boolean;
}

const targetsOf = (y: ArrayLike<number> | number): number[] => (typeof y === 'number' ? [y] : Array.from(y));

/** Scores one prediction `a` against `y` by the textbook definitions, independently of the engine. */
function score(kind: Loss, a: ArrayLike<number>, y: readonly number[]): Scored {
  const m = y.length;
  let lossValue = 0, abs = 0;
  for (let k = 0; k < m; k++) abs += Math.abs(a[k] - y[k]);
  const argmax = (v: ArrayLike<number>) => { let b = 0; for (let k = 1; k < m; k++) if (v[k] > v[b]) b = k; return b; };
  let correct = true;
  switch (kind) {
    case 'mse':
      for (let k = 0; k < m; k++) lossValue += (a[k] - y[k]) ** 2 / m;
      break;
    case 'bce':
      for (let k = 0; k < m; k++) lossValue -= (y[k] * Math.log(a[k]) + (1 - y[k]) * Math.log(1 - a[k])) / m;
      for (let k = 0; k < m; k++) if ((a[k] > 0.5) !== (y[k] > 0.5)) correct = false;
      break;
    case 'cross_entropy':
      for (let k = 0; k < m; k++) if (y[k] !== 0) lossValue -= y[k] * Math.log(a[k]);
      correct = argmax(a) === argmax(y);
      break;
    case 'perceptron':
      for (let k = 0; k < m; k++) if (a[k] !== y[k]) { lossValue += 1 / m; correct = false; }
      break;
  }
  return { loss: lossValue, mae: abs / m, correct };
}

const mean = (v: readonly number[]) => v.reduce((s, x) => s + x, 0) / v.length;

function expectNear(actual: number, expected: number, what: string, rel = 1e-9): void {
  if (!Number.isFinite(expected)) {
    expect(actual, what).toBe(expected);
    return;
  }
  expect(Number.isFinite(actual), `${what}: ${actual} should be finite (expected ${expected})`).toBe(true);
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(expected)));
}

/**
 * Trains `samples` through `train` and checks every StepResult against a shadow copy of
 * the model taken before each step: the step's loss and the rolling metrics must be the
 * ones of predictions made BEFORE the update. Returns how many steps were checked.
 */
function checkPrequential(trainer: Trainer, samples: readonly { x: ArrayLike<number>; y: ArrayLike<number> | number }[], batchSize: number, window: number): StepResult[] {
  const shadow: Model = cloneModel(trainer.model);
  const history: Scored[] = [];
  const source = new Subject<unknown>();
  const results: StepResult[] = [];
  let seen = 0;
  const failures: unknown[] = [];
  // assertions run inside the subscriber: collect their failures and rethrow after the
  // stream, so that one failure neither goes unhandled nor desynchronises the shadow model
  source.pipe(train(trainer, { batch: batchSize, window })).subscribe((r) => {
    try {
      checkStep(r);
    } catch (e) {
      failures.push(e);
    } finally {
      shadow.params.set(trainer.model.params);
    }
  });
  const soft = (f: () => void) => { try { f(); } catch (e) { failures.push(e); } };
  function checkStep(r: StepResult): void {
    results.push(r);
    const rows = samples.slice(seen, seen + r.size);
    seen += r.size;
    const m = trainer.model.outputSize;
    const before = outputsOf(shadow, rows.map((s) => s.x));
    const after = outputsOf(trainer.model, rows.map((s) => s.x));
    const scored = rows.map((s, i) => score(trainer.loss, before.subarray(i * m, (i + 1) * m), targetsOf(s.y)));
    history.push(...scored);
    // the batch loss is the loss of the predictions made before learning from the batch...
    soft(() => expectNear(r.loss, mean(scored.map((s) => s.loss)), `step ${r.step} loss`));
    // ...which the test can tell apart from the predictions after it
    if (r.updated && trainer.loss !== 'perceptron') {
      const afterLoss = mean(rows.map((s, i) => score(trainer.loss, after.subarray(i * m, (i + 1) * m), targetsOf(s.y)).loss));
      soft(() => expect(afterLoss).not.toBe(r.loss));
    }
    const last = history.slice(-window);
    soft(() => expect(r.metrics.window).toBe(window));
    soft(() => expect(r.metrics.count).toBe(Math.min(window, history.length)));
    soft(() => expectNear(r.metrics.loss, mean(last.map((s) => s.loss)), `step ${r.step} rolling loss`));
    soft(() => expectNear(r.metrics.mae, mean(last.map((s) => s.mae)), `step ${r.step} rolling MAE`));
    if (trainer.loss === 'mse') soft(() => expect('accuracy' in r.metrics).toBe(false));
    else soft(() => expectNear(r.metrics.accuracy!, mean(last.map((s) => (s.correct ? 1 : 0))), `step ${r.step} rolling accuracy`, 1e-12));
  }
  samples.forEach((s) => source.next(s));
  source.complete();
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new Error(`${failures.length} failed checks:\n${failures.map((e) => (e as Error).message.split('\n')[0]).join('\n')}`);
  expect(seen).toBe(samples.length);
  return results;
}

function classSamples(count: number, classes: number, seed: number, encode: (c: number) => number[] | number) {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const x = [rng.uniform(-1, 1), rng.uniform(-1, 1)];
    const angle = Math.atan2(x[1], x[0]) + Math.PI;
    const c = Math.min(classes - 1, Math.floor((angle / (2 * Math.PI)) * classes));
    return { x, y: encode(c) };
  });
}

describe('prequential: test-then-train', () => {
  it('mse regression: every sample is scored before it is learned; rolling loss/MAE over the last W', () => {
    const results = checkPrequential(tinyTrainer(), regressionSamples(40), 3, 5);
    expect(results.map((r) => r.metrics.count)).toEqual([3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]);
  });

  it('multi-output mse: MAE averages |a − y| over the outputs', () => {
    const trainer = createTrainer({ model: seededModel(3, [[3, 'tanh'], [2, 'linear']], 4), loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 } });
    checkPrequential(trainer, regressionSamples(30, 3, 2, 5), 4, 7);
  });

  const classifiers: [string, Loss, readonly (readonly [number, Activation])[], (c: number) => number[] | number, number][] = [
    ['cross_entropy (argmax)', 'cross_entropy', [[4, 'tanh'], [3, 'softmax']], (c) => [0, 1, 2].map((k) => (k === c ? 1 : 0)), 3],
    ['bce (0.5 threshold)', 'bce', [[4, 'relu'], [1, 'sigmoid']], (c) => [c], 2],
    ['bce with two outputs (all must match)', 'bce', [[2, 'sigmoid']], (c) => [c, 1 - c], 2],
    ['perceptron (exact sign)', 'perceptron', [[1, 'sign']], (c) => (c === 0 ? -1 : 1), 2],
  ];
  for (const [name, lossKind, layers, encode, classes] of classifiers) {
    it(`accuracy for ${name}, over the rolling window`, () => {
      const trainer = createTrainer({ model: seededModel(2, layers, 9), loss: lossKind, optimizer: { type: 'sgd', learningRate: 0.2 } });
      const results = checkPrequential(trainer, classSamples(60, classes, 13, encode), 2, 9);
      const accuracies = new Set(results.map((r) => r.metrics.accuracy));
      expect(accuracies.size).toBeGreaterThan(1); // the check saw the metric move
    });
  }

  it('the operator on its own, placed before update, scores the outputs of the parameters before each step', () => {
    const trainer = tinyTrainer();
    const shadow = cloneModel(trainer.model);
    const samples = regressionSamples(12);
    const maes: number[] = [], expected: number[] = [], afterwards: number[] = [];
    collectSync(from(samples).pipe(
      batch(1), forward(trainer), loss(trainer), prequential(trainer, 1), backward(trainer), update(trainer),
      tap((step) => {
        const s = samples[step.index];
        maes.push(step.metrics.mae);
        expected.push(Math.abs(outputsOf(shadow, [s.x], trainer.kernels)[0] - s.y[0]));
        afterwards.push(Math.abs(outputsOf(trainer.model, [s.x], trainer.kernels)[0] - s.y[0]));
        shadow.params.set(trainer.model.params);
      }),
    ));
    expect(maes).toEqual(expected);
    expect(maes).not.toEqual(afterwards);
    expect(trainer.counters.steps).toBe(12);
  });

  it('each subscription keeps its own window', () => {
    const trainer = tinyTrainer();
    const op = prequential(trainer, 10);
    // a step record is valid until the next step: take what is kept as it passes
    const counts = (n: number) => collectSync(from(regressionSamples(n)).pipe(batch(2), forward(trainer), loss(trainer), op, map((s) => s.metrics.count))).values;
    expect(counts(6)).toEqual([2, 4, 6]);
    expect(counts(4)).toEqual([2, 4]); // not 8, 10
  });

  it('after a skipped overflow step leaves the window, the rolling metrics are exact again', () => {
    // one sample at ~1e300 overflows the loss (step skipped, loss Infinity, |a − y| ≈ 1e300);
    // once it has left a window of 4, the metrics must again be the mean of the last 4 samples
    const model = seededModel(2, [[1, 'linear']], 3);
    model.params.set([0.5, 0.25, 0.1]);
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 } });
    const good = regressionSamples(8, 2, 1, 9);
    const samples = [good[0], { x: [1e300, 1e300], y: [0] }, ...good.slice(1)];
    const results = checkPrequential(trainer, samples, 1, 4);
    expect(results[1].updated).toBe(false);
  });
  it('an evaluator passed in is shared, and its restored state continues the metrics bit for bit', () => {
    const samples = regressionSamples(40, 2, 1, 5);
    const whole = tinyTrainer();
    const uninterrupted = collectSync(from(samples).pipe(train(whole, { batch: 2, window: 7 }))).values;

    const first = tinyTrainer();
    const evaluator = new PrequentialEvaluator('mse', 7);
    collectSync(from(samples.slice(0, 16)).pipe(train(first, { batch: 2, window: evaluator })));
    const saved = evaluator.state();
    const restored = new PrequentialEvaluator('mse', 7);
    restored.restore(saved);
    const rest = collectSync(from(samples.slice(16)).pipe(train(first, { batch: 2, window: restored }))).values;
    expect(rest.map((r) => r.metrics)).toEqual(uninterrupted.slice(8).map((r) => r.metrics));
    expect(() => new PrequentialEvaluator('mse', 6).restore(saved)).toThrow(/window is 6/);
    expect(() => new PrequentialEvaluator('bce', 7).restore(saved)).toThrow(/accuracy is missing/);
  });
});

describe('RollingMean', () => {
  it('NaN before the first value; count caps at the window; the mean is of the last W', () => {
    const r = new RollingMean(3);
    expect(r.count).toBe(0);
    expect(Number.isNaN(r.mean)).toBe(true);
    const pushed: number[] = [];
    for (const v of [4, 8, 15, 16, 23, 42, -7]) {
      r.push(v);
      pushed.push(v);
      expect(r.count).toBe(Math.min(3, pushed.length));
      expect(r.mean).toBeCloseTo(mean(pushed.slice(-3)), 12);
    }
    expect(r.window).toBe(3);
  });

  it('refuses a window that is not a positive integer', () => {
    for (const w of [0, -1, 1.5, NaN, Infinity]) expect(() => new RollingMean(w)).toThrow();
  });

  it('drift-free: after 1e6 pushes the mean still equals the exact mean of the last W', () => {
    for (const window of [1000, 997]) {
      const rng = new Rng(window);
      const r = new RollingMean(window);
      const ring = new Float64Array(window);
      const n = 1_000_000;
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const v = 1e3 + 250 * rng.normal() + (i % 17) * 1e-3;
        ring[i % window] = v;
        r.push(v);
        if (i % 9973 === 0 || i >= n - 3 * window) {
          // exact reference: compensated (Neumaier) sum of the window's values
          let s = 0, c = 0;
          const count = Math.min(i + 1, window);
          for (let k = 0; k < count; k++) {
            const x = ring[k], t = s + x;
            c += Math.abs(s) >= Math.abs(x) ? (s - t) + x : (x - t) + s;
            s = t;
          }
          const exact = (s + c) / count;
          worst = Math.max(worst, Math.abs(r.mean - exact) / Math.abs(exact));
        }
      }
      expect(r.count).toBe(window);
      expect(worst).toBeLessThan(1e-12);
    }
  });

  it('a non-finite value stops counting as soon as it leaves the window', () => {
    for (const bad of [Infinity, NaN]) {
      const r = new RollingMean(4);
      const pushed: number[] = [];
      for (const v of [1, bad, 1, 1, 2, 2, 2, 2]) {
        r.push(v);
        pushed.push(v);
        const last = pushed.slice(-4);
        if (last.every(Number.isFinite)) expect(r.mean, `after ${pushed.join(', ')}`).toBeCloseTo(mean(last), 12);
      }
    }
  });

  it('a huge value that leaves the window does not wipe out the small ones (no cancellation)', () => {
    const r = new RollingMean(4);
    const pushed: number[] = [];
    for (const v of [1, 1e300, 1, 1, 2, 2, 2, 2]) {
      r.push(v);
      pushed.push(v);
      expect(r.mean / mean(pushed.slice(-4)), `after ${pushed.join(', ')}`).toBeCloseTo(1, 12);
    }
  });
});
