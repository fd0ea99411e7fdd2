import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bitwiseKernels } from '../core/backend.ts';
import { decodeCheckpoint, modelFromCheckpoint } from '../pipeline/checkpoint.ts';
import type { Model } from '../core/model.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { forwardPass } from '../core/network.ts';
import { Normalizer, type NormalizerState } from '../core/normalizer.ts';
import { createWorkspace } from '../core/workspace.ts';
import { runCli } from './helpers/cli.ts';

/**
 * Issue 11, item 1: one model artifact, and a `predict` that is right. The real command
 * line trains on the examples' data and saves; `predict` on the training file must give
 * exactly what the library's own forward pass gives with the final statistics (written
 * here from the primitives: `Normalizer.restore` + `transformInput`, `forwardPass`,
 * `denormalizeOutput`, not through the code under test), with class names, and scores
 * as the training run did. Today's behaviour (raw inputs into a model trained on
 * standardised ones, class indices) fails every one of these.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = join(ROOT, 'examples/data');
const LEGACY = join(ROOT, 'test/fixtures/legacy');
const work = mkdtempSync(join(tmpdir(), 'streamgrad-artifact-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const cli = (args: readonly string[], stdin = '') => runCli(work, args, { stdin });
const at = (name: string) => join(work, name);
const lines = (text: string) => text.split('\n').filter((l) => l !== '');
const parse = (text: string) => lines(text).map((l) => JSON.parse(l) as { line: number; y: number[]; class?: string | number; probabilities?: Record<string, number> });

/** A CSV file as header-named rows (the data files here hold no quoted commas). */
function csvRows(path: string): Record<string, string>[] {
  const [head, ...rest] = readFileSync(path, 'utf8').trimEnd().split('\n');
  const names = head.split(',');
  return rest.map((row) => Object.fromEntries(row.split(',').map((cell, i) => [names[i], cell])));
}

interface Stats { count: number; mean: number[]; m2: number[] }
interface Reference {
  readonly model: Model;
  readonly features: readonly string[];
  readonly normalizer: { warmup: number; clip: number | null; x: Stats; y: Stats | null } | null;
  readonly classes: readonly string[] | null;
}

/** The library's forward pass on one raw row, with the final statistics, frozen (the reference for predict). */
function forward(ref: Reference, row: Record<string, string>): number[] {
  // the kernels `predict` computes with whatever the backend: serving's (bitwise js), so that
  // `predict` and `/predict` agree to the bit (before, predict took `auto`: native here, 1 ulp off)
  const kernels = bitwiseKernels();
  const { model } = ref;
  let x: ArrayLike<number> = ref.features.map((f) => Number(row[f]));
  let normalizer: Normalizer | null = null;
  if (ref.normalizer !== null) {
    const s = ref.normalizer;
    normalizer = new Normalizer({ inputs: model.inputSize, outputs: model.outputSize, target: s.y !== null, warmup: s.warmup, clip: s.clip ?? Infinity });
    normalizer.restore({ version: 1, x: s.x, y: s.y } as NormalizerState);
    x = normalizer.transformInput(x);
  }
  const ws = createWorkspace(model, 1, kernels.allocate);
  for (let k = 0; k < model.inputSize; k++) ws.x[k] = x[k];
  forwardPass(kernels, model, ws, 1);
  const out = ws.a[model.layers.length - 1].slice(0, model.outputSize);
  return Array.from(normalizer === null ? out : normalizer.denormalizeOutput(out));
}

/** The reference of a saved artifact, read straight from its JSON. */
function referenceOf(file: string): Reference {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const p = doc.preprocessing;
  return { model: modelFromJSON(doc), features: p.features, normalizer: p.normalizer, classes: p.classes };
}

const argmax = (y: readonly number[]) => y.indexOf(Math.max(...y));
const complete = (row: Record<string, string>, columns: readonly string[]) => columns.every((c) => row[c] !== '' && row[c] !== undefined);

/** The one train command of the issue, as written there. */
const WEATHER_TRAIN = ['train', '--data', join(DATA, 'seattle-weather.csv'), '--features', 'precipitation,temp_max,temp_min,wind', '--targets', 'weather',
  '--normalize', '--layers', '4,16:tanh,5:softmax', '--loss', 'cross_entropy', '--optimizer', 'adam', '--lr', '0.01', '--save', 'weather.json'];
const WEATHER_FEATURES = ['precipitation', 'temp_max', 'temp_min', 'wind'];
const weatherRows = csvRows(join(DATA, 'seattle-weather.csv'));
const co2Rows = csvRows(join(DATA, 'co2-monthly.csv'));
const CO2_FEATURES = ['month_sin', 'month_cos', 'prev_change'];

describe('Seattle weather: train --save, then predict on the training file', () => {
  let trainRun: Awaited<ReturnType<typeof cli>>;
  let predicted: ReturnType<typeof parse>;
  let reference: Reference;
  beforeAll(async () => {
    trainRun = await cli([...WEATHER_TRAIN, '--log-json']);
    expect(trainRun.code, trainRun.stderr).toBe(0);
    reference = referenceOf(at('weather.json'));
    // no --features: the artifact has them
    const run = await cli(['predict', '--model', 'weather.json', '--data', join(DATA, 'seattle-weather.csv')]);
    expect(run.code, run.stderr).toBe(0);
    predicted = parse(run.stdout);
  }, 60_000);

  it('the saved model carries its preprocessing: feature names, classes, policy, imputation and normaliser statistics', () => {
    const doc = JSON.parse(readFileSync(at('weather.json'), 'utf8'));
    expect(doc.format).toBe('streamgrad/model@1');
    expect(doc.preprocessing).toMatchObject({
      version: 1, features: WEATHER_FEATURES, targets: ['weather'], classes: ['drizzle', 'fog', 'rain', 'snow', 'sun'],
      missing: ['reject', 'reject', 'reject', 'reject'], imputation: { seen: [1461, 1461, 1461, 1461] },
      normalizer: { x: { count: 1461 }, y: null },
    });
    expect(typeof doc.preprocessing.normalizer.warmup).toBe('number');
    expect(readdirSync(work)).not.toContain('weather.json.ingest.json'); // one artifact, no side file
    expect(trainRun.stderr).toMatch(/saved weather\.json \(with its feature names, normalisation statistics and class labels\)/);
  });

  it('reproduces the library forward pass with the final statistics, bitwise, with class names and probabilities', () => {
    expect(predicted).toHaveLength(1461);
    for (const [i, p] of predicted.entries()) {
      const y = forward(reference, weatherRows[i]);
      expect(p.line).toBe(i + 2);
      expect(p.y).toEqual(y);
      expect(p.class).toBe(reference.classes![argmax(y)]);
      expect(Object.keys(p.probabilities!)).toEqual(reference.classes);
      expect(Object.values(p.probabilities!)).toEqual(y);
    }
  });

  it('scores as the training run did on the rows its final model was tracking, and above the baselines on the whole file', () => {
    const done = lines(trainRun.stdout).map((l) => JSON.parse(l)).find((e) => e.event === 'done').models[0];
    const rolling = done.accuracy as number; // the last 1000 samples, prequential: ~0.79
    const correct = predicted.map((p, i) => p.class === weatherRows[i].weather);
    const accuracy = (from: number) => correct.slice(from).filter(Boolean).length / (correct.length - from);
    // the final model of a one-pass Adam run is tuned to the end of the stream (December
    // 2015): on its last 100 days it scores as training did (~81% vs rolling ~79%) ...
    expect(accuracy(1361)).toBeGreaterThanOrEqual(rolling - 0.1);
    expect(accuracy(1361)).toBeGreaterThanOrEqual(0.7);
    // ... and on the whole file above the majority class (44% sun) and far above the raw
    // inputs predict used to feed it (36%)
    const majority = weatherRows.filter((r) => r.weather === 'sun').length / weatherRows.length;
    // (53% here; 51-57% over seeds and the pytorch and xavier inits)
    expect(accuracy(0)).toBeGreaterThan(majority);
    const raw = weatherRows.filter((r) => reference.classes![argmax(forward({ ...reference, normalizer: null }, r))] === r.weather).length / weatherRows.length;
    expect(accuracy(0)).toBeGreaterThan(raw + 0.05);
  });

  it('applies the statistics frozen: the rows in another order, or one by one on stdin as named JSON, predict the same', async () => {
    const reversed = [...weatherRows].reverse();
    const json = reversed.map((r) => JSON.stringify({ wind: Number(r.wind), temp_min: Number(r.temp_min), temp_max: Number(r.temp_max), precipitation: Number(r.precipitation), note: 'ignored' })).join('\n');
    const run = await cli(['predict', '--model', 'weather.json', '--features', 'wind,temp_min,temp_max,precipitation'], `${json}\n`);
    expect(run.code, run.stderr).toBe(0);
    const back = parse(run.stdout).reverse();
    expect(back.map((p) => p.y)).toEqual(predicted.map((p) => p.y));
    expect(back.map((p) => p.class)).toEqual(predicted.map((p) => p.class));
  }, 30_000);

  it('a --features list that is not the trained one, or a CSV without a trained column, is refused naming the feature', async () => {
    writeFileSync(at('no-wind.csv'), 'precipitation,temp_max,temp_min\n0,10,5\n');
    const [extra, lacking, column] = await Promise.all([
      cli(['predict', '--model', 'weather.json', '--features', 'precipitation,temp_max,temp_min,gust']),
      cli(['predict', '--model', 'weather.json', '--features', 'precipitation,temp_max,temp_min']),
      cli(['predict', '--model', 'weather.json', '--data', 'no-wind.csv']),
    ]);
    for (const run of [extra, lacking, column]) {
      expect(run.code).toBe(2);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stdout).toBe('');
    }
    expect(extra.stderr.trim()).toBe('streamgrad: --features: "gust" is not a feature of weather.json (trained on precipitation, temp_max, temp_min, wind)');
    expect(lacking.stderr.trim()).toBe('streamgrad: --features: lacks "wind", a feature of weather.json (trained on precipitation, temp_max, temp_min, wind)');
    expect(column.stderr).toMatch(/^streamgrad: --data: no-wind\.csv has no column "wind", a feature of weather\.json/);
  }, 30_000);
});

describe('predict: a missing value is imputed, a missing column is an error, under every policy', () => {
  it('a model trained with --missing mean refuses a CSV whose header lacks a trained column (misspelt), file or standard input, exit 2 naming it; a row missing a value is imputed', async () => {
    // probe: the misspelt "wnd" made every row's wind the trained mean, exit 0
    const train = await cli(['train', '--data', join(DATA, 'seattle-weather.csv'), '--features', WEATHER_FEATURES.join(','), '--targets', 'weather',
      '--missing', 'mean', '--normalize', '--layers', '4,8:tanh,5:softmax', '--loss', 'cross_entropy', '--save', 'wmean.json']);
    expect(train.code, train.stderr).toBe(0);
    expect(JSON.parse(readFileSync(at('wmean.json'), 'utf8')).preprocessing.missing).toEqual(['mean', 'mean', 'mean', 'mean']);
    writeFileSync(at('wnd.csv'), 'precipitation,temp_max,temp_min,wnd\n0,20,11,9.5\n');
    writeFileSync(at('gap.csv'), 'precipitation,temp_max,temp_min,wind\n0,20,11,\n');
    const [misspelt, piped, gap] = await Promise.all([
      cli(['predict', '--model', 'wmean.json', '--data', 'wnd.csv']),
      cli(['predict', '--model', 'wmean.json', '--data', '-', '--format', 'csv'], 'precipitation,temp_max,temp_min,wnd\n0,20,11,9.5\n'),
      cli(['predict', '--model', 'wmean.json', '--data', 'gap.csv']),
    ]);
    expect(misspelt.code, misspelt.stderr).toBe(2);
    expect(misspelt.stdout).toBe('');
    expect(misspelt.stderr).toMatch(/^streamgrad: --data: wnd\.csv has no column "wind", a feature of wmean\.json/m);
    expect(piped.code, piped.stderr).toBe(2);
    expect(piped.stdout).toBe('');
    expect(piped.stderr).toMatch(/wind/);
    expect(gap.code, gap.stderr).toBe(0);
    expect(parse(gap.stdout)).toHaveLength(1);
  }, 60_000);
});

describe('training a saved model further (train --model) carries its preprocessing on', () => {
  it('refuses to feed raw values to a model trained on standardised ones, and with --normalize the statistics carry on', async () => {
    const data = join(DATA, 'seattle-weather.csv');
    const args = ['train', '--data', data, '--features', 'precipitation,temp_max,temp_min,wind', '--targets', 'weather', '--loss', 'cross_entropy', '--optimizer', 'adam', '--lr', '0.01'];
    const [raw, again] = await Promise.all([
      cli([...args, '--model', 'weather.json']),
      cli([...args, '--model', 'weather.json', '--normalize', '--save', 'weather2.json']),
    ]);
    expect(raw.code).toBe(2);
    expect(raw.stderr.trim()).toBe('streamgrad: --model weather.json: preprocessing.normalizer: the model was trained on standardised inputs, but this run does not standardise them (normalize)');
    expect(again.code, again.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(at('weather2.json'), 'utf8'));
    expect(doc.preprocessing.normalizer.x.count).toBe(2 * 1461);
    expect(doc.preprocessing.imputation.seen).toEqual([2922, 2922, 2922, 2922]);
  }, 60_000);
});

describe('CO₂: the example config (run) and train --normalize-target, predictions in ppm', () => {
  it('run examples/co2.json with save: predict reproduces the forward pass and its MAE is the run\'s', async () => {
    const config = JSON.parse(readFileSync(join(ROOT, 'examples/co2.json'), 'utf8'));
    config.source.csv = join(DATA, 'co2-monthly.csv');
    config.models[0].save = 'co2-run.json';
    writeFileSync(at('co2.json'), JSON.stringify(config));
    const run = await cli(['run', 'co2.json', '--log-json']);
    expect(run.code, run.stderr).toBe(0);
    const done = lines(run.stdout).map((l) => JSON.parse(l)).find((e) => e.event === 'done');
    const rollingMae = done.models[0].mae as number; // ppm (the target is not standardised here): ~0.36

    const reference = referenceOf(at('co2-run.json'));
    expect(reference.features).toEqual(CO2_FEATURES);
    const predict = await cli(['predict', '--model', 'co2-run.json', '--data', join(DATA, 'co2-monthly.csv')]);
    expect(predict.code, predict.stderr).toBe(0);
    const out = parse(predict.stdout);
    const rows = co2Rows.map((r, i) => ({ r, line: i + 2 })).filter(({ r }) => complete(r, CO2_FEATURES));
    expect(out.map((p) => p.line)).toEqual(rows.map((r) => r.line));
    let error = 0, scored = 0;
    for (const [i, p] of out.entries()) {
      expect(p.y).toEqual(forward(reference, rows[i].r));
      if (rows[i].r.change !== '') { error += Math.abs(p.y[0] - Number(rows[i].r.change)); scored++; }
    }
    const mae = error / scored;
    expect(mae).toBeLessThan(rollingMae * 1.3);
    expect(mae).toBeGreaterThan(rollingMae * 0.5);
    expect(predict.stderr).toMatch(/rejected line 2 \(SG_ERR_MISSING\): prev_change: missing/);
  }, 60_000);

  it('train --normalize-target: predictions come back in ppm, from the model file and from the checkpoint alike', async () => {
    const train = await cli(['train', '--data', join(DATA, 'co2-monthly.csv'), '--features', CO2_FEATURES.join(','), '--targets', 'change', '--normalize-target',
      '--layers', '3,8:tanh,1:linear', '--optimizer', 'adam', '--lr', '0.03', '--seed', '1', '--checkpoint-dir', 'co2-ckpt', '--checkpoint-every', '100000', '--save', 'co2-z.json']);
    expect(train.code, train.stderr).toBe(0);
    const reference = referenceOf(at('co2-z.json'));
    expect(reference.normalizer?.y?.count).toBe(739);
    const checkpoint = join('co2-ckpt', readdirSync(at('co2-ckpt')).filter((f) => f.endsWith('.sgck')).sort().at(-1)!);
    const [fromModel, fromCheckpoint] = await Promise.all([
      cli(['predict', '--model', 'co2-z.json', '--data', join(DATA, 'co2-monthly.csv')]),
      cli(['predict', '--model', checkpoint, '--data', join(DATA, 'co2-monthly.csv')]),
    ]);
    expect(fromModel.code, fromModel.stderr).toBe(0);
    expect(fromCheckpoint.code, fromCheckpoint.stderr).toBe(0);
    expect(fromCheckpoint.stdout).toBe(fromModel.stdout); // the last checkpoint is the saved model
    const rows = co2Rows.filter((r) => complete(r, CO2_FEATURES));
    const out = parse(fromModel.stdout);
    let error = 0, persistence = 0;
    for (const [i, p] of out.entries()) {
      expect(p.y).toEqual(forward(reference, rows[i]));
      error += Math.abs(p.y[0] - Number(rows[i].change));
      persistence += Math.abs(Number(rows[i].prev_change) - Number(rows[i].change));
    }
    // in ppm: ~0.36 (persistence 0.78); raw z-units would be off by the target's sd and mean
    expect(error / out.length).toBeLessThan(0.5);
    expect(error / out.length).toBeLessThan(persistence / out.length / 1.5);
  }, 60_000);
});

describe('files written before the artifact: a model with FILE.ingest.json beside it, an old checkpoint', () => {
  it('an old model and its side file (as main wrote them) predict right', async () => {
    for (const f of ['weather.json', 'weather.json.ingest.json']) copyFileSync(join(LEGACY, f), at(`old-${f}`));
    const side = JSON.parse(readFileSync(join(LEGACY, 'weather.json.ingest.json'), 'utf8'));
    const reference: Reference = {
      model: modelFromJSON(JSON.parse(readFileSync(join(LEGACY, 'weather.json'), 'utf8'))),
      features: side.features, classes: side.classes,
      normalizer: { warmup: 10, clip: 10, x: side.normalizer.x, y: null }, // what every normaliser had then
    };
    const run = await cli(['predict', '--model', 'old-weather.json', '--data', join(DATA, 'seattle-weather.csv')]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/\(from old-weather\.json\.ingest\.json\)/);
    const out = parse(run.stdout);
    expect(out).toHaveLength(1461);
    for (const [i, p] of out.entries()) {
      const y = forward(reference, weatherRows[i]);
      expect(p.y).toEqual(y);
      expect(p.class).toBe(side.classes[argmax(y)]);
    }
  }, 30_000);

  it('an old checkpoint (statistics in its sections, no preprocessing section) predicts in the target\'s units', async () => {
    const bytes = readFileSync(join(LEGACY, 'co2-train.sgck'));
    const checkpoint = decodeCheckpoint(bytes);
    expect(checkpoint.header.sections.preprocessing).toBeUndefined();
    const sections = checkpoint.header.sections as { normalizer: { x: Stats; y: Stats } };
    const reference: Reference = { model: modelFromCheckpoint(checkpoint), features: CO2_FEATURES, classes: null, normalizer: { warmup: 10, clip: 10, ...sections.normalizer } };
    const run = await cli(['predict', '--model', join(LEGACY, 'co2-train.sgck'), '--data', join(DATA, 'co2-monthly.csv')]);
    expect(run.code, run.stderr).toBe(0);
    const rows = co2Rows.filter((r) => complete(r, CO2_FEATURES));
    const out = parse(run.stdout);
    expect(out).toHaveLength(rows.length);
    let error = 0;
    for (const [i, p] of out.entries()) {
      expect(p.y).toEqual(forward(reference, rows[i]));
      error += Math.abs(p.y[0] - Number(rows[i].change));
    }
    expect(error / out.length).toBeLessThan(0.5);
  }, 30_000);
});

describe('a preprocessing that cannot be applied is refused, naming the field (every field: test/model-artifact.test.ts)', () => {
  it('a corrupt section: one line, exit 2, the field named', async () => {
    const doc = JSON.parse(readFileSync(at('weather.json'), 'utf8'));
    doc.preprocessing.normalizer.x.m2[1] = -1;
    writeFileSync(at('corrupt.json'), JSON.stringify(doc));
    const run = await cli(['predict', '--model', 'corrupt.json'], '{"x":[0,0,0,0]}\n');
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe('streamgrad: --model corrupt.json: preprocessing.normalizer.x.m2[1]: must be a finite number ≥ 0, got -1');
    expect(run.stdout).toBe('');
  }, 30_000);

  it('a side file that does not fit its model is refused, not ignored', async () => {
    copyFileSync(join(LEGACY, 'weather.json'), at('stale.json'));
    const side = JSON.parse(readFileSync(join(LEGACY, 'co2.json.ingest.json'), 'utf8')); // another model's statistics
    writeFileSync(at('stale.json.ingest.json'), JSON.stringify(side));
    const run = await cli(['predict', '--model', 'stale.json'], '{"x":[0,0,0,0]}\n');
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe('streamgrad: --model stale.json: its stale.json.ingest.json: features: has 3 names, but the model takes 4 inputs');
  }, 30_000);
});
