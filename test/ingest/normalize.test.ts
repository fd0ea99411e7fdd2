import { from, lastValueFrom, map, of, Subject, tap, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { denormalize } from '../../operators/denormalize.ts';
import { normalize } from '../../operators/normalize.ts';
import { predict } from '../../operators/predict.ts';
import { initialize } from '../../core/init.ts';
import { createModel } from '../../core/model.ts';
import { Normalizer } from '../../core/normalizer.ts';
import type { Sample } from '../../core/sample.ts';
import { train } from '../../pipeline/train.ts';
import { createTrainer } from '../../core/trainer.ts';

const samples: Sample[] = [
  { x: [1, 10], y: [100] },
  { x: [3, 10], y: [200] },
  { x: [5, 10], y: [150] },
  { x: [-1, 10], y: [50] },
];

describe('normalize', () => {
  it('is prequential: each sample is scaled with the statistics of the samples before it, and learned after', async () => {
    const normalizer = new Normalizer({ inputs: 2, outputs: 1, target: true, warmup: 2, clip: Infinity });
    const countsSeenDownstream: number[] = [];
    const out = await lastValueFrom(from(samples).pipe(
      normalize(normalizer),
      tap(() => countsSeenDownstream.push(normalizer.x.count)),
      toArray(),
    ));
    expect(countsSeenDownstream).toEqual([0, 1, 2, 3]); // downstream runs before the sample joins the statistics
    // first sample: no statistics yet → 0; second: one value, no spread yet (warm-up 2) → 0,
    // never a deviation in raw units
    expect(Array.from(out[0].x)).toEqual([0, 0]);
    expect(Array.from(out[1].x)).toEqual([0, 0]);
    expect(Array.from(out[1].y as ArrayLike<number>)).toEqual([0]);
    // third: mean 2, sd 1 over {1, 3}; the constant feature stays centred at scale 1
    expect(Array.from(out[2].x)).toEqual([3, 0]);
    // fourth: {1, 3, 5}: mean 3, population sd √(8/3)
    expect(out[3].x[0]).toBeCloseTo(-4 / Math.sqrt(8 / 3), 14);
    expect(Array.from(out[3].y as ArrayLike<number>)[0]).toBeCloseTo((50 - 150) / Math.sqrt(5000 / 3), 12);
    expect(normalizer.x.count).toBe(4);
  });

  it('never mutates the input sample', async () => {
    const sample = { x: [1, 2], y: [3] };
    const copy = structuredClone(sample);
    await lastValueFrom(of(sample, sample).pipe(normalize(new Normalizer({ inputs: 2, outputs: 1, target: true }))));
    expect(sample).toEqual(copy);
  });

  it('maps values to 0 during the warm-up, then clips z-scores to ±√n (n samples seen) until that reaches ±clip', () => {
    const normalizer = new Normalizer({ inputs: 1, warmup: 3, clip: 2 });
    normalizer.learn({ x: [0], y: [0] });
    normalizer.learn({ x: [0.001], y: [0] });
    expect(normalizer.transform({ x: [1], y: [0] }).x[0]).toBe(0); // 2 samples < warm-up 3: no scale yet, so no value
    normalizer.learn({ x: [0.002], y: [0] });
    expect(normalizer.transform({ x: [1], y: [0] }).x[0]).toBe(Math.sqrt(3)); // a z-score in the thousands, clipped to √3 < 2
    expect(normalizer.transform({ x: [-1], y: [0] }).x[0]).toBe(-Math.sqrt(3));
    normalizer.learn({ x: [0.003], y: [0] });
    expect(normalizer.transform({ x: [1], y: [0] }).x[0]).toBe(2); // √4 = clip: the clip from here on
    for (let i = 0; i < 100; i++) normalizer.learn({ x: [i % 2], y: [0] });
    expect(normalizer.transform({ x: [100], y: [0] }).x[0]).toBe(2);
    // clip: Infinity turns both off
    const open = new Normalizer({ inputs: 1, warmup: 2, clip: Infinity });
    open.learn({ x: [0], y: [0] });
    open.learn({ x: [0.002], y: [0] });
    expect(open.transform({ x: [1], y: [0] }).x[0]).toBeCloseTo(999, 9);
  });

  it('hands the network no outsized value while it warms up: CO₂ levels in ppm (the first months of Mauna Loa), target too', () => {
    const co2 = [315.7, 317.46, 317.51, 315.86, 314.93, 313.19, 313.34, 314.67, 315.58, 316.47, 316.65, 317.72, 318.29, 318.15, 316.54];
    const normalizer = new Normalizer({ inputs: 2, outputs: 1, target: true });
    co2.slice(2).forEach((level, i) => {
      const sample = { x: [co2[i], co2[i + 1]], y: [level] };
      const z = normalizer.transform(sample);
      const n = normalizer.x.count;
      const bound = n < 2 ? 0 : Math.min(10, Math.sqrt(n));
      for (const v of [...Array.from(z.x), ...Array.from(z.y as ArrayLike<number>)]) expect(Math.abs(v), `sample ${i}: ${v}`).toBeLessThanOrEqual(bound);
      normalizer.learn(sample);
    });
  });

  it('denormalizeOutput maps z-units back to original units with the current statistics', () => {
    const normalizer = new Normalizer({ inputs: 1, outputs: 1, target: true, warmup: 2 });
    for (const s of samples) normalizer.learn({ x: [s.x[0]], y: s.y });
    const z = normalizer.transform({ x: [2], y: [123] });
    expect(normalizer.denormalizeOutput(z.y as ArrayLike<number>)[0]).toBeCloseTo(123, 10);
    const plain = new Normalizer({ inputs: 1 });
    expect(Array.from(plain.denormalizeOutput([0.5]))).toEqual([0.5]);
  });

  it('trains in z-units and predicts in original units (predict → denormalize)', async () => {
    const model = initialize(createModel({ inputSize: 1, layers: [{ units: 1, activation: 'linear' }] }), 'zeros', 0);
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 } });
    const normalizer = new Normalizer({ inputs: 1, outputs: 1, target: true });
    // y = 1000 + 50·x: hopeless for plain SGD at this scale, easy in z-units
    const data = Array.from({ length: 4000 }, (_, i) => ({ x: [((i * 7919) % 1000) / 10], y: [1000 + 50 * (((i * 7919) % 1000) / 10)] }));
    await lastValueFrom(from(data).pipe(normalize(normalizer), train(trainer)));
    const [prediction] = await lastValueFrom(of([40]).pipe(map((x) => normalizer.transformInput(x)), predict(model), denormalize(normalizer), toArray()));
    expect(prediction.output[0]).toBeCloseTo(3000, -1);
  });

  it('state() carries the warm-up and clip, and restore() refuses statistics used with other ones (a resume must scale as the run it continues)', () => {
    const a = new Normalizer({ inputs: 1, warmup: 5, clip: 3 });
    samples.forEach((s) => a.learn({ x: [s.x[0]], y: s.y }));
    const state = JSON.parse(JSON.stringify(a.state())) as ReturnType<Normalizer['state']>;
    expect(state.settings).toEqual({ warmup: 5, clip: 3 });
    const b = new Normalizer({ inputs: 1, warmup: 5, clip: 3 });
    b.restore(state);
    expect(b.state()).toEqual(a.state());
    expect(() => new Normalizer({ inputs: 1 }).restore(state)).toThrow(/normalizer\.settings: the saved statistics were used with warm-up 5, clip 3, this normaliser has warm-up 2, clip 10/);
    expect(new Normalizer({ inputs: 1, clip: Infinity }).state().settings).toEqual({ warmup: 2, clip: null }); // JSON has no Infinity
    const open = new Normalizer({ inputs: 1, clip: Infinity });
    open.restore(JSON.parse(JSON.stringify(new Normalizer({ inputs: 1, clip: Infinity }).state())));
    // a state written before the settings were kept (no `settings`) still restores
    const { settings: _settings, ...old } = state;
    new Normalizer({ inputs: 1 }).restore(old);
  });

  it('state() / restore() carry the statistics over (a checkpoint), and refuse a state of another shape', () => {
    const a = new Normalizer({ inputs: 2, outputs: 1, target: true });
    samples.forEach((s) => a.learn(s));
    const b = new Normalizer({ inputs: 2, outputs: 1, target: true });
    b.restore(JSON.parse(JSON.stringify(a.state())));
    expect(b.transform(samples[0])).toEqual(a.transform(samples[0]));
    expect(() => new Normalizer({ inputs: 2 }).restore(a.state())).toThrow(/normalizer\.y/);
    expect(() => new Normalizer({ inputs: 3, outputs: 1, target: true }).restore(a.state())).toThrow(/normalizer\.x\.mean: must be an array of 3/);
  });

  it('refuses bad configurations at construction', () => {
    expect(() => new Normalizer({ inputs: 0 })).toThrow(/inputs: must be an integer ≥ 1/);
    expect(() => new Normalizer({ inputs: 2, target: true })).toThrow(/outputs: must be an integer ≥ 1 to normalise the target/);
    expect(() => new Normalizer({ inputs: 2, warmup: 1 })).toThrow(/warmup: must be an integer ≥ 2/);
    expect(() => new Normalizer({ inputs: 2, clip: 0 })).toThrow(/clip: must be > 0/);
    expect(() => new Normalizer({ inputs: 2, clip: Number.NaN })).toThrow(/clip: must be > 0/);
  });

  it('passes completion and errors through, and unsubscribes upstream (marbles)', () => {
    new TestScheduler((a, e) => expect(a).toEqual(e)).run(({ cold, hot, expectObservable, expectSubscriptions }) => {
      const normalizer = new Normalizer({ inputs: 1 });
      const s = { x: [1], y: [0] };
      expectObservable(cold('a-a-#', { a: s }).pipe(normalize(normalizer), map((v) => v.x[0]))).toBe('a-b-#', { a: 0, b: 0 });
      expectObservable(cold<Sample>('|').pipe(normalize(normalizer))).toBe('|');
      const source = hot('-a-a-a-', { a: s });
      expectObservable(source.pipe(normalize(normalizer)), '^--!').toBe('-a-', { a: expect.anything() });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('does not learn a sample that arrives after downstream has gone', () => {
    const normalizer = new Normalizer({ inputs: 1 });
    const input = new Subject<Sample>();
    const sub = input.pipe(normalize(normalizer)).subscribe();
    input.next({ x: [1], y: [0] });
    sub.unsubscribe();
    input.next({ x: [5], y: [0] });
    expect(normalizer.x.count).toBe(1);
  });
});
