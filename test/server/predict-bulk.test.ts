import { describe, expect, it } from 'vitest';
import { jsKernels } from '../../core/kernels-js.ts';
import { createBatchPredictor, createPredictor, type RecordResult } from '../../pipeline/predict-record.ts';
import { Registry } from 'prom-client';
import type { ModelVersion } from '../../server/model-versions.ts';
import { isFailure, PREDICT_CHUNK, PredictionService, toWire } from '../../server/prediction-service.ts';
import { serve } from '../../server/server.ts';
import { http } from '../helpers/http.ts';
import { seededModel } from '../helpers/streams.ts';
import { classifier, regression } from './artifacts.ts';
import { onCleanup, streamedNdjson, TOKEN } from './helpers.ts';

/**
 * Bulk predictions are batched (issue 12: one forward pass per chunk of a bulk request,
 * through `createBatchPredictor`), and must stay bit for bit what one sample at a time
 * gives: the same outputs, the same errors, in the same places, across chunk boundaries,
 * through named features, imputation and normalisation.
 */

/** A deterministic stream of numbers in [-20, 20). */
function numbers(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 40 - 20;
  };
}

/** `count` regression records of every kind: named, with missing fields, positional, `{x}`, and every few a bad one. */
function regressionRecords(count: number): unknown[] {
  const r = numbers(7);
  return Array.from({ length: count }, (_, i): unknown => {
    switch (i % 9) {
      case 0: return [r(), r(), r()];
      case 1: return { temp: r(), rain: r() }; // wind imputed with its mean
      case 2: return { temp: r(), wind: r() }; // rain with the last value
      case 3: return { x: [r(), r(), r()] };
      case 4: return { wind: r() }; // temp missing: rejected
      case 5: return [r(), r()]; // wrong arity
      case 6: return { temp: r(), wind: r(), rain: r(), oops: 1 }; // an unknown feature
      case 7: return Float64Array.of(r(), r(), r());
      default: return { temp: r() * 1e6, wind: -0, rain: 1e-300 };
    }
  });
}

/** A result as comparable data: the outputs' bytes (bit for bit), the class and probabilities, or the error. */
function bits(result: RecordResult): unknown {
  if (result.error !== undefined) return { code: result.error.code, message: result.error.message, field: result.error.field };
  const { y, class: cls, probabilities } = result.prediction;
  return { y: Buffer.from(y.buffer, y.byteOffset, y.byteLength).toString('hex'), cls, probabilities };
}

describe('createBatchPredictor: many records in one forward pass, bit for bit createPredictor\'s', () => {
  it('a regression with named features, imputation and normalisation, and a classifier: every output, class and error equals one-at-a-time, across batch boundaries', () => {
    for (const [artifact, records] of [[regression(), regressionRecords(1000)], [classifier(), Array.from({ length: 300 }, (_, i) => {
      const r = numbers(i + 1);
      return i % 7 === 3 ? { a: r(), b: r() } : i % 5 === 0 ? { c: r(), d: r() } : { a: r(), b: r(), c: r(), d: r() };
    })]] as const) {
      const one = createPredictor(artifact, { kernels: jsKernels });
      const expected = records.map((record) => bits(one(record)));
      // rows that do not divide the count: full batches, a partial one, and a batch of one row
      for (const rows of [1, 7, 64, 512]) {
        const many = createBatchPredictor(artifact, { kernels: jsKernels, rows });
        expect(many(records).map(bits)).toEqual(expected);
      }
    }
    // the regression's records hold answers and errors of every kind
    const codes = new Set(regressionRecords(1000).map((r) => createPredictor(regression(), { kernels: jsKernels })(r).error?.code ?? 'ok'));
    expect([...codes].sort()).toEqual(['SG_ERR_ARITY', 'SG_ERR_MISSING', 'ok']);
    // an empty batch is nothing, a batch of only bad records is their errors
    const many = createBatchPredictor(regression(), { kernels: jsKernels, rows: 4 });
    expect(many([])).toEqual([]);
    expect(many([[1], { wind: 2 }]).map((r) => r.error?.code)).toEqual(['SG_ERR_ARITY', 'SG_ERR_MISSING']);
  });

  it('predictManyText writes exactly JSON.stringify of predictMany\'s entries: regressions (written straight from the outputs), classifiers, and non-finite outputs as failures', () => {
    const service = new PredictionService({ keepVersions: 4, registry: new Registry() });
    onCleanup(() => service.close());
    // a linear model y = x0 + x1: exact values, and an overflow to Infinity
    const linear = seededModel(2, [[1, 'linear']], 3);
    linear.layers[0].weights.fill(1);
    linear.layers[0].bias.fill(0);
    service.addModel('linear', { model: linear, preprocessing: null });
    service.addModel('load', regression());
    service.addModel('weather', classifier());
    const cases: [string, unknown[]][] = [
      ['linear', [[0, -0], [1e-7, 0], [1e21, 1], [-1.5e-300, 0], [0.1, 0.2], [2 ** -1074, 0], [1.7976931348623157e308, 1.7976931348623157e308], [1, 2]]],
      ['load', regressionRecords(50)],
      ['weather', [{ a: 1, b: 2, c: 3, d: 4 }, { c: 0, d: 9 }, { a: 1 }, { a: 1, b: 2, c: 3, d: 4, e: 5 }]],
    ];
    for (const [name, records] of cases) {
      const version = service.resolve({ model: name });
      if ('code' in version) throw new Error(version.message);
      const expected = service.predictMany(version, records).map((e) => (isFailure(e) ? e : JSON.stringify(e)));
      expect(service.predictManyText(version, records)).toEqual(expected);
    }
    const linearVersion = service.resolve({ model: 'linear' }) as ModelVersion;
    expect(service.predictManyText(linearVersion, [[1.7976931348623157e308, 1.7976931348623157e308]])[0]).toMatchObject({ error: { code: 'SG_ERR_NONFINITE_OUTPUT' } });
  });
});

describe('bulk requests answer what single requests answer, across chunks', () => {
  it(`NDJSON of ${3 * PREDICT_CHUNK + 37} mixed lines and a JSON batch: each answer is the single-sample answer's text, errors in their places with their line numbers`, async () => {
    // a request per line on its own connection: far under the rate limit on any machine
    const server = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', predictRequestsPerSecond: 1_000_000 });
    onCleanup(() => server.close());
    server.addModel('load', regression(), { time: 1_700_000_000_000 });
    const records = regressionRecords(3 * PREDICT_CHUNK + 37);
    const lines = records.map((r) => JSON.stringify(ArrayBuffer.isView(r) ? Array.from(r as Float64Array) : r));
    // malformed lines and blank lines among them too
    lines[PREDICT_CHUNK - 1] = '{"temp": 1,';
    lines[PREDICT_CHUNK + 5] = '';
    const singles: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      if (lines[i] === '') continue;
      const single = await http(server, '/predict?model=load', lines[i], { 'Content-Type': 'application/json' });
      const answer = JSON.parse(single.text) as { prediction?: unknown; error?: { code: string; message: string } };
      singles.push(answer.prediction !== undefined
        ? JSON.stringify(answer.prediction)
        // a bulk line's error names its line, in the code and in the message
        : JSON.stringify({ line: i + 1, error: { ...answer.error, message: answer.error!.code === 'SG_ERR_BAD_JSON' ? `line ${i + 1} is not valid JSON` : `line ${i + 1}: ${answer.error!.message}` } }));
    }
    const bulk = await http(server, '/predict?model=load', `${lines.join('\n')}\n`, { 'Content-Type': 'application/x-ndjson' });
    expect(bulk.status).toBe(200);
    const answered = bulk.text.trimEnd().split('\n');
    expect(JSON.parse(answered[0])).toMatchObject({ model: 'load', version: 1 });
    expect(answered.slice(1)).toEqual(singles);
    expect(answered.filter((l) => l.includes('"error"')).length).toBeGreaterThan(records.length / 5);

    // a JSON array of samples, past a chunk too: the entries of the single answers
    const good = records.filter((_, i) => i % 9 === 0 || i % 9 === 1).slice(0, PREDICT_CHUNK + 3);
    const batch = await http(server, '/predict?model=load', JSON.stringify(good), { 'Content-Type': 'application/json' });
    const each = await Promise.all(good.slice(PREDICT_CHUNK - 2).map(async (r) => JSON.parse((await http(server, '/predict?model=load', JSON.stringify(r), { 'Content-Type': 'application/json' })).text).prediction));
    const predictions = (JSON.parse(batch.text) as { predictions: unknown[] }).predictions;
    expect(predictions).toHaveLength(good.length);
    expect(predictions.slice(PREDICT_CHUNK - 2)).toEqual(each);
  });

  it('NDJSON streamed a line at a time: each line is answered before the next is sent (a client may wait for its answer)', async () => {
    const server = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
    onCleanup(() => server.close());
    server.addModel('load', regression());
    const predictor = createPredictor(regression(), { kernels: jsKernels });
    const records = [[1, 2, 3], { temp: 4, wind: 5 }, [7, 8, 9]];
    const { received, write, lines, end } = streamedNdjson(server, '/predict?model=load');
    await lines(1); // the version line
    for (let i = 0; i < records.length; i++) {
      write(`${JSON.stringify(records[i])}\n`);
      // the request is still open: this line's answer comes on its own
      await lines(i + 2);
      expect(received[i + 1]).toBe(JSON.stringify(toWire(predictor(records[i]))));
    }
    await end();
    expect(received).toHaveLength(records.length + 1);
  });
});
