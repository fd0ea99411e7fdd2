import fc from 'fast-check';
import { finalize, from, Observable, share, Subject, take, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { cloneModel } from '../core/model.ts';
import { type OptimizerConfig, setLearningRate } from '../core/optimizers.ts';
import { Throughput } from '../pipeline/throughput.ts';
import { type StepResult, train, type TrainOptions } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import {
  collect, collectSync, counted, expectSgError, ManualScheduler, regressionSamples, seededModel, thrown, tinyTrainer, weightsHash,
} from './helpers/streams.ts';

/** A fake monotonic clock: each reading is `stepMs` later than the one before. */
const fakeClock = (stepMs: number) => {
  let t = 1000;
  return () => (t += stepMs);
};

const trainAlone = (trainer: Trainer, samples: readonly unknown[], options: TrainOptions = {}) =>
  collectSync(from(samples).pipe(train(trainer, options)));

describe('train(): one StepResult per step', () => {
  it('numbers steps, sizes and counters, reports metrics and a deterministic samples/s', () => {
    const trainer = tinyTrainer();
    const samples = regressionSamples(20);
    const { values, completed } = trainAlone(trainer, samples, { batch: 4, clock: fakeClock(10) });
    expect(completed).toBe(true);
    expect(values.map((r) => r.step)).toEqual([0, 1, 2, 3, 4]);
    expect(values.map((r) => r.size)).toEqual([4, 4, 4, 4, 4]);
    values.forEach((r, i) => {
      expect(r.counters).toEqual({ steps: i + 1, samples: 4 * (i + 1), skipped: 0, skippedSamples: 0, consecutiveSkips: 0, clipped: 0, rejected: 0 });
      expect(r.updated).toBe(true);
      expect(r.skipped).toBeNull();
      expect(r.learningRate).toBe(0.05);
      expect(Number.isFinite(r.loss)).toBe(true);
      expect(r.gradNorm).toBeGreaterThan(0);
      expect(r.metrics.window).toBe(1000);
      expect(r.metrics.count).toBe(4 * (i + 1));
      expect(Number.isFinite(r.metrics.loss)).toBe(true);
      expect(Number.isFinite(r.metrics.mae)).toBe(true);
      expect('accuracy' in r.metrics).toBe(false); // mse: a regression, no accuracy
    });
    // the first step starts the clock; from then on 4 samples per 10 ms = 400 samples/s
    for (const r of values.slice(1)) expect(r.samplesPerSecond).toBe(400);
    expect(trainer.counters.steps).toBe(5);
  });

  it('StepResults are plain values: later steps do not change earlier ones', () => {
    const trainer = tinyTrainer();
    const { values } = trainAlone(trainer, regressionSamples(12), { batch: 3 });
    const copy = structuredClone(values);
    expect(values).toEqual(copy);
    expect(values[0].counters).not.toBe(values[1].counters);
    expect(values[0].metrics).not.toBe(values[1].metrics);
  });

  it('trains the partial last batch: 26 samples at batch 8 → 4 steps, the last of 2', () => {
    const trainer = tinyTrainer();
    const { values } = trainAlone(trainer, regressionSamples(26), { batch: 8 });
    expect(values.map((r) => r.size)).toEqual([8, 8, 8, 2]);
    expect(values.every((r) => r.updated)).toBe(true);
    expect(values[3].counters.samples).toBe(26);

    // the partial batch really was applied: a run that drops it ends elsewhere
    const dropped = tinyTrainer();
    const d = trainAlone(dropped, regressionSamples(26), { batch: { count: 8, partial: 'drop' } });
    expect(d.values.map((r) => r.size)).toEqual([8, 8, 8]);
    expect(weightsHash(dropped.model)).not.toBe(weightsHash(trainer.model));
  });

  it('a source that completes mid-batch (live Subject) trains its partial batch, then completes', () => {
    const trainer = tinyTrainer();
    const source = new Subject<unknown>();
    const results: StepResult[] = [];
    let completed = false;
    source.pipe(train(trainer, { batch: 8 })).subscribe({ next: (r) => results.push(r), complete: () => { completed = true; } });
    regressionSamples(11).forEach((s) => source.next(s));
    expect(results.map((r) => r.size)).toEqual([8]);
    const before = weightsHash(trainer.model);
    source.complete();
    expect(completed).toBe(true);
    expect(results.map((r) => r.size)).toEqual([8, 3]);
    expect(weightsHash(trainer.model)).not.toBe(before);
  });
});

describe('train(): several trainers on one shared source', () => {
  const configs: OptimizerConfig[] = [
    { type: 'sgd', learningRate: 0.05 },
    { type: 'adam', learningRate: 0.01 },
    { type: 'momentum', learningRate: 0.02, momentum: 0.8 },
  ];
  const make = (i: number) => createTrainer({ model: seededModel(3, [[5, 'relu'], [1, 'linear']], 11), loss: 'mse', optimizer: configs[i] });

  it('each trains independently and ends bitwise where training alone ends', () => {
    const samples = regressionSamples(37);
    const alone = configs.map((_, i) => {
      const t = make(i);
      const r = trainAlone(t, samples, { batch: 4 });
      return { hash: weightsHash(t.model), losses: r.values.map((v) => v.loss) };
    });

    const subject = new Subject<unknown>();
    const shared = subject.pipe(share());
    const trainers = configs.map((_, i) => make(i));
    const losses: number[][] = trainers.map(() => []);
    const done: boolean[] = trainers.map(() => false);
    trainers.forEach((t, i) => shared.pipe(train(t, { batch: 4 })).subscribe({
      next: (r) => losses[i].push(r.loss),
      complete: () => { done[i] = true; },
    }));
    samples.forEach((s) => subject.next(s));
    subject.complete();

    expect(done).toEqual([true, true, true]);
    trainers.forEach((t, i) => {
      expect(weightsHash(t.model)).toBe(alone[i].hash);
      expect(losses[i]).toEqual(alone[i].losses);
      expect(t.counters.samples).toBe(37);
    });
    // and they really are different models
    expect(new Set(alone.map((a) => a.hash)).size).toBe(3);
  });

  it('never mutates the sample objects (River check_learn_one), arrays or typed arrays', () => {
    const base = regressionSamples(24);
    const samples = base.map((s, i) => (i % 2 === 0 ? s : { x: Float64Array.from(s.x), y: s.y[0] }));
    const before = structuredClone(samples);
    const subject = new Subject<unknown>();
    const shared = subject.pipe(share());
    const trainers = configs.map((_, i) => make(i));
    trainers.forEach((t) => shared.pipe(train(t, { batch: 5 })).subscribe());
    samples.forEach((s) => subject.next(s));
    subject.complete();
    expect(samples).toEqual(before);
    trainers.forEach((t) => expect(t.counters.samples).toBe(24));
  });
});

describe('train(): every kind of numeric array loads the same values', () => {
  // loadBatch copies a typed array of 12 values or more as one block: the values must be
  // those an element-by-element copy gives (Float32 and Int8 widened exactly)
  for (const [inputs, outputs] of [[3, 2], [13, 12], [12, 1]]) {
    it(`typed arrays (whole, views, Float32Array, Int8Array) train bitwise as plain arrays of their values: ${inputs} inputs, ${outputs} outputs`, () => {
      const model = () => seededModel(inputs, [[5, 'relu'], [outputs, 'linear']], 11);
      const f32 = regressionSamples(29, inputs, outputs).map((s) => ({ x: Float32Array.from(s.x), y: Float32Array.from(s.y) }));
      const backing = new Float64Array(inputs * 29 + 5);
      const typed = f32.map((s, i) => {
        switch (i % 4) {
          case 0: return s;
          case 1: { const x = backing.subarray(inputs * i + 1, inputs * i + 1 + inputs); x.set(s.x); return { x, y: Float64Array.from(s.y) }; }
          case 2: return { x: Float64Array.from(s.x), y: Array.from(s.y) };
          default: return { x: Array.from(s.x), y: Int8Array.from(s.y, (v) => Math.round(4 * v)) };
        }
      });
      const plain = typed.map((s) => ({ x: Array.from(s.x), y: Array.from(s.y) }));
      const runs = [typed, plain].map((samples) => {
        const t = createTrainer({ model: model(), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 } });
        const r = trainAlone(t, samples, { batch: 4 });
        expect(r.values).toHaveLength(8);
        return { weights: weightsHash(t.model), losses: r.values.map((v) => v.loss) };
      });
      expect(runs[0]).toEqual(runs[1]);
      expect(runs[0].losses.every(Number.isFinite)).toBe(true);
    });
  }
});

describe('train(): samples are read, never written (RELIABILITY 7, property)', () => {
  it('any valid samples, any batch size, two trainers sharing them: deep-equal before and after', () => {
    const finite = fc.double({ min: -100, max: 100, noNaN: true });
    const sample = fc.record({
      x: fc.oneof(fc.array(finite, { minLength: 3, maxLength: 3 }), fc.array(finite, { minLength: 3, maxLength: 3 }).map((v) => Float64Array.from(v))),
      y: fc.oneof(finite, fc.array(finite, { minLength: 1, maxLength: 1 }), finite.map((v) => Float64Array.of(v))),
    });
    fc.assert(fc.property(fc.array(sample, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 6 }), (samples, size) => {
      const before = structuredClone(samples);
      const subject = new Subject<unknown>();
      const shared = subject.pipe(share());
      const trainers = [tinyTrainer({ seed: 1 }), tinyTrainer({ seed: 2, optimizer: { type: 'adam', learningRate: 0.01 } })];
      trainers.forEach((t) => shared.pipe(train(t, { batch: size })).subscribe());
      samples.forEach((s) => subject.next(s));
      subject.complete();
      expect(samples).toEqual(before);
      trainers.forEach((t) => expect(t.counters.samples).toBe(samples.length));
    }), { numRuns: 50 });
  });
});

describe('train(): changing the learning rate mid-stream', () => {
  it('takes effect on the very next step, and only from then on', () => {
    const samples = regressionSamples(2, 2, 1, 3);
    const build = () => createTrainer({ model: seededModel(2, [[1, 'linear']], 5), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 } });

    const steady = build();
    const steadyResults = trainAlone(steady, samples).values;

    const changed = build();
    let afterFirst: Float64Array | null = null;
    const source = new Subject<unknown>();
    const results: StepResult[] = [];
    source.pipe(train(changed)).subscribe((r) => {
      results.push(r);
      if (r.step === 0) {
        afterFirst = changed.model.params.slice();
        setLearningRate(changed.optimizer, 0.5);
      }
    });
    samples.forEach((s) => source.next(s));

    expect(results.map((r) => r.learningRate)).toEqual([0.1, 0.5]);
    expect(results[0].loss).toBe(steadyResults[0].loss); // same first step
    expect(afterFirst).not.toBeNull();

    // step 1 by hand on the single linear neuron: z = b + Σ w·x, dL/dz = 2(z − y), p ← p − 0.5·g
    const p = afterFirst!;
    const { x, y } = samples[1];
    let z = p[2];
    z += x[0] * p[0];
    z += x[1] * p[1];
    const d = 2 * (z - y[0]);
    const expected = Float64Array.from([p[0] - 0.5 * (d * x[0]), p[1] - 0.5 * (d * x[1]), p[2] - 0.5 * d]);
    expect(Array.from(changed.model.params)).toEqual(Array.from(expected));
    expect(weightsHash(changed.model)).not.toBe(weightsHash(steady.model));
  });

  it('rejects a bad learning rate without touching the running one', () => {
    const trainer = tinyTrainer();
    expectSgError(thrown(() => setLearningRate(trainer.optimizer, NaN)), 'SG_ERR_CONFIG', 'learningRate');
    expectSgError(thrown(() => setLearningRate(trainer.optimizer, 0)), 'SG_ERR_CONFIG', 'learningRate');
    expect(trainer.optimizer.learningRate).toBe(0.05);
  });
});

describe('train(): lifecycle', () => {
  it('unsubscribing mid-stream stops training: later samples change nothing', () => {
    const trainer = tinyTrainer();
    const source = new Subject<unknown>();
    const samples = regressionSamples(30);
    const results: StepResult[] = [];
    const sub = source.pipe(train(trainer, { batch: 2 })).subscribe((r) => results.push(r));
    samples.slice(0, 11).forEach((s) => source.next(s)); // 5 steps and one sample buffered
    sub.unsubscribe();
    const hash = weightsHash(trainer.model);
    const counters = { ...trainer.counters };
    samples.slice(11).forEach((s) => source.next(s));
    expect(source.observed).toBe(false);
    expect(results.length).toBe(5);
    expect(weightsHash(trainer.model)).toBe(hash);
    expect(trainer.counters).toEqual(counters);
  });

  it('unsubscribing with a time window pending: the timer is released and never trains', () => {
    const trainer = tinyTrainer();
    const sched = new ManualScheduler();
    const source = new Subject<unknown>();
    const results: StepResult[] = [];
    const sub = source.pipe(train(trainer, { batch: { timeMs: 50, scheduler: sched.asScheduler } })).subscribe((r) => results.push(r));
    regressionSamples(3).forEach((s) => source.next(s));
    expect(sched.pending.size).toBe(1);
    const hash = weightsHash(trainer.model);
    sub.unsubscribe();
    expect(sched.pending.size).toBe(0);
    sched.advance(1000);
    expect(results).toEqual([]);
    expect(weightsHash(trainer.model)).toBe(hash);
  });

  it('a source error propagates as is, with no update after it, and every finalizer runs once (RELIABILITY 27)', async () => {
    const trainer = tinyTrainer();
    const samples = regressionSamples(6);
    const boom = new Error('sensor unplugged');
    let hashAfterLastStep = '';
    const raw = new Observable<unknown>((s) => {
      samples.forEach((v) => s.next(v)); // one full batch of 4, then 2 buffered
      s.error(boom);
      s.next(samples[0]); // a misbehaving source after its error: must be ignored
    });
    const c = counted(raw);
    let pipelineFinalized = 0;
    const steps: StepResult[] = [];
    const outcome = await collect(c.source.pipe(
      train(trainer, { batch: 4 }),
      tap((r) => { steps.push(r); hashAfterLastStep = weightsHash(trainer.model); }),
      finalize(() => { pipelineFinalized++; }),
    ));
    expect(outcome.error).toBe(boom);
    expect(outcome.completed).toBe(false);
    expect(steps.map((r) => r.size)).toEqual([4]); // the 2 buffered samples were not trained
    expect(weightsHash(trainer.model)).toBe(hashAfterLastStep);
    expect(trainer.counters.steps).toBe(1);
    expect(trainer.counters.samples).toBe(4);
    expect(c.subscribed()).toBe(1);
    expect(c.finalized()).toBe(1);
    expect(pipelineFinalized).toBe(1);
  });

  it('a source error with a pending time window: nothing is trained, the timer never fires', () => {
    const trainer = tinyTrainer();
    const sched = new ManualScheduler();
    const source = new Subject<unknown>();
    let failed: unknown = null;
    const hash = weightsHash(trainer.model);
    source.pipe(train(trainer, { batch: { timeMs: 20, scheduler: sched.asScheduler } })).subscribe({ error: (e) => { failed = e; } });
    regressionSamples(3).forEach((s) => source.next(s));
    source.error(new Error('gone'));
    sched.advance(100);
    expect((failed as Error).message).toBe('gone');
    expect(sched.pending.size).toBe(0);
    expect(weightsHash(trainer.model)).toBe(hash);
    expect(trainer.counters.steps).toBe(0);
  });

  it('a consumer that feeds the next sample from inside its handler trains exactly like a plain run', () => {
    const samples = regressionSamples(17);
    const plain = tinyTrainer();
    const plainLosses = trainAlone(plain, samples, { batch: 2 }).values.map((r) => r.loss);

    const looped = tinyTrainer();
    const source = new Subject<unknown>();
    const losses: number[] = [];
    let i = 0;
    const feed = (k: number) => { for (let j = 0; j < k && i < samples.length; j++) source.next(samples[i++]); if (i === samples.length) source.complete(); };
    source.pipe(train(looped, { batch: 2 })).subscribe((r) => { losses.push(r.loss); feed(2); });
    feed(2);
    expect(losses).toEqual(plainLosses);
    expect(weightsHash(looped.model)).toBe(weightsHash(plain.model));
  });

  it('resubscribing continues from the trainer state (no hidden reset): steps keep counting', () => {
    const trainer = tinyTrainer();
    const samples = regressionSamples(8);
    const pipeline = from(samples).pipe(train(trainer, { batch: 4 }));
    const first = collectSync(pipeline).values.map((r) => r.step);
    const second = collectSync(pipeline).values.map((r) => r.step);
    expect(first).toEqual([0, 1]);
    expect(second).toEqual([2, 3]);
    // same as training twice on the data in one run
    const once = tinyTrainer();
    trainAlone(once, [...samples, ...samples], { batch: 4 });
    expect(weightsHash(trainer.model)).toBe(weightsHash(once.model));
  });
});

describe('train(): options are validated when the operator is built (RELIABILITY 8, STYLE 9)', () => {
  it('batch: 0 throws SG_ERR_CONFIG from train() itself, before anything subscribes', () => {
    const trainer = tinyTrainer();
    expectSgError(thrown(() => train(trainer, { batch: 0 })), 'SG_ERR_CONFIG', 'batch.count');
  });

  it('window: 0 throws SG_ERR_CONFIG naming window from train() itself', () => {
    const trainer = tinyTrainer();
    expectSgError(thrown(() => train(trainer, { window: 0 })), 'SG_ERR_CONFIG', 'window');
  });

  it('a fractional window is a typed SG_ERR_CONFIG from train() itself, not a bare RangeError on subscribe', () => {
    const trainer = tinyTrainer();
    expectSgError(thrown(() => train(trainer, { window: 1.5 })), 'SG_ERR_CONFIG', 'window');
  });
});

describe('train(): a model cloned before training is untouched by it', () => {
  it('cloneModel gives an independent parameter vector', () => {
    const trainer = tinyTrainer();
    const snapshot = cloneModel(trainer.model);
    const hash = weightsHash(snapshot);
    trainAlone(trainer, regressionSamples(10), { batch: 2 });
    expect(weightsHash(snapshot)).toBe(hash);
    expect(weightsHash(trainer.model)).not.toBe(hash);
  });
});

describe('train(): a synchronous source stops when the consumer is done', () => {
  it('take(n) after train() stops pulling from a generator: no samples validated or rejected after the end', () => {
    const trainer = tinyTrainer();
    const good = regressionSamples(4);
    let pulled = 0;
    function* endless() {
      // a simulated sensor: bounded here only so that the test cannot hang
      for (let i = 0; i < 10_000; i++) {
        pulled++;
        yield i % 2 === 0 ? good[(i / 2) % 4] : { x: [NaN, 0, 0], y: [0] };
      }
    }
    let rejected = 0;
    let ended = false;
    from(endless()).pipe(train(trainer, { onReject: () => { rejected++; } }), take(2)).subscribe({ complete: () => { ended = true; } });
    expect(ended).toBe(true);
    expect(trainer.counters.steps).toBe(2);
    expect(pulled).toBeLessThanOrEqual(4);
    expect(rejected).toBeLessThanOrEqual(2);
    expect(trainer.counters.rejected).toBe(rejected);
  });
});

describe('Throughput: samples/s without a clock reading on every fast step', () => {
  /** A clock that the test moves, counting its readings. */
  const manualClock = () => {
    const c = { now: 0, reads: 0, read: () => { c.reads++; return c.now; } };
    return c;
  };

  it('calls 2 µs apart: the clock is read about every 8th call, and the rate is exact, across window turns', () => {
    const clock = manualClock();
    const speed = new Throughput(clock.read);
    const rates: number[] = [];
    for (let i = 0; i < 750_000; i++) { // 1.5 s: the one-second window turns once
      clock.now += 0.002;
      rates.push(speed.add(1));
    }
    expect(clock.reads).toBeLessThan(750_000 / 8 + 10);
    expect(rates[0]).toBeNaN(); // the first call starts the clock
    for (const r of [rates[1], rates[7], rates[100], rates[400_000], rates[749_999]]) expect(r).toBeCloseTo(500_000, 3);
  });

  it('calls that turn slow are timed on every call again within 8 calls', () => {
    const clock = manualClock();
    const speed = new Throughput(clock.read);
    for (let i = 0; i < 1000; i++) { clock.now += 0.002; speed.add(1); }
    const before = clock.reads;
    const rates: number[] = [];
    for (let i = 0; i < 20; i++) { clock.now += 10; rates.push(speed.add(1)); }
    // at most 7 calls go unread before the reading that sees the slowdown; after it, every call reads
    expect(clock.reads - before).toBeGreaterThanOrEqual(20 - 7);
    // every sample after the first, over the time since the first: exact, and no longer 500,000/s
    expect(rates[19]).toBeCloseTo((1019 * 1000) / (999 * 0.002 + 20 * 10), 6);
  });

  it('calls 10 ms apart: one reading per call, as before', () => {
    const clock = manualClock();
    const speed = new Throughput(clock.read);
    for (let i = 0; i < 50; i++) { clock.now += 10; speed.add(4); }
    expect(clock.reads).toBe(50);
  });
});
