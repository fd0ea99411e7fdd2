import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { from, lastValueFrom, of, tap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { predict } from '../../operators/predict.ts';
import { FeatureMap } from '../../core/features.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { initialize } from '../../core/init.ts';
import { createModel } from '../../core/model.ts';
import { Normalizer } from '../../core/normalizer.ts';
import { createIngestCounters, type IngestRecord } from '../../core/record.ts';
import type { Sample } from '../../core/sample.ts';
import { type StepResult, train } from '../../pipeline/train.ts';
import { createTrainer } from '../../core/trainer.ts';
import { csvRecords, discoverClasses } from '../../sources/csv.ts';

/**
 * Online learning on real data from the vega-datasets package (a dev dependency), as
 * runnable examples: `npx vitest run test/ingest/datasets.test.ts`. Each stream is seen
 * once, and scored prequentially (every prediction is made before the model learns from
 * that row). The thresholds are the measured figures with a margin.
 */
const DATA = join(dirname(createRequire(import.meta.url).resolve('vega-datasets')), '..', 'data');

describe('real data (vega-datasets)', () => {
  it('Seattle weather: classifies drizzle/fog/rain/snow/sun from precipitation, temp_max, temp_min, wind (prequential accuracy ≥ 68%; measured 74%, majority class 44%)', async () => {
    const path = join(DATA, 'seattle-weather.csv');
    const classes = await discoverClasses(path, 'weather');
    expect(classes).toEqual(['drizzle', 'fog', 'rain', 'snow', 'sun']);
    const features = new FeatureMap({ features: ['precipitation', 'temp_max', 'temp_min', 'wind'], targets: ['weather'], classes });
    const model = initialize(createModel({ inputSize: 4, layers: [{ units: 16, activation: 'tanh' }, { units: 5, activation: 'softmax' }] }), 'auto', 0);
    const trainer = createTrainer({ model, loss: 'cross_entropy', optimizer: { type: 'adam', learningRate: 0.01 } });
    const normalizer = new Normalizer({ inputs: 4 });
    const counters = createIngestCounters();
    let last: StepResult | undefined;
    await lastValueFrom(from(csvRecords(path)).pipe(
      ingest({ trainer, features, normalizer, counters }),
      train(trainer, { window: 1461 }),
      tap((r) => { last = r; }),
    ));
    expect(counters).toMatchObject({ read: 1461, accepted: 1461, rejected: 0 });
    expect(last!.metrics.count).toBe(1461);
    expect(last!.metrics.accuracy).toBeGreaterThanOrEqual(0.68);
  });

  it('Mauna Loa CO₂: online regression, next month\'s CO₂ from the month of the year and last month\'s change (prequential MAE < 0.55 ppm; measured 0.37, persistence 1.12)', async () => {
    /**
     * Adds derived fields to each row: the month as a point on the circle, this month's
     * change (the target: forecasting the difference keeps the stream stationary while
     * CO₂ climbs 100 ppm) and last month's change. CO₂ predicted = last month's + change.
     */
    async function* withSeasonAndChange(records: AsyncIterable<IngestRecord>): AsyncGenerator<IngestRecord> {
      let previous = NaN;
      let previousChange = NaN;
      const text = (v: number) => (Number.isFinite(v) ? String(v) : ''); // '' is a missing cell
      for await (const record of records) {
        if (record.error !== undefined) {
          yield record;
          continue;
        }
        const row = record.value as Record<string, string>;
        const month = Number(row.Date.slice(5, 7));
        const co2 = Number(row.CO2);
        const change = co2 - previous;
        yield { ...record, value: { ...row, msin: text(Math.sin((2 * Math.PI * month) / 12)), mcos: text(Math.cos((2 * Math.PI * month) / 12)), dprev: text(previousChange), delta: text(change) } };
        previous = co2;
        previousChange = change;
      }
    }
    const features = new FeatureMap({ features: ['msin', 'mcos', 'dprev'], targets: ['delta'] });
    const model = initialize(createModel({ inputSize: 3, layers: [{ units: 8, activation: 'tanh' }, { units: 1, activation: 'linear' }] }), 'auto', 1);
    const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 0.03 } });
    const normalizer = new Normalizer({ inputs: 3, outputs: 1, target: true });
    const counters = createIngestCounters();
    const errors: number[] = [];
    const persistence: number[] = [];
    await lastValueFrom(from(withSeasonAndChange(csvRecords(join(DATA, 'co2-concentration.csv')))).pipe(
      ingest({ trainer, features, normalizer, counters }),
      // test-then-train in original units: predict with the model as it is, map back with the statistics this row was scaled with
      tap((s: Sample) => {
        let output!: Float64Array;
        of(s.x).pipe(predict(model)).subscribe((p) => { output = p.output; });
        const change = normalizer.denormalizeOutput(s.y as ArrayLike<number>)[0];
        errors.push(Math.abs(normalizer.denormalizeOutput(output)[0] - change)); // |(last + predicted change) − CO₂|
        persistence.push(Math.abs(change)); // predicting "same as last month"
      }),
      train(trainer),
    ));
    // the first row has no change, the second no previous change: both rejected as missing (and dead-lettered)
    expect(counters).toMatchObject({ read: 741, accepted: 739, rejected: 2, rejectedByCode: { SG_ERR_MISSING: 2 } });
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean(persistence)).toBeCloseTo(1.12, 1);
    expect(mean(errors)).toBeLessThan(0.55);
    expect(mean(errors.slice(-240))).toBeLessThan(0.55); // the last 20 years
  });
});
