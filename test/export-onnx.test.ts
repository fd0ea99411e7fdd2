import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { type Activation, ACTIVATIONS } from '../core/activations.ts';
import { exportOnnx, NO_CLASS, type OnnxDtype, onnxGraph } from '../pipeline/export-onnx.ts';
import { type ModelArtifact, preprocessingFromJSON } from '../pipeline/model-artifact.ts';
import type { Model } from '../core/model.ts';
import { onnxModelType } from '../pipeline/onnx-schema.ts';
import { createPredictor } from '../pipeline/predict-record.ts';
import { Rng } from '../core/rng.ts';
import { classifierArtifact, seededModel } from './helpers/streams.ts';

/**
 * ONNX export (issue #12): onnxruntime-node, the real runtime, runs the exported file and
 * must give streamgrad's own predictions (createPredictor, the one place a saved model is
 * applied) within 1e-12 in float64 and float32's precision in float32, on random inputs:
 * every activation, and models with their preprocessing (imputation of missing values,
 * x normalisation with its clip and warm-up, y de-normalisation, classes).
 */

const F64_TOLERANCE = 1e-12;
/** float32: relative to max(1, |value|), as the wasm-f32 backend's F32_TOLERANCE (inputs and constants rounded once to 24 bits, then a few layers of sums). */
const F32_TOLERANCE = 2e-5;

async function run(bytes: Uint8Array, rows: readonly (readonly number[])[], dtype: OnnxDtype): Promise<{ y: number[][]; class?: number[] }> {
  const session = await InferenceSession.create(bytes);
  try {
    const n = rows[0].length;
    const flat = rows.flat();
    const x = new Tensor(dtype, dtype === 'float64' ? Float64Array.from(flat) : Float32Array.from(flat), [rows.length, n]);
    const out = await session.run({ x });
    const y = out.y, m = y.dims[1];
    const data = Array.from(y.data as Float64Array | Float32Array);
    const result: { y: number[][]; class?: number[] } = { y: rows.map((_, r) => data.slice(r * m, (r + 1) * m)) };
    if (out.class !== undefined) result.class = Array.from(out.class.data as BigInt64Array, Number);
    return result;
  } finally {
    await session.release();
  }
}

/** Rows of random inputs, a few of them large enough to saturate sigmoid and tanh and to hit the clip. */
function randomRows(count: number, n: number, seed: number, scale = 3, offset: readonly number[] = []): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, (_, r) => Array.from({ length: n }, (_, i) => (offset[i] ?? 0) + (rng.next() * 2 - 1) * scale * (r % 10 === 9 ? 20 : 1)));
}

/** The largest |onnx − streamgrad|, scaled by max(1, |streamgrad|) when `relative`. */
function maxError(actual: readonly (readonly number[])[], expected: readonly (readonly number[])[], relative: boolean): number {
  let worst = 0;
  actual.forEach((row, r) => row.forEach((v, k) => {
    const e = expected[r][k];
    const err = Math.abs(v - e) / (relative ? Math.max(1, Math.abs(e)) : 1);
    if (!(err <= worst)) worst = err; // NaN wins
  }));
  return worst;
}

function streamgradRows(artifact: ModelArtifact, records: readonly unknown[]): number[][] {
  const predictor = createPredictor(artifact);
  return records.map((record) => {
    const result = predictor(record);
    if (result.error !== undefined) throw result.error;
    return Array.from(result.prediction.y);
  });
}

/** The largest error of each case, printed at the end (the numbers the README quotes). */
const measured: string[] = [];
const record = (what: string, error: number) => { measured.push(`${what}: ${error.toExponential(1)}`); };
afterAll(() => { if (process.env.STREAMGRAD_EXPORT_ERRORS) console.log(measured.join('\n')); });

const bare = (model: Model): ModelArtifact => ({ model, preprocessing: null });

describe('ONNX export, every activation, onnxruntime-node against streamgrad', () => {
  const hidden = ACTIVATIONS.filter((a) => a !== 'softmax');
  for (const activation of ACTIVATIONS) {
    const layers: [number, Activation][] = activation === 'softmax'
      ? [[7, 'tanh'], [4, 'softmax']]
      : [[7, activation], [5, activation], [3, hidden.includes(activation) ? activation : 'linear']];
    for (const dtype of ['float64', 'float32'] as const) {
      it(`${activation}, ${dtype}: ${layers.map(([u, a]) => `${u}:${a}`).join(',')}`, async () => {
        const model = seededModel(4, layers, 11);
        const rows = randomRows(200, 4, 5);
        const expected = streamgradRows(bare(model), rows);
        const { y } = await run(exportOnnx(bare(model), { dtype }), rows, dtype);
        expect(y).toHaveLength(rows.length);
        // (sign in float32: rounding could move a z within ~1e-7 of 0 across it; these inputs have none)
        if (dtype === 'float64') expect(maxError(y, expected, false)).toBeLessThan(F64_TOLERANCE);
        else expect(maxError(y, expected, true)).toBeLessThan(F32_TOLERANCE);
        record(`${activation} ${dtype}`, maxError(y, expected, dtype === 'float32'));
      });
    }
  }

  it('sign(0) is 0 in both: a layer whose z is exactly 0 gives 0, not ±1', async () => {
    const model = seededModel(2, [[3, 'sign'], [1, 'linear']], 3);
    model.layers[0].weights.fill(0);
    model.layers[0].bias.set([0, 1, -1]);
    const rows = [[0.5, -2], [3, 4]];
    const expected = streamgradRows(bare(model), rows);
    const { y } = await run(exportOnnx(bare(model)), rows, 'float64');
    expect(y).toEqual(expected);
    const w = model.layers[1].weights, b = model.layers[1].bias[0];
    expect(y[0][0]).toBe(w[0] * 0 + w[1] - w[2] + b);
  });
});

/** A named-feature regression artifact with everything preprocessing can hold, as a model file would carry it. */
function regressionArtifact(options: { count: number; clip: number | null; warmup?: number; targetNormalized?: boolean }): ModelArtifact {
  const model = seededModel(3, [[6, 'relu'], [5, 'leaky_relu'], [1, 'linear']], 21);
  const count = options.count;
  const preprocessing = preprocessingFromJSON({
    version: 1,
    features: ['pressure', 'temp', 'wind'],
    targets: ['change'],
    classes: null,
    missing: ['mean', 'last', 'reject'],
    imputation: { seen: [count, count, count], mean: [1013.2, 11.5, 3.25], last: [1009.8, 14.25, 2] },
    normalizer: {
      warmup: options.warmup ?? 2,
      clip: options.clip,
      x: { count, mean: [1013.2, 11.5, 3.25], m2: [64 * count, 9 * count, 0] }, // sd 8, 3, and 0: a constant feature, only centred
      y: options.targetNormalized === false ? null : { count, mean: [400.5], m2: [2.25 * count] },
    },
  }, model);
  return { model, preprocessing };
}

describe('ONNX export with preprocessing', () => {
  const features = ['pressure', 'temp', 'wind'];
  /** Records around the feature means, some with a feature left out (imputed by its policy); as NaN for ONNX. */
  function records(count: number, seed: number, missing: readonly string[]): { records: Record<string, number>[]; rows: number[][] } {
    const rows = randomRows(count, 3, seed, 20, [1013.2, 11.5, 3.25]);
    const out: Record<string, number>[] = [];
    rows.forEach((row, r) => {
      const record: Record<string, number> = {};
      features.forEach((f, i) => {
        if (r % 4 === 1 && f === missing[r % missing.length]) row[i] = NaN;
        else record[f] = row[i];
      });
      out.push(record);
    });
    return { records: out, rows };
  }

  for (const dtype of ['float64', 'float32'] as const) {
    it(`${dtype}: imputation (mean, last), x normalisation with clip, y de-normalisation`, async () => {
      const artifact = regressionArtifact({ count: 500, clip: 3 });
      const { records: recs, rows } = records(300, 8, ['pressure', 'temp']);
      expect(rows.filter((r) => r.some(Number.isNaN)).length).toBeGreaterThan(50);
      const expected = streamgradRows(artifact, recs);
      const graph = onnxGraph(artifact, { dtype });
      expect(graph.nodes.map((n) => n.op)).toEqual(['IsNaN', 'Where', 'Mul', 'ReduceSum', 'Sub', 'Div', 'Clip', 'Gemm', 'Relu', 'Gemm', 'Mul', 'Max', 'Gemm', 'Mul', 'Add', 'Add']);
      const { y } = await run(exportOnnx(artifact, { dtype }), rows, dtype);
      if (dtype === 'float64') expect(maxError(y, expected, false)).toBeLessThan(F64_TOLERANCE);
      else expect(maxError(y, expected, true)).toBeLessThan(F32_TOLERANCE);
      record(`preprocessing ${dtype}`, maxError(y, expected, dtype === 'float32'));
    });
  }

  it('the clip follows the normaliser: ±√n while n < clip², none when clip is off; before the warm-up every input is 0', async () => {
    for (const settings of [{ count: 4, clip: 10 }, { count: 50, clip: null }, { count: 3, clip: 10, warmup: 5 }]) {
      const artifact = regressionArtifact(settings);
      const { records: recs, rows } = records(100, 9, ['pressure']);
      const expected = streamgradRows(artifact, recs);
      const { y } = await run(exportOnnx(artifact), rows, 'float64');
      expect(maxError(y, expected, false), JSON.stringify(settings)).toBeLessThan(F64_TOLERANCE);
    }
    const clipped = onnxGraph(regressionArtifact({ count: 4, clip: 10 }));
    expect(clipped.initializers.find((t) => t.name === 'x_clip_max')?.values).toEqual([2]);
    expect(onnxGraph(regressionArtifact({ count: 50, clip: null })).nodes.some((n) => n.op === 'Clip')).toBe(false);
  });

  it('a raw target stays raw; a value nothing can impute (reject policy) or a non-finite one gives NaN outputs, where streamgrad refuses', async () => {
    const artifact = regressionArtifact({ count: 500, clip: 10, targetNormalized: false });
    expect(onnxGraph(artifact).nodes.some((n) => n.name === 'y_units')).toBe(false);
    const rows = [[1010, 12, NaN], [1010, 12, Infinity], [1010, NaN, 2], [1010, 12, 2]];
    const predictor = createPredictor(artifact);
    expect(predictor({ pressure: 1010, temp: 12 }).error?.code).toBe('SG_ERR_MISSING');
    const { y } = await run(exportOnnx(artifact), rows, 'float64');
    expect(Number.isNaN(y[0][0])).toBe(true);
    expect(Number.isNaN(y[1][0])).toBe(true);
    expect(Math.abs(y[2][0] - predictor({ pressure: 1010, wind: 2 }).prediction!.y[0])).toBeLessThan(F64_TOLERANCE);
    expect(Math.abs(y[3][0] - predictor({ pressure: 1010, temp: 12, wind: 2 }).prediction!.y[0])).toBeLessThan(F64_TOLERANCE);
  });

  it('a classifier: probabilities, the class index as a second output, and the class names in the metadata', async () => {
    const artifact = classifierArtifact();
    const preprocessing = artifact.preprocessing!;
    const rows = randomRows(100, 2, 12, 4);
    const recs = rows.map((r, i) => (i % 3 === 0 ? { b: r[1] } : { a: r[0], b: r[1] }));
    rows.forEach((r, i) => { if (i % 3 === 0) r[0] = NaN; });
    const predictor = createPredictor(artifact);
    const expected = recs.map((r) => predictor(r).prediction!);
    const bytes = exportOnnx(artifact);
    const { y, class: cls } = await run(bytes, rows, 'float64');
    expect(maxError(y, expected.map((p) => Array.from(p.y)), false)).toBeLessThan(F64_TOLERANCE);
    expect(cls!.map((k) => preprocessing.classes![k])).toEqual(expected.map((p) => p.class));
    const decoded = onnxModelType().toObject(onnxModelType().decode(bytes), { longs: Number }) as { metadataProps: { key: string; value: string }[]; producerName: string };
    const meta = Object.fromEntries(decoded.metadataProps.map((e) => [e.key, e.value]));
    expect(JSON.parse(meta['streamgrad.classes'])).toEqual(['fog', 'rain', 'sun']);
    expect(JSON.parse(meta['streamgrad.features'])).toEqual(['a', 'b']);
    expect(decoded.producerName).toBe('streamgrad');
  });

  it('a classifier row without a prediction (NaN, ±Infinity, a missing value under reject) has class NO_CLASS (-1), not ArgMax\'s 0, in float64 and float32', async () => {
    // probe: ArgMax of a NaN row picked index 0, a valid class, where predict reports a typed error
    expect(NO_CLASS).toBe(-1);
    const artifact = classifierArtifact();
    const preprocessing = artifact.preprocessing!;
    const predictor = createPredictor(artifact);
    expect(predictor({ a: 1 }).error?.code).toBe('SG_ERR_MISSING');
    const rows = [[1, NaN], [Infinity, 2], [-Infinity, 2], [1, -Infinity], [NaN, 2], [1, 2]];
    const good = predictor({ a: 1, b: 2 }).prediction!, imputed = predictor({ b: 2 }).prediction!;
    for (const dtype of ['float64', 'float32'] as const) {
      const { y, class: cls } = await run(exportOnnx(artifact, { dtype }), rows, dtype);
      expect(cls, dtype).toEqual([NO_CLASS, NO_CLASS, NO_CLASS, NO_CLASS, preprocessing.classes!.indexOf(imputed.class as string), preprocessing.classes!.indexOf(good.class as string)]);
      for (const r of [0, 1, 2, 3]) expect(y[r].every(Number.isNaN), `${dtype} row ${r}`).toBe(true);
    }
    expect(onnxGraph(artifact).outputs[1].doc).toContain('-1 for a row without a prediction');
  });
});
