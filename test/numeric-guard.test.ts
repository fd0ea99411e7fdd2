import fc from 'fast-check';
import { from, Subject, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Activation } from '../core/activations.ts';
import type { ErrorCode } from '../core/errors.ts';
import { jsKernels } from '../core/kernels-js.ts';
import type { Kernels } from '../core/kernels.ts';
import type { Loss } from '../core/losses.ts';
import type { OptimizerConfig } from '../core/optimizers.ts';
import type { Rejection } from '../core/sample.ts';
import { type StepResult, train } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { allFinite, collectSync, expectSgError, hashOf, regressionSamples, seededModel, tinyTrainer, weightsHash } from './helpers/streams.ts';

/** 2 inputs → 1 linear output, mse, SGD: small enough to reason about by hand. */
const linearTrainer = (params?: readonly number[], extra: { maxConsecutiveSkips?: number } = {}, kernels?: Kernels): Trainer => {
  const model = seededModel(2, [[1, 'linear']], 3);
  if (params) model.params.set(params);
  return createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 }, kernels, ...extra });
};

const good = regressionSamples(2, 2, 1, 9);

interface Run {
  readonly results: StepResult[];
  readonly rejections: Rejection[];
  /** Weights hash at the moment each rejection was reported. */
  readonly hashAtReject: string[];
  /** Weights hash right after each StepResult. */
  readonly hashAfterStep: string[];
  readonly error: unknown;
  readonly trainer: Trainer;
}

function run(trainer: Trainer, samples: readonly unknown[], batchSize = 1): Run {
  const rejections: Rejection[] = [], hashAtReject: string[] = [], hashAfterStep: string[] = [];
  const { values, error } = collectSync(from(samples).pipe(
    train(trainer, {
      batch: batchSize,
      onReject: (r) => { rejections.push(r); hashAtReject.push(weightsHash(trainer.model)); },
    }),
    tap(() => hashAfterStep.push(weightsHash(trainer.model))),
  ));
  return { results: values, rejections, hashAtReject, hashAfterStep, error, trainer };
}

/** Trains good[0], then `bad`, then good[1]; checks the bad sample had no effect at all. */
function expectRejected(bad: unknown, code: ErrorCode, field: string, trainer = linearTrainer(), reference = linearTrainer()): void {
  const r = run(trainer, [good[0], bad, good[1]]);
  expect(r.error).toBeUndefined();
  expect(r.rejections).toHaveLength(1);
  const { error, sample } = r.rejections[0];
  expectSgError(error, code, field);
  expect(error.message).toContain(field);
  expect(sample).toBe(bad); // the value as it arrived
  // weights bitwise unchanged by the rejection, and the stream went on to train good[1]
  expect(r.hashAtReject[0]).toBe(r.hashAfterStep[0]);
  expect(r.results).toHaveLength(2);
  expect(r.results[1].counters.rejected).toBe(1);
  expect(r.results[1].counters.steps).toBe(2);
  expect(r.results[1].updated).toBe(true);
  expect(r.hashAfterStep[1]).not.toBe(r.hashAfterStep[0]);
  // exactly as if the bad sample had never been there
  run(reference, [good[0], good[1]]);
  expect(weightsHash(trainer.model)).toBe(weightsHash(reference.model));
}

describe('bad inputs never reach the weights (RELIABILITY 1–4)', () => {
  const x0 = good[0].x;
  const cases: [string, unknown, ErrorCode, string][] = [
    ['NaN feature', { x: [0.1, NaN], y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[1]'],
    ['+Infinity in x', { x: [Infinity, 0.2], y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[0]'],
    ['-Infinity in x', { x: [0.2, -Infinity], y: [1] }, 'SG_ERR_NONFINITE_INPUT', 'x[1]'],
    ['+Infinity scalar y', { x: x0, y: Infinity }, 'SG_ERR_NONFINITE_INPUT', 'y'],
    ['-Infinity in y', { x: x0, y: [-Infinity] }, 'SG_ERR_NONFINITE_INPUT', 'y[0]'],
    ['NaN in y', { x: x0, y: [NaN] }, 'SG_ERR_NONFINITE_INPUT', 'y[0]'],
    ['1e309 parsed from JSON text', JSON.parse('{"x":[0.5,1e309],"y":[1]}'), 'SG_ERR_NONFINITE_INPUT', 'x[1]'],
    ['-1e309 parsed from JSON text (in y)', JSON.parse('{"x":[0.5,0.25],"y":[-1e309]}'), 'SG_ERR_NONFINITE_INPUT', 'y[0]'],
    ['NaN in a Float64Array', { x: Float64Array.of(1, NaN), y: 1 }, 'SG_ERR_NONFINITE_INPUT', 'x[1]'],
    ['fewer features', { x: [0.5], y: 1 }, 'SG_ERR_ARITY', 'x'],
    ['more features', { x: [0.5, 0.5, 0.5], y: 1 }, 'SG_ERR_ARITY', 'x'],
    ['no features', { x: [], y: 1 }, 'SG_ERR_ARITY', 'x'],
    ['too many targets', { x: x0, y: [1, 2] }, 'SG_ERR_ARITY', 'y'],
    ['string "1.0"', { x: [0.5, '1.0'], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['null', { x: [0.5, null], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['true', { x: [true, 0.5], y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['{}', { x: [0.5, {}], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['[]', { x: [0.5, []], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['10n (bigint)', { x: [0.5, 10n], y: 1 }, 'SG_ERR_TYPE', 'x[1]'],
    ['bigint target', { x: x0, y: 10n }, 'SG_ERR_TYPE', 'y'],
    ['string target "1"', { x: x0, y: '1' }, 'SG_ERR_TYPE', 'y'],
    ['x as a string', { x: '0.5,0.5', y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['x null', { x: null, y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['x a single number', { x: 0.5, y: 1 }, 'SG_ERR_TYPE', 'x'],
    ['x a BigInt64Array', { x: BigInt64Array.of(1n, 2n), y: 1 }, 'SG_ERR_TYPE', 'x[0]'],
    ['missing x', { y: 1 }, 'SG_ERR_MISSING', 'x'],
    ['missing y', { x: x0 }, 'SG_ERR_MISSING', 'y'],
    ['a bare number', 42, 'SG_ERR_TYPE', 'sample'],
    ['null sample', null, 'SG_ERR_TYPE', 'sample'],
    ['an array sample', [[0.5, 0.5], 1], 'SG_ERR_TYPE', 'sample'],
  ];
  for (const [name, bad, code, field] of cases) {
    it(`${name} → ${code} at ${field}; counted; weights unchanged; stream trains on`, () => {
      expectRejected(bad, code, field);
    });
  }

  it('a rejection inside a batch leaves the batch to the good samples only', () => {
    const trainer = linearTrainer(), reference = linearTrainer();
    const r = run(trainer, [good[0], { x: [NaN, 1], y: 0 }, good[1]], 2);
    expect(r.results.map((s) => s.size)).toEqual([2]);
    expect(r.results[0].counters.rejected).toBe(1);
    run(reference, good, 2);
    expect(weightsHash(trainer.model)).toBe(weightsHash(reference.model));
  });

  it('property: any arity other than the model\'s is rejected with SG_ERR_ARITY, never padded or truncated', () => {
    const lengths = fc.integer({ min: 0, max: 12 }).filter((n) => n !== 2);
    fc.assert(fc.property(lengths, fc.array(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }), { minLength: 12, maxLength: 12 }), (n, pool) => {
      expectRejected({ x: pool.slice(0, n), y: [0.5] }, 'SG_ERR_ARITY', 'x');
    }), { numRuns: 60 });
  });

  it('property: a non-finite value at any position of x is rejected naming that position', () => {
    fc.assert(fc.property(fc.nat(1), fc.constantFrom(NaN, Infinity, -Infinity), (i, v) => {
      const x = [0.25, -0.5];
      x[i] = v;
      expectRejected({ x, y: [1] }, 'SG_ERR_NONFINITE_INPUT', `x[${i}]`);
    }), { numRuns: 30 });
  });
});

describe('non-finite loss skips the step (RELIABILITY 6, 18)', () => {
  it('a huge finite input (~1e300) that overflows the loss: skipped, counted, weights bitwise unchanged', () => {
    const trainer = linearTrainer([0.5, 0.25, 0.1]);
    const r = run(trainer, [good[0], { x: [1e300, 1e300], y: [0] }, good[1]]);
    expect(r.rejections).toEqual([]); // finite input: valid, the guard catches it later
    expect(r.results).toHaveLength(3);
    const skipped = r.results[1];
    expect(skipped.updated).toBe(false);
    expect(skipped.skipped).toMatchObject({ stage: 'loss', value: 'Infinity' });
    expect(skipped.skipped!.layer).toBeUndefined();
    expect(skipped.skipped!.message).toContain('Infinity');
    expect(skipped.loss).toBe(Infinity);
    expect(Number.isNaN(skipped.gradNorm)).toBe(true);
    expect(skipped.counters.skipped).toBe(1);
    expect(skipped.counters.consecutiveSkips).toBe(1);
    expect(r.hashAfterStep[1]).toBe(r.hashAfterStep[0]);
    expect(r.results[2].updated).toBe(true);
    expect(r.results[2].counters.consecutiveSkips).toBe(0);
    expect(allFinite(trainer.model.params)).toBe(true);
  });

  it('an overflow to ∞ − ∞ gives a NaN loss: skipped with value NaN', () => {
    // js kernels: 2·1e308 + 2·(−1e308) as written is ∞ − ∞; a fused multiply-add (native)
    // adds the exact −2e308 to ∞ and gets ∞, a loss of Infinity (skipped all the same)
    const trainer = linearTrainer([2, 2, 0], {}, jsKernels);
    const r = run(trainer, [{ x: [1e308, -1e308], y: [0] }]);
    expect(r.results[0].skipped).toMatchObject({ stage: 'loss', value: 'NaN' });
    expect(r.results[0].skipped!.message).toContain('NaN');
    expect(r.results[0].updated).toBe(false);
    expect(Array.from(trainer.model.params)).toEqual([2, 2, 0]);
  });

  const nets: [string, readonly (readonly [number, Activation])[], Loss][] = [
    ['linear', [[1, 'linear']], 'mse'],
    ['tanh → linear', [[4, 'tanh'], [1, 'linear']], 'mse'],
    ['relu → linear', [[4, 'relu'], [1, 'linear']], 'mse'],
    ['leaky_relu → sigmoid (bce)', [[3, 'leaky_relu'], [1, 'sigmoid']], 'bce'],
    ['tanh → softmax (cross entropy)', [[3, 'tanh'], [2, 'softmax']], 'cross_entropy'],
  ];
  for (const [name, layers, lossKind] of nets) {
    it(`property (${name}): after huge inputs the weights are finite, and a skip never changes them`, () => {
      const outputs = layers[layers.length - 1][0];
      const huge = fc.double({ min: 1e290, max: 1e305, noNaN: true }).chain((v) => fc.constantFrom(v, -v));
      fc.assert(fc.property(fc.array(huge, { minLength: 2, maxLength: 2 }), fc.nat(outputs - 1), (x, cls) => {
        const trainer = createTrainer({ model: seededModel(2, layers, 5), loss: lossKind, optimizer: { type: 'sgd', learningRate: 0.01 } });
        const y = Array.from({ length: outputs }, (_, k) => (lossKind === 'mse' ? 0.5 : k === cls ? 1 : 0));
        const r = run(trainer, [{ x: good[0].x, y }, { x, y }, { x: good[1].x, y }]);
        expect(r.error).toBeUndefined();
        expect(r.results).toHaveLength(3);
        if (layers.length === 1) expect(r.results[1].updated).toBe(false); // a linear net must overflow its mse
        if (!r.results[1].updated) {
          expect(r.results[1].skipped).not.toBeNull();
          expect(r.hashAfterStep[1]).toBe(r.hashAfterStep[0]);
        }
        expect(allFinite(trainer.model.params)).toBe(true);
      }), { numRuns: 25 });
    });
  }
});

describe('an applied step never leaves non-finite state behind (RELIABILITY 6, 19)', () => {
  // A finite gradient can still have g² > Number.MAX_VALUE (|g| > 1.3e154): the optimizer's
  // second moment then becomes Infinity, every later update of those weights is m/∞ = 0,
  // and the step was reported as a normal update. Either the guard skips such a step or
  // the state stays finite.
  const optimizers: OptimizerConfig[] = [
    { type: 'sgd', learningRate: 0.1 },
    { type: 'momentum', learningRate: 0.01 },
    { type: 'adam', learningRate: 0.01 },
    { type: 'rmsprop', learningRate: 0.01 },
    { type: 'adagrad', learningRate: 0.1 },
  ];
  const cases: [string, Loss, Activation, { x: number[]; y: number[] }][] = [
    ['bce, x ≈ 1e300', 'bce', 'sigmoid', { x: [1e300, 1e300], y: [0] }],
    ['mse, x ≈ 1e100 (loss 1e200 is finite)', 'mse', 'linear', { x: [1e100, 1e100], y: [0] }],
  ];
  for (const [name, lossKind, activation, huge] of cases) {
    it(`${name}: with every optimizer, weights and optimizer moments stay finite, or the step is skipped`, () => {
      const violations: string[] = [];
      for (const opt of optimizers) {
        const model = seededModel(2, [[1, activation]], 3);
        const trainer = createTrainer({ model, loss: lossKind, optimizer: opt });
        const r = run(trainer, [huge]);
        const step = r.results[0];
        expect(r.error).toBeUndefined();
        expect(step.updated).toBe(step.skipped === null);
        if (!step.updated) {
          expect(trainer.optimizer.t).toBe(0);
          continue;
        }
        const bad = [['params', model.params], ['m', trainer.optimizer.m], ['v', trainer.optimizer.v]] as const;
        for (const [what, arr] of bad) if (!allFinite(arr)) violations.push(`${opt.type}: ${what} = [${Array.from(arr).join(', ')}] after an applied step`);
      }
      expect(violations).toEqual([]);
    });
  }
});

describe('K consecutive skips → SG_ERR_DIVERGED (RELIABILITY 18)', () => {
  const huge = { x: [1e300, 1e300], y: [0] };

  it('errors on the K-th skip in a row, keeping the last good weights; a good step resets the count', () => {
    const trainer = linearTrainer([0.5, 0.25, 0.1], { maxConsecutiveSkips: 3 });
    const r = run(trainer, [good[0], huge, huge, good[1], huge, huge, huge, good[0]]);
    expect(r.results.map((s) => s.updated)).toEqual([true, false, false, true, false, false]);
    expect(r.results.map((s) => s.counters.consecutiveSkips)).toEqual([0, 1, 2, 0, 1, 2]);
    const err = expectSgError(r.error, 'SG_ERR_DIVERGED', 'loss');
    expect(err.message).toContain('3 consecutive');
    expect(err.message).toContain('Infinity');
    expect(weightsHash(trainer.model)).toBe(r.hashAfterStep[3]); // the last good step's weights
    expect(allFinite(trainer.model.params)).toBe(true);
    expect(trainer.counters.skipped).toBe(5);
    expect(trainer.counters.steps).toBe(7); // the sample after the error was never trained
  });

  it('maxConsecutiveSkips must be a positive integer', () => {
    for (const bad of [0, -1, 1.5, NaN]) {
      expect(() => createTrainer({ model: seededModel(2, [[1, 'linear']]), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 }, maxConsecutiveSkips: bad }))
        .toThrowError(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'maxConsecutiveSkips' }));
    }
  });
});

describe('non-finite gradient with a finite loss (RELIABILITY 18)', () => {
  it('crafted: a hidden unit at 1e307 makes the output layer\'s weight gradient +Infinity → skipped at layer 1', () => {
    // 1 → 1 linear → 1 linear; h = 1e307·x, out = 0·h + 10; mse against 0: loss 100,
    // dL/dout = 20, dL/dW₁ = 20·1e307 = Infinity, while dL/dh = 20·0 = 0
    const model = seededModel(1, [[1, 'linear'], [1, 'linear']], 1);
    model.params.set([1e307, 0, 0, 10]);
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 }, maxConsecutiveSkips: 2 });
    const before = weightsHash(model);
    const source = new Subject<unknown>();
    const results: StepResult[] = [];
    let failure: unknown;
    source.pipe(train(trainer)).subscribe({ next: (s) => results.push(s), error: (e) => { failure = e; } });
    source.next({ x: [1], y: [0] });
    const step = results[0];
    expect(step.loss).toBe(100);
    expect(step.updated).toBe(false);
    expect(step.skipped).toMatchObject({ stage: 'gradient', value: 'Infinity', layer: 1 });
    expect(step.skipped!.message).toMatch(/layer 1 weights is Infinity/);
    expect(Number.isNaN(step.gradNorm)).toBe(true);
    expect(step.counters.skipped).toBe(1);
    expect(weightsHash(model)).toBe(before);
    expect(trainer.optimizer.t).toBe(0); // optimizer state untouched too
    source.next({ x: [1], y: [0] });
    expectSgError(failure, 'SG_ERR_DIVERGED', 'layers[1]');
    expect(weightsHash(model)).toBe(before);
  });

  it('injected through a Kernels wrapper: a NaN in layer 0\'s bias gradient → skipped at layer 0, says NaN', () => {
    let inject = false;
    const kernels: Kernels = {
      ...jsKernels,
      name: 'nan-injector',
      denseBackward(x, delta, W, gW, gb, dx, rows, n, m) {
        jsKernels.denseBackward(x, delta, W, gW, gb, dx, rows, n, m);
        if (inject && dx === null) gb[1] = NaN; // dx is null only for the first layer
      },
    };
    const trainer = tinyTrainer({ kernels, optimizer: { type: 'adam', learningRate: 0.01 } });
    const reference = tinyTrainer({ kernels: jsKernels, optimizer: { type: 'adam', learningRate: 0.01 } });
    const samples = regressionSamples(4);
    const source = new Subject<unknown>();
    const results: StepResult[] = [];
    const hashes: string[] = [];
    const moments = () => hashOf(trainer.optimizer.m) + hashOf(trainer.optimizer.v);
    const momentHashes: string[] = [];
    source.pipe(train(trainer)).subscribe((s) => { results.push(s); hashes.push(weightsHash(trainer.model)); momentHashes.push(moments()); });
    source.next(samples[0]);
    inject = true;
    source.next(samples[1]);
    inject = false;
    source.next(samples[2]);

    const skipped = results[1];
    expect(Number.isFinite(skipped.loss)).toBe(true);
    expect(skipped.updated).toBe(false);
    expect(skipped.skipped).toMatchObject({ stage: 'gradient', value: 'NaN', layer: 0 });
    expect(skipped.skipped!.message).toMatch(/layer 0 bias is NaN/);
    expect(hashes[1]).toBe(hashes[0]);
    expect(momentHashes[1]).toBe(momentHashes[0]);
    expect(results[2].updated).toBe(true);
    expect(trainer.optimizer.t).toBe(2);
    // the skipped sample left no trace: same as training on samples 0 and 2 only
    collectSync(from([samples[0], samples[2]]).pipe(train(reference)));
    expect(weightsHash(trainer.model)).toBe(weightsHash(reference.model));
  });
});

describe('exploding gradients are clipped (RELIABILITY 17)', () => {
  it('lr = 10 on unscaled inputs: norm reported before clipping, update norm ≤ clipNorm·lr, weights finite', () => {
    const clipNorm = 1, lr = 10;
    const model = seededModel(2, [[1, 'linear']], 8);
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: lr }, clipNorm });
    const samples = regressionSamples(40, 2, 1, 21).map((s) => ({ x: s.x.map((v) => v * 100), y: s.y.map((v) => v * 100) }));
    const seen: { r: StepResult; before: Float64Array; after: Float64Array }[] = [];
    let prev = model.params.slice();
    collectSync(from(samples).pipe(train(trainer, { window: 1 }), tap((r) => {
      const after = model.params.slice();
      seen.push({ r, before: prev, after });
      prev = after;
    })));
    let clippedSteps = 0;
    for (const { r, before, after } of seen) {
      const x = samples[r.step].x;
      // single neuron, batch 1: ‖g‖ = 2|a − y|·√(‖x‖² + 1), and |a − y| is the 1-sample MAE
      const expectedNorm = 2 * r.metrics.mae * Math.sqrt(x[0] * x[0] + x[1] * x[1] + 1);
      expect(r.gradNorm / expectedNorm).toBeCloseTo(1, 9);
      const moved = Math.hypot(...Array.from(after, (v, i) => v - before[i]));
      expect(moved / lr).toBeLessThanOrEqual(clipNorm * (1 + 1e-9));
      expect(r.clipped).toBe(r.gradNorm > clipNorm);
      if (r.clipped) clippedSteps++;
      expect(allFinite(after)).toBe(true);
    }
    expect(seen).toHaveLength(40);
    expect(clippedSteps).toBeGreaterThan(0);
    expect(trainer.counters.clipped).toBe(clippedSteps);
  });
});
