import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Activation, ACTIVATIONS } from '../core/activations.ts';
import { exportModel } from '../pipeline/export-file.ts';
import { tfjsLayers } from '../pipeline/export-tfjs.ts';
import { type ModelArtifact, preprocessingFromJSON } from '../pipeline/model-artifact.ts';
import { createPredictor } from '../pipeline/predict-record.ts';
import { Rng } from '../core/rng.ts';
import { classifierArtifact, seededModel } from './helpers/streams.ts';

/**
 * TF.js export (issue #12): the files `exportModel` writes are served over HTTP on
 * loopback and loaded by TensorFlow.js's own `loadLayersModel` (the pure-JavaScript cpu
 * backend), whose predictions must be streamgrad's (createPredictor) within float32's
 * precision: every activation TF.js has, and a model with x normalisation (clip
 * included) and y de-normalisation. sign is refused, naming the layer.
 */

/** float32: relative to max(1, |value|), as the wasm-f32 backend's F32_TOLERANCE. */
const F32_TOLERANCE = 2e-5;

const work = mkdtempSync(join(tmpdir(), 'streamgrad-tfjs-'));
let server: Server;
let base: string;

beforeAll(async () => {
  tf.env().set('PROD', true); // quiets the cpu backend's advice to install tfjs-node (which downloads binaries)
  await tf.setBackend('cpu');
  server = createServer((req, res) => {
    const path = normalize(join(work, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!path.startsWith(work)) return void res.writeHead(403).end();
    try {
      const body = readFileSync(path);
      res.writeHead(200, { 'content-type': path.endsWith('.json') ? 'application/json' : 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(work, { recursive: true, force: true });
});

/** Exports `artifact` into a folder of `work`, loads it with TF.js over HTTP, and predicts `rows`. */
async function tfjsPredict(artifact: ModelArtifact, folder: string, rows: readonly (readonly number[])[]): Promise<number[][]> {
  const result = await exportModel(artifact, { format: 'tfjs', out: join(work, folder) });
  expect(result.files).toEqual([join(work, folder, 'model.json'), join(work, folder, 'model.weights.bin')]);
  const model = await loadLayersModel(`${base}/${folder}/model.json`, { fetchFunc: fetch });
  try {
    const x = tf.tensor2d(rows.map((r) => [...r]), [rows.length, rows[0].length], 'float32');
    const y = model.predict(x) as tf.Tensor;
    const out = (await y.array()) as number[][];
    tf.dispose([x, y]);
    return out;
  } finally {
    model.dispose();
  }
}

function streamgradRows(artifact: ModelArtifact, records: readonly unknown[]): number[][] {
  const predictor = createPredictor(artifact);
  return records.map((record) => Array.from(predictor(record).prediction!.y));
}

function randomRows(count: number, n: number, seed: number, scale = 3, offset: readonly number[] = []): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, r) => Array.from({ length: n }, (_, i) => (offset[i] ?? 0) + (rng.next() * 2 - 1) * scale * (r % 10 === 9 ? 20 : 1)));
}

function maxRelativeError(actual: readonly (readonly number[])[], expected: readonly (readonly number[])[]): number {
  let worst = 0;
  actual.forEach((row, r) => {
    expect(row).toHaveLength(expected[r].length);
    row.forEach((v, k) => {
      const err = Math.abs(v - expected[r][k]) / Math.max(1, Math.abs(expected[r][k]));
      if (!(err <= worst)) worst = err;
    });
  });
  return worst;
}

describe('TF.js export, loaded by tf.loadLayersModel against streamgrad', () => {
  for (const activation of ACTIVATIONS.filter((a) => a !== 'sign')) {
    it(activation, async () => {
      const layers: [number, Activation][] = activation === 'softmax' ? [[7, 'tanh'], [4, 'softmax']] : [[7, activation], [5, activation], [3, activation]];
      const model = seededModel(4, layers, 11);
      const artifact = { model, preprocessing: null };
      const rows = randomRows(200, 4, 5);
      const y = await tfjsPredict(artifact, `act-${activation}`, rows);
      expect(maxRelativeError(y, streamgradRows(artifact, rows))).toBeLessThan(F32_TOLERANCE);
    });
  }

  it('x normalisation (with the √n clip) and y de-normalisation as Dense and ReLU layers; names in userDefinedMetadata; imputation is a note', async () => {
    const model = seededModel(3, [[6, 'relu'], [5, 'leaky_relu'], [1, 'linear']], 21);
    const count = 30; // clip min(10, √30) ≈ 5.48: the large inputs below are clipped
    const preprocessing = preprocessingFromJSON({
      version: 1, features: ['pressure', 'temp', 'wind'], targets: ['change'], classes: null, missing: ['mean', 'reject', 'reject'],
      imputation: { seen: [count, count, count], mean: [1013.2, 11.5, 3.25], last: [1009.8, 14.25, 2] },
      normalizer: { warmup: 2, clip: 10, x: { count, mean: [1013.2, 11.5, 3.25], m2: [64 * count, 9 * count, 0] }, y: { count, mean: [400.5], m2: [2.25 * count] } },
    }, model);
    const artifact = { model, preprocessing };
    const layers = tfjsLayers(artifact);
    expect(layers.layers.map((l) => l.name)).toEqual(['sg_x_centre', 'sg_x_scale', 'sg_x_clip', 'sg_x_unshift', 'dense_0', 'dense_1', 'leaky_relu_1', 'dense_2', 'sg_y_units']);
    expect(layers.notes.join(' ')).toMatch(/missing values are not imputed.*pressure \(mean\)/);
    const rows = randomRows(300, 3, 8, 20, [1013.2, 11.5, 3.25]);
    const expected = streamgradRows(artifact, rows.map((r) => ({ pressure: r[0], temp: r[1], wind: r[2] })));
    const y = await tfjsPredict(artifact, 'preprocessed', rows);
    expect(maxRelativeError(y, expected)).toBeLessThan(F32_TOLERANCE);
    const json = JSON.parse(readFileSync(join(work, 'preprocessed', 'model.json'), 'utf8'));
    expect(json.userDefinedMetadata.streamgrad).toMatchObject({ features: ['pressure', 'temp', 'wind'], targets: ['change'], imputation: [1013.2, null, null] });
  });

  it('a row with NaN or ±Infinity (no prediction in streamgrad) has NaN outputs, so a class read by argMax must first test them (there is no class output)', async () => {
    // the ONNX export answers such a row with class -1; TF.js layers have no NaN test and no class output
    const artifact = classifierArtifact();
    const y = await tfjsPredict(artifact, 'nan-rows', [[1, NaN], [Infinity, 2], [1, -Infinity], [1, 2]]);
    expect(y.slice(0, 3).map((row) => row.every(Number.isNaN))).toEqual([true, true, true]);
    expect(y[3].every(Number.isFinite)).toBe(true);
  });

  it('refuses a sign layer with SG_ERR_EXPORT naming it, and writes nothing', async () => {
    const artifact = { model: seededModel(2, [[3, 'tanh'], [1, 'sign']], 1), preprocessing: null };
    await expect(exportModel(artifact, { format: 'tfjs', out: join(work, 'sign') })).rejects.toMatchObject({ code: 'SG_ERR_EXPORT', field: 'layers[1].activation' });
    expect(() => readFileSync(join(work, 'sign', 'model.json'))).toThrow();
  });

  it('a folder the system will not make where its parent is (/proc) is SG_ERR_EXPORT naming out, at once; missing parents are still made', async () => {
    // before: Node's recursive mkdir retried /proc and /proc/x for ever on ENOENT (export never returned)
    const artifact = { model: seededModel(2, [[1, 'linear']], 1), preprocessing: null };
    await expect(exportModel(artifact, { format: 'tfjs', out: '/proc/streamgrad-export-test' })).rejects.toMatchObject({ code: 'SG_ERR_EXPORT', field: 'out' });
    const nested = join(work, 'made', 'for', 'it');
    await exportModel(artifact, { format: 'tfjs', out: nested });
    expect(JSON.parse(readFileSync(join(nested, 'model.json'), 'utf8'))).toMatchObject({ format: 'layers-model' });
  }, 5_000);
});
