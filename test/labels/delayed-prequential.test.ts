import { from, lastValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { joinLabels } from '../../operators/join-labels.ts';
import { featurePredictor } from '../../core/feature-time-prediction.ts';
import { FeatureMap } from '../../core/features.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { initialize } from '../../core/init.ts';
import { LabelJoin, type LabelledRecord } from '../../core/label-join.ts';
import type { Loss } from '../../core/losses.ts';
import { createModel, type Topology } from '../../core/model.ts';
import { Normalizer } from '../../core/normalizer.ts';
import { type SamplePrediction, samplePredictions } from '../../pipeline/sample-predictions.ts';
import { train } from '../../pipeline/train.ts';
import { createTrainer } from '../../core/trainer.ts';

function trainerFor(topology: Topology, loss: Loss) {
  return createTrainer({ model: initialize(createModel(topology), 'xavier', 3), loss, optimizer: { type: 'sgd', learningRate: 0.2 } });
}

const features = (id: string, x: number[]): LabelledRecord => ({ value: { id, x }, origin: {} });
const label = (id: string, y: number[]): LabelledRecord => ({ value: { id, y }, origin: {}, stream: 'labels' });

/**
 * The features of `late` arrive first, then many samples whose labels come at once teach
 * the model, then the label of `late`. What the model predicted for `late` *before* all
 * that learning is what must be scored.
 */
function scenario(n: number, x: number[], y: number[]): LabelledRecord[] {
  const records: LabelledRecord[] = [features('late', x)];
  for (let i = 0; i < n; i++) records.push(features(`s${i}`, x), label(`s${i}`, y));
  records.push(label('late', y));
  return records;
}

describe('delayed prequential evaluation', () => {
  it('scores the prediction made when the features arrived, not the one made when the label came (mse)', async () => {
    const trainer = trainerFor({ inputSize: 1, layers: [{ units: 1, activation: 'linear' }] }, 'mse');
    const [w, b] = trainer.model.params;
    const early = w + b; // what the fresh model says for x = 1
    const perSample: SamplePrediction[] = [];
    const results = await lastValueFrom(from(scenario(60, [1], [5])).pipe(
      joinLabels(new LabelJoin({ idField: 'id' }), featurePredictor({ trainer })),
      ingest({ trainer }),
      train(trainer, { window: 1, onStep: (step) => perSample.push(...samplePredictions(step, trainer, { model: 'm' })) }),
      toArray(),
    ));
    // --predictions says the same: the prediction made then, and its loss
    expect(perSample.at(-1)).toMatchObject({ prediction: [early], target: [5] });
    expect(perSample.at(-1)!.loss).toBeCloseTo((early - 5) ** 2, 12);
    expect(results).toHaveLength(61);
    const last = results.at(-1)!;
    expect(last.metrics.loss).toBeCloseTo((early - 5) ** 2, 12);
    expect(last.metrics.mae).toBeCloseTo(Math.abs(early - 5), 12);
    // the model knows better by then: scoring the later prediction would give a tiny loss
    expect(last.loss).toBeLessThan(1e-3);
    expect((early - 5) ** 2).toBeGreaterThan(1);
  });

  it('counts a classifier right or wrong by what it said when the features came (bce accuracy)', async () => {
    const trainer = trainerFor({ inputSize: 1, layers: [{ units: 1, activation: 'sigmoid' }] }, 'bce');
    trainer.model.params.set([-1, -1]); // says 0 for x = 1 at first
    const results = await lastValueFrom(from(scenario(200, [1], [1])).pipe(
      joinLabels(new LabelJoin({ idField: 'id' }), featurePredictor({ trainer })),
      ingest({ trainer }),
      train(trainer, { window: 1 }),
      toArray(),
    ));
    const last = results.at(-1)!;
    expect(last.metrics.accuracy).toBe(0); // wrong then
    const z = -2;
    expect(last.metrics.loss).toBeCloseTo(Math.max(z, 0) - z + Math.log1p(Math.exp(-Math.abs(z))), 12); // bce of the stored logit
    expect(results.at(-2)!.metrics.accuracy).toBe(1); // the model is right by now
  });

  it('with a normalised target, scores in the target units with the statistics of the moment the features came', async () => {
    const trainer = trainerFor({ inputSize: 1, layers: [{ units: 1, activation: 'linear' }] }, 'mse');
    const normalizer = new Normalizer({ inputs: 1, outputs: 1, target: true, warmup: 2, clip: Infinity });
    const featureMap = new FeatureMap({ features: ['t'], targets: ['v'] });
    const records: LabelledRecord[] = [];
    for (let i = 0; i < 20; i++) records.push({ value: { id: `w${i}`, t: i % 5 }, origin: {} }, { value: { id: `w${i}`, v: 100 + (i % 5) }, origin: {}, stream: 'labels' });
    records.push({ value: { id: 'late', t: 2 }, origin: {} });
    const predict = featurePredictor({ trainer, features: featureMap, normalizer });
    let expected = NaN;
    const spy: typeof predict = (record) => {
      const p = predict(record);
      if ((record.value as { id?: string }).id === 'late' && !(p instanceof Error)) expected = p.user![0];
      return p;
    };
    for (let i = 0; i < 30; i++) records.push({ value: { id: `v${i}`, t: 2 }, origin: {} }, { value: { id: `v${i}`, v: 500 }, origin: {}, stream: 'labels' });
    records.push({ value: { id: 'late', v: 102 }, origin: {}, stream: 'labels' });
    const results = await lastValueFrom(from(records).pipe(
      joinLabels(new LabelJoin({ idField: 'id' }), spy),
      ingest({ trainer, features: featureMap, normalizer }),
      train(trainer, { window: 1 }),
      toArray(),
    ));
    expect(Number.isFinite(expected)).toBe(true);
    expect(results.at(-1)!.metrics.mae).toBeCloseTo(Math.abs(expected - 102), 9);
  });
});
