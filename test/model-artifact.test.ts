import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap } from '../core/features.ts';
import { artifactFromJSON, artifactToJSON, continuePreprocessing, NO_PREPROCESSING, preprocessingFromIngestState, preprocessingOf } from '../pipeline/model-artifact.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { Normalizer } from '../core/normalizer.ts';
import { createPredictor, predictRecord } from '../pipeline/predict-record.ts';
import { seededModel } from './helpers/streams.ts';

/** The `preprocessing` section of `streamgrad/model@1` and `predictRecord` (the CLI side: test/cli-predict-artifact.test.ts). */
const LEGACY = join(resolve(dirname(fileURLToPath(import.meta.url))), 'fixtures/legacy');
const legacyModel = () => JSON.parse(readFileSync(join(LEGACY, 'weather.json'), 'utf8')) as Record<string, unknown>;
const legacySide = () => JSON.parse(readFileSync(join(LEGACY, 'weather.json.ingest.json'), 'utf8'));

/** The legacy pair as one artifact document. */
function weatherDoc(): Record<string, unknown> & { preprocessing: Record<string, unknown> & { normalizer: Record<string, unknown> } } {
  const side = legacySide();
  return {
    ...legacyModel(),
    preprocessing: {
      version: 1, features: side.features, targets: side.targets, classes: side.classes, missing: side.missing,
      imputation: { seen: side.imputation.seen, mean: side.imputation.mean, last: side.imputation.last },
      normalizer: { warmup: 10, clip: 10, x: side.normalizer.x, y: null },
    },
  };
}

function refusal(doc: unknown): string {
  try {
    artifactFromJSON(doc);
  } catch (error) {
    expect(error).toBeInstanceOf(StreamgradError);
    expect((error as StreamgradError).code).toBe('SG_ERR_MODEL');
    return (error as StreamgradError).message;
  }
  return 'accepted';
}

describe('the preprocessing section', () => {
  it('round-trips exactly, and a model without one is written as it always was', () => {
    const doc = weatherDoc();
    const artifact = artifactFromJSON(doc);
    expect(JSON.parse(JSON.stringify(artifactToJSON(artifact)))).toEqual(doc);
    const bare = artifactFromJSON(legacyModel());
    expect(bare.preprocessing).toBeNull();
    expect(JSON.parse(JSON.stringify(artifactToJSON(bare)))).toEqual(legacyModel());
    // explicit "no preprocessing" (what train writes for positional raw data): no side file is consulted then
    const none = artifactToJSON({ model: bare.model, preprocessing: NO_PREPROCESSING });
    expect(artifactFromJSON(JSON.parse(JSON.stringify(none))).preprocessing).toEqual(NO_PREPROCESSING);
  });

  it('an unclipped normaliser is written with clip null and read back as Infinity', () => {
    const model = seededModel(2, [[1, 'linear']], 1);
    const normalizer = new Normalizer({ inputs: 2, outputs: 1, target: true, clip: Infinity });
    normalizer.learn({ x: [1, 2], y: [3] });
    normalizer.learn({ x: [2, 5], y: [4] });
    const doc = JSON.parse(JSON.stringify(artifactToJSON({ model, preprocessing: preprocessingOf({ normalizer }) })));
    expect(doc.preprocessing.normalizer).toMatchObject({ clip: null, warmup: 2, x: { count: 2 }, y: { count: 2, mean: [3.5] } });
    expect(artifactFromJSON(doc).preprocessing?.normalizer?.clip).toBe(Infinity);
  });

  const cases: [string, (d: ReturnType<typeof weatherDoc>) => void, string][] = [
    ['unknown key', (d) => { d.preprocessing.scaler = {}; }, 'preprocessing.scaler: unknown key; allowed here: version, features, targets, classes, missing, imputation, normalizer'],
    ['absent key', (d) => { delete d.preprocessing.imputation; }, 'preprocessing.imputation: missing (null when it does not apply)'],
    ['version', (d) => { d.preprocessing.version = 2; }, 'preprocessing.version: must be 1, got 2'],
    ['features of another model', (d) => { d.preprocessing.features = ['a', 'b', 'c']; }, 'preprocessing.features: has 3 names, but the model takes 4 inputs'],
    ['a duplicate feature', (d) => { d.preprocessing.features = ['a', 'b', 'c', 'a']; }, 'preprocessing.features: names must be distinct'],
    ['a target that is a feature', (d) => { d.preprocessing.targets = ['wind']; }, 'preprocessing.targets: "wind" is also a feature'],
    ['classes of another model', (d) => { d.preprocessing.classes = ['rain', 'sun']; }, 'preprocessing.classes: has 2 labels, but the model has 5 outputs'],
    ['targets of another model', (d) => { d.preprocessing.classes = null; }, 'preprocessing.targets: has 1 names, but the model has 5 outputs'],
    ['a missing policy', (d) => { d.preprocessing.missing = ['reject', 'median', 'reject', 'reject']; }, 'preprocessing.missing[1]: must be one of reject, mean, last, got "median"'],
    ['imputation of another size', (d) => { d.preprocessing.imputation = { seen: [1], mean: [0], last: [null] }; }, 'preprocessing.imputation.seen: must be an array of 4 numbers, got 1'],
    ['a non-integer count', (d) => { (d.preprocessing.imputation as { seen: number[] }).seen[2] = 1.5; }, 'preprocessing.imputation.seen[2]: must be an integer ≥ 0, got 1.5'],
    ['a negative m2', (d) => { d.preprocessing.normalizer.x = { ...(d.preprocessing.normalizer.x as object), m2: [1, -1, 1, 1] }; }, 'preprocessing.normalizer.x.m2[1]: must be a finite number ≥ 0, got -1'],
    ['statistics of another size', (d) => { d.preprocessing.normalizer.x = { ...(d.preprocessing.normalizer.x as object), mean: [1, 2] }; }, 'preprocessing.normalizer.x.mean: must be an array of 4 numbers, got 2'],
    ['a null mean (a NaN written by JSON)', (d) => { d.preprocessing.normalizer.x = { ...(d.preprocessing.normalizer.x as object), mean: [1, null, 1, 1] }; }, 'preprocessing.normalizer.x.mean[1]: must be a finite number, got null'],
    ['an extra statistic', (d) => { d.preprocessing.normalizer.x = { ...(d.preprocessing.normalizer.x as object), sd: [1, 1, 1, 1] }; }, 'preprocessing.normalizer.x.sd: unknown key; allowed here: count, mean, m2'],
    ['target statistics for classes', (d) => { d.preprocessing.normalizer.y = { count: 1, mean: [0, 0, 0, 0, 0], m2: [0, 0, 0, 0, 0] }; }, 'preprocessing.normalizer.y: must be null: class outputs are not standardised'],
    ['a warm-up that is not a count', (d) => { d.preprocessing.normalizer.warmup = 'ten'; }, 'preprocessing.normalizer.warmup: must be an integer'],
    ['an infinite clip spelled as a string', (d) => { d.preprocessing.normalizer.clip = 'Infinity'; }, 'preprocessing.normalizer.clip: must be a finite number > 0, or null for no clipping; got "Infinity"'],
    ['positional data with class labels', (d) => { d.preprocessing.features = null; }, 'preprocessing.targets: must be null without named features (positional inputs)'],
  ];
  it.each(cases)('refuses %s, naming the field', (_name, spoil, message) => {
    const doc = weatherDoc();
    spoil(doc);
    expect(refusal(doc)).toContain(message);
  });

  it('reads a legacy FILE.ingest.json with the warm-up and clip of its time, and refuses one of another model', () => {
    const { model } = artifactFromJSON(legacyModel());
    const p = preprocessingFromIngestState(legacySide(), model);
    expect(p).toEqual(artifactFromJSON(weatherDoc()).preprocessing);
    expect(() => preprocessingFromIngestState({ ...legacySide(), format: 'streamgrad/ingest-state@2' }, model)).toThrow(/^format: must be "streamgrad\/ingest-state@1"/);
    const co2 = JSON.parse(readFileSync(join(LEGACY, 'co2.json.ingest.json'), 'utf8'));
    expect(() => preprocessingFromIngestState(co2, model)).toThrow('features: has 3 names, but the model takes 4 inputs');
  });
});

describe('predictRecord', () => {
  it('maps named fields in any order, standardises with the frozen statistics, names the class', () => {
    const artifact = artifactFromJSON(weatherDoc());
    const record = { wind: 2.5, temp_min: 11, precipitation: 0, temp_max: 20, weather: 'ignored', date: 'ignored' };
    const first = predictRecord(artifact, record);
    expect(first.error).toBeUndefined();
    const { y, class: label, probabilities } = first.prediction!;
    expect(label).toBe(['drizzle', 'fog', 'rain', 'snow', 'sun'][Array.from(y).indexOf(Math.max(...y))]);
    expect(Object.values(probabilities!)).toEqual(Array.from(y));
    // the same as a positional vector in the trained order, as CSV text cells, and again (nothing learned)
    expect(predictRecord(artifact, [0, 20, 11, 2.5]).prediction!.y).toEqual(y);
    expect(predictRecord(artifact, { x: [0, 20, 11, 2.5] }).prediction!.y).toEqual(y);
    expect(predictRecord(artifact, { precipitation: '0', temp_max: '20', temp_min: '11', wind: '2.5' }, true).prediction!.y).toEqual(y);
    for (let i = 0; i < 3; i++) predictRecord(artifact, { precipitation: 100, temp_max: 40, temp_min: 30, wind: 20 });
    expect(predictRecord(artifact, record).prediction!.y).toEqual(y);
    // by hand: z-scores with the saved statistics (population sd), clipped at ±10
    const side = legacySide();
    const { count, mean, m2 } = side.normalizer.x;
    const z = [0, 20, 11, 2.5].map((v, i) => (v - mean[i]) / Math.sqrt(m2[i] / count));
    const bare = createPredictor({ model: artifact.model, preprocessing: null });
    expect(bare(z).prediction!.y).toEqual(y);
  });

  it('imputes a missing feature with the training statistics (frozen), and rejects with typed errors', () => {
    const model = seededModel(2, [[3, 'tanh'], [1, 'linear']], 3);
    const features = new FeatureMap({ features: ['a', 'b'], targets: ['y'], missing: { b: 'mean' } });
    for (const [a, b] of [[1, 2], [3, 6]]) features.map({ a, b, y: 0 });
    const artifact = { model, preprocessing: preprocessingOf({ features }) };
    const imputed = predictRecord(artifact, { a: 1 });
    expect(imputed.prediction!.y).toEqual(predictRecord(artifact, { a: 1, b: 4 }).prediction!.y);
    expect(predictRecord(artifact, { b: 1 }).error).toMatchObject({ code: 'SG_ERR_MISSING', field: 'a' });
    expect(predictRecord(artifact, { a: 'x', b: 1 }).error).toMatchObject({ code: 'SG_ERR_TYPE', field: 'a' });
    expect(predictRecord(artifact, { a: 1, b: '1e999' }, true).error).toMatchObject({ code: 'SG_ERR_NONFINITE_INPUT', field: 'b' });
    expect(predictRecord(artifact, [1, 2, 3]).error).toMatchObject({ code: 'SG_ERR_ARITY' });
    expect(predictRecord(artifact, { a: 1 }).prediction!.y).toEqual(imputed.prediction!.y); // still the training mean (4)
    expect(features.state().seen).toEqual([2, 2]);
  });

  it('maps a standardised target back to its units', () => {
    const model = modelFromJSON({ format: 'streamgrad/model@1', inputSize: 1, layers: [{ activation: 'linear', weights: [[0]], bias: [1.5] }] });
    const normalizer = new Normalizer({ inputs: 1, outputs: 1, target: true, warmup: 2 });
    for (const [x, y] of [[0, 10], [1, 20], [2, 30]]) normalizer.learn({ x: [x], y: [y] });
    const artifact = { model, preprocessing: preprocessingOf({ normalizer }) };
    // z = 1.5 → 20 + 1.5·sd, sd = sqrt(200/3)
    expect(predictRecord(artifact, [5]).prediction!.y[0]).toBe(1.5 * Math.sqrt(200 / 3) + 20);
  });
});

describe('continuePreprocessing (training a saved model further)', () => {
  const p = () => artifactFromJSON(weatherDoc()).preprocessing!;
  const classes = ['drizzle', 'fog', 'rain', 'snow', 'sun'];
  const map = (features = ['precipitation', 'temp_max', 'temp_min', 'wind'], labels = classes) => new FeatureMap({ features, targets: ['weather'], classes: labels });
  it('refuses stages that preprocess otherwise, naming the field', () => {
    const normalizer = new Normalizer({ inputs: 4 });
    expect(() => continuePreprocessing(p(), { features: map() })).toThrow('preprocessing.normalizer: the model was trained on standardised inputs, but this run does not standardise them');
    expect(() => continuePreprocessing({ ...p(), normalizer: null }, { features: map(), normalizer })).toThrow('preprocessing.normalizer: the model was trained on raw inputs, but this run standardises them');
    expect(() => continuePreprocessing(p(), { features: map(['temp_max', 'precipitation', 'temp_min', 'wind']), normalizer })).toThrow('preprocessing.features: the model was trained on precipitation, temp_max, temp_min, wind, in this order; this run maps temp_max, precipitation, temp_min, wind');
    expect(() => continuePreprocessing(p(), { features: map(undefined, ['a', 'b', 'c', 'd', 'e']), normalizer })).toThrow(/^preprocessing\.classes: the model was trained on the classes drizzle, fog, rain, snow, sun; this run has a, b, c, d, e/);
    expect(() => continuePreprocessing(p(), { features: map(), normalizer: new Normalizer({ inputs: 4, outputs: 5, target: true }) })).toThrow(/^preprocessing\.normalizer\.y: the model was trained on a raw target/);
  });

  it('carries the statistics on', () => {
    const normalizer = new Normalizer({ inputs: 4 });
    const features = map();
    continuePreprocessing(p(), { features, normalizer });
    expect(normalizer.x.state()).toEqual(p().normalizer!.x);
    expect(features.state().mean).toEqual(p().imputation!.mean);
    continuePreprocessing(null, {}); // a bare model: nothing recorded, nothing checked
  });
});
