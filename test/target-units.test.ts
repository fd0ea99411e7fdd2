import { from, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { normalize } from '../operators/normalize.ts';
import { PrequentialEvaluator } from '../core/evaluation.ts';
import { Normalizer } from '../core/normalizer.ts';
import { type SamplePrediction, samplePredictions } from '../pipeline/sample-predictions.ts';
import type { TracedSample } from '../core/sample.ts';
import { type ScoredStep, train } from '../pipeline/train.ts';
import { createTrainer } from '../core/trainer.ts';
import { outputsOf, regressionSamples, seededModel } from './helpers/streams.ts';

/**
 * Metrics in the user's units (issue #11): a model that learns a standardised target is
 * scored on its prediction mapped back with the statistics that sample saw, against the
 * target as it arrived; whole-stream totals beside the rolling window; per-sample records.
 */

describe('PrequentialEvaluator with TargetUnits: loss (mse) and MAE in the target\'s units', () => {
  it('hand computation: z-predictions 0.5 and −1 of targets 10 (mean 8, sd 2) and 3 (mean 5, sd 4)', () => {
    const e = new PrequentialEvaluator('mse', 10);
    const samples: TracedSample[] = [
      { x: [0], y: [1], units: { y: [10], mean: Float64Array.of(8), scale: Float64Array.of(2) } },
      { x: [0], y: [-0.5], units: { y: [3], mean: Float64Array.of(5), scale: Float64Array.of(4) } },
    ];
    // the z-space loss per sample is what training used; the metrics ignore it for mse
    e.score(Float64Array.of(0.5, -1), Float64Array.of(1, -0.5), Float64Array.of(0.25, 0.25), 2, 1, samples);
    // predictions 0.5·2 + 8 = 9 (error 1) and −1·4 + 5 = 1 (error 2)
    expect(e.snapshot()).toEqual({ window: 10, count: 2, loss: (1 + 4) / 2, mae: (1 + 2) / 2 });
    expect(e.cumulative()).toEqual({ count: 2, loss: 2.5, mae: 1.5 });
  });

  it('without units the metrics are the training ones, as before', () => {
    const e = new PrequentialEvaluator('mse', 10);
    e.score(Float64Array.of(0.5), Float64Array.of(1), Float64Array.of(0.25), 1, 1, [{ x: [0], y: [1] }]);
    expect(e.snapshot()).toMatchObject({ loss: 0.25, mae: 0.5 });
  });

  it('whole-stream totals cover every sample while the window rolls; they survive state()/restore(), and an old state restarts them', () => {
    const e = new PrequentialEvaluator('cross_entropy', 2);
    const rows: [number[], number[], number][] = [[[0.9, 0.1], [1, 0], 0.1], [[0.2, 0.8], [1, 0], 1.6], [[0.3, 0.7], [0, 1], 0.4], [[0.6, 0.4], [0, 1], 0.9]];
    for (const [a, y, l] of rows) e.score(Float64Array.from(a), Float64Array.from(y), Float64Array.of(l), 1, 2);
    expect(e.snapshot()).toMatchObject({ count: 2, loss: (0.4 + 0.9) / 2, accuracy: 0.5 });
    const total = e.cumulative();
    expect(total.count).toBe(4);
    expect(total.loss).toBeCloseTo((0.1 + 1.6 + 0.4 + 0.9) / 4, 15);
    expect(total.accuracy).toBe(0.5);
    const copy = new PrequentialEvaluator('cross_entropy', 2);
    copy.restore(e.state());
    expect(copy.cumulative()).toEqual(total);
    const { total: _dropped, ...old } = e.state();
    copy.restore(old);
    expect(copy.cumulative().count).toBe(0);
    expect(copy.snapshot()).toEqual(e.snapshot());
  });
});

describe('normalize + train: the metrics are the user-unit errors of the predictions made before learning', () => {
  it('recomputed by hand from the z-predictions, with Welford statistics kept beside the stream', () => {
    const data = regressionSamples(60, 2, 1, 11).map((s) => ({ x: s.x, y: [100 + 40 * s.y[0]] })); // a target far from z-units
    const normalizer = new Normalizer({ inputs: 2, outputs: 1, target: true, warmup: 2, clip: Infinity });
    const trainer = createTrainer({ model: seededModel(2, [[4, 'tanh'], [1, 'linear']], 2), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 } });
    const zPredictions: number[] = [], zTargets: number[] = [];
    const results = new Subject<ScoredStep>();
    results.subscribe((s) => { zPredictions.push(s.outputs[0]); zTargets.push(s.targets[0]); });
    let last: { loss: number; mae: number } | null = null;
    from(data).pipe(normalize(normalizer), train(trainer, { window: 1000, onStep: (s) => results.next(s) })).subscribe((r) => { last = r.metrics; });
    // Welford by hand (population variance), divided from the 2nd sample on (warmup 2)
    let n = 0, mean = 0, m2 = 0, abs = 0, sq = 0;
    data.forEach((s, i) => {
      const scale = n >= 2 && m2 > 0 ? Math.sqrt(m2 / n) : 1;
      const shift = n === 0 ? 0 : mean;
      const prediction = zPredictions[i] * scale + shift;
      abs += Math.abs(prediction - s.y[0]);
      sq += (prediction - s.y[0]) ** 2;
      n++;
      const d = s.y[0] - mean;
      mean += d / n;
      m2 += d * (s.y[0] - mean);
    });
    expect(last!.mae).toBeCloseTo(abs / data.length, 9);
    expect(last!.loss).toBeCloseTo(sq / data.length, 6);
    // and not the z-unit figure (what used to be printed): many times smaller here
    const zMae = zPredictions.reduce((t, p, i) => t + Math.abs(p - zTargets[i]), 0) / data.length;
    expect(last!.mae / zMae).toBeGreaterThan(10);
  });
});

describe('samplePredictions: one record per sample, the prediction made before learning from it', () => {
  it('regression with a normalised target: prediction and target in user units, loss in units², origin kept', () => {
    const normalizer = new Normalizer({ inputs: 2, outputs: 1, target: true, warmup: 2, clip: Infinity });
    const trainer = createTrainer({ model: seededModel(2, [[1, 'linear']], 4), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 } });
    const data = regressionSamples(5, 2, 1, 3).map((s, i) => ({ x: s.x, y: [50 + 10 * s.y[0]], origin: { line: i + 2 } }));
    const records: SamplePrediction[] = [];
    from(data).pipe(normalize(normalizer), train(trainer, {
      onStep: (step) => { records.push(...samplePredictions(step, trainer, { model: 'm' })); },
    })).subscribe();
    expect(records.map((r) => [r.sample, r.step, r.line])).toEqual([[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 6]]);
    for (const [i, r] of records.entries()) {
      expect(r.target).toEqual(data[i].y);
      const p = (r.prediction as number[])[0];
      expect(r.loss).toBeCloseTo((p - data[i].y[0]) ** 2, 9);
      expect(r.learned).toBe(true);
    }
    expect((records[0].prediction as number[])[0]).toBe(outputsOf(seededModel(2, [[1, 'linear']], 4), [[0, 0]])[0]); // first sample: z = 0 input, mean 0, scale 1
  });

  it('classifier: class names, target class, probabilities by name, correct', () => {
    const model = seededModel(2, [[3, 'softmax']], 5);
    const trainer = createTrainer({ model, loss: 'cross_entropy', optimizer: { type: 'sgd', learningRate: 0.1 } });
    const initial = outputsOf(model, [[0.5, -0.5]], trainer.kernels);
    const records: SamplePrediction[] = [];
    from([{ x: [0.5, -0.5], y: [0, 0, 1] }]).pipe(train(trainer, { onStep: (s) => records.push(...samplePredictions(s, trainer, { model: 'c', classes: ['a', 'b', 'c'] })) })).subscribe();
    const best = initial.indexOf(Math.max(...initial));
    expect(records[0]).toMatchObject({ model: 'c', sample: 0, step: 1, prediction: ['a', 'b', 'c'][best], target: 'c', correct: best === 2 });
    expect(records[0].probabilities).toEqual({ a: initial[0], b: initial[1], c: initial[2] });
  });
});
