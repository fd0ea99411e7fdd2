import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsKernels } from '../../core/kernels-js.ts';
import { createPredictor } from '../../pipeline/predict-record.ts';
import { type ModelArtifact, artifactToJSON, PREPROCESSING_VERSION, preprocessingFromJSON } from '../../pipeline/model-artifact.ts';
import type { ServerMessage } from '../../server/protocol.ts';
import { serve, type StreamgradServer } from '../../server/server.ts';
import { runCli } from '../helpers/cli.ts';
import { http } from '../helpers/http.ts';
import { seededModel } from '../helpers/streams.ts';
import { classifier, regression } from './artifacts.ts';
import { connect, onCleanup, type TestClient, TOKEN } from './helpers.ts';

/**
 * Prediction serving against hostile and odd input (the outside probe's D2–D7): names
 * that are JavaScript's own (`__proto__`), `{"x": …}` records with targets, client text
 * that must never come back in an error, whitespace lines in NDJSON, and the metrics of
 * refused requests. Real HTTP and WebSockets on 127.0.0.1, port 0.
 */

const work = mkdtempSync(join(tmpdir(), 'streamgrad-predict-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A softmax classifier whose class and feature names are Object.prototype's own. */
function protoClassifier(): ModelArtifact {
  const model = seededModel(4, [[6, 'relu'], [3, 'softmax']], 5);
  const preprocessing = preprocessingFromJSON({
    version: PREPROCESSING_VERSION,
    features: ['__proto__', 'constructor', 'toString', 'd'],
    targets: ['kind'],
    classes: ['__proto__', 'constructor', 'toString'],
    missing: ['mean', 'reject', 'reject', 'reject'],
    imputation: { seen: [10, 10, 10, 10], mean: [1, 2, 3, 4], last: [1, 2, 3, 4] },
    normalizer: { warmup: 2, clip: 10, x: { count: 10, mean: [1, 2, 3, 4], m2: [10, 20, 30, 40] }, y: null },
  }, model);
  return { model, preprocessing };
}

/** A model without preprocessing: positional inputs only. */
const bare = (): ModelArtifact => ({ model: seededModel(4, [[4, 'tanh'], [1, 'linear']], 3), preprocessing: null });

async function modelServer(): Promise<StreamgradServer> {
  const server = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
  onCleanup(() => server.close());
  return server;
}

const post = (server: StreamgradServer, query: string, body: unknown) => http(server, `/predict${query}`, JSON.stringify(body));
const ndjson = (server: StreamgradServer, query: string, lines: string) => http(server, `/predict${query}`, lines, { 'Content-Type': 'application/x-ndjson' });
const answerLines = (text: string) => text.trimEnd().split('\n').slice(1).map((l) => JSON.parse(l) as { y?: number[]; class?: string; probabilities?: Record<string, number>; line?: number; error?: { code: string; message: string; field?: string } });

/** Sends a predict (or any message with an id) and waits for the prediction, ack or error carrying it. */
async function ask(client: TestClient, message: Record<string, unknown>): Promise<ServerMessage & { [k: string]: unknown }> {
  client.send(message);
  let found: ServerMessage | undefined;
  await client.until(() => {
    const i = client.messages.findIndex((m) => 'id' in m && m.id === message.id);
    if (i !== -1) found = client.messages.splice(i, 1)[0];
    return i !== -1;
  }, `the answer to ${String(message.id)}`, 30_000);
  return found as ServerMessage & { [k: string]: unknown };
}

/** Every class is an own key of the probabilities, the predicted one too. */
function expectEveryClass(p: { class?: string; probabilities?: Record<string, number> }): void {
  expect(Object.keys(p.probabilities!).sort()).toEqual(['__proto__', 'constructor', 'toString']);
  expect(Object.hasOwn(p.probabilities!, p.class!)).toBe(true);
  for (const name of ['__proto__', 'constructor', 'toString']) expect(typeof p.probabilities![name]).toBe('number');
}

/** No client text in an error: neither the markup nor the bidirectional override. */
function expectNoEcho(error: { message?: unknown; field?: unknown }): void {
  const text = `${String(error.message)} ${String(error.field ?? '')}`;
  expect(text).not.toContain('<');
  expect(text).not.toContain('\u202e');
  expect(text).not.toContain('evil');
}

describe('class and feature names that are Object.prototype\'s own (D2)', () => {
  it('classes __proto__, constructor, toString: every class is an own key of "probabilities" in JSON, batch, NDJSON and WebSocket answers, and a __proto__ feature keeps its policy', async () => {
    const server = await modelServer();
    server.addModel('proto', protoClassifier());
    // JSON text: a literal `{ __proto__: … }` would set a prototype, not send the field
    const body = '{"__proto__":0.5,"constructor":2,"toString":3,"d":4}';
    const one = await http(server, '/predict?model=proto', body);
    expect(one.status).toBe(200);
    expectEveryClass(one.json.prediction);
    const batch = await http(server, '/predict?model=proto', `[${body},[0.5,2,3,4]]`);
    for (const p of batch.json.predictions) expectEveryClass(p);
    const bulk = await ndjson(server, '?model=proto', `${body}\n[0.5,2,3,4]\n`);
    for (const p of answerLines(bulk.text)) expectEveryClass(p);
    // a feature named __proto__ left out is imputed by its policy (mean), not refused
    const imputed = await http(server, '/predict?model=proto', '{"constructor":2,"toString":3,"d":4}');
    expect(imputed.status).toBe(200);
    const client = await connect(server);
    const ws = await ask(client, { type: 'predict', id: 'p', model: 'proto', input: JSON.parse(body) });
    expectEveryClass(ws.prediction as { class: string; probabilities: Record<string, number> });
  });

  it('streamgrad predict writes every class, __proto__ included, in "probabilities"', async () => {
    const file = join(work, 'proto.json');
    writeFileSync(file, JSON.stringify(artifactToJSON(protoClassifier())));
    const run = await runCli(work, ['predict', '--model', file], { stdin: '{"__proto__":0.5,"constructor":2,"toString":3,"d":4}\n[0.5,2,3,4]\n' });
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { class: string; probabilities: Record<string, number> });
    expect(lines).toHaveLength(2);
    for (const p of lines) expectEveryClass(p);
  }, 60_000);
});

describe('the server takes what streamgrad predict takes (D3)', () => {
  it('{"x": [...], "y": [...]} is a positional sample on a named model (its target ignored); another key beside x is refused, on a bare model too; unknown=ignore takes it', async () => {
    const server = await modelServer();
    server.addModel('load', regression());
    server.addModel('bare', bare());
    const withTarget = await post(server, '?model=load', { x: [12, 3, 0.5], y: [100, 40] });
    expect(withTarget.status).toBe(200);
    expect(withTarget.json.prediction).toEqual((await post(server, '?model=load', [12, 3, 0.5])).json.prediction);
    const stray = await post(server, '?model=bare', { x: [1, 2, 3, 4], foo: 1 });
    expect([stray.status, stray.json.error.code, stray.json.error.field]).toEqual([422, 'SG_ERR_UNKNOWN_FEATURE', 'keys[1]']);
    expect((await post(server, '?model=bare&unknown=ignore', { x: [1, 2, 3, 4], foo: 1 })).status).toBe(200);
    expect((await post(server, '?model=bare', { x: [1, 2, 3, 4], y: [0] })).status).toBe(200);
    // NDJSON and WebSocket read it the same way
    expect(answerLines((await ndjson(server, '?model=load', '{"x":[12,3,0.5],"y":[100,40]}\n')).text)[0].y).toEqual(withTarget.json.prediction.y);
    const client = await connect(server);
    expect(await ask(client, { type: 'predict', id: 'x', model: 'load', input: { x: [12, 3, 0.5], y: [100, 40] } })).toMatchObject({ type: 'prediction', prediction: withTarget.json.prediction });
  });
});

/**
 * Client text no answer may hold, each beginning with `evil` (a quote cut to 20 characters
 * would still show it): markup with a bidirectional override; quotes, a backslash and line
 * breaks; a long string; one shaped like the messages around it.
 */
const HOSTILE = ['evil\u202e<img src=x onerror=alert(1)>', 'evil "q" \\" \n\r\u2028 }{"', `evil${'ü"\n'.repeat(4_000)}`, 'evil" is not one of the classes ('];

/** A predictor error a client can cause with `v`: the sample and its model, the code and field of its answer (`ignore`: sent with `unknown=ignore`). */
const hostileKinds = (v: string): { what: string; model: string; sample: unknown; code: string; field: string; ignore?: true }[] => [
  { what: 'a string for a named feature', model: 'load', sample: { temp: v, wind: 2, rain: 3 }, code: 'SG_ERR_TYPE', field: 'temp' },
  { what: 'a string in an array', model: 'bare', sample: [1, 2, v, 4], code: 'SG_ERR_TYPE', field: 'x[2]' },
  { what: 'a string in {"x": [...]}', model: 'load', sample: { x: [1, v, 3] }, code: 'SG_ERR_TYPE', field: 'x[1]' },
  { what: 'a string for x', model: 'bare', sample: { x: v }, code: 'SG_ERR_TYPE', field: 'x' },
  { what: 'a string for the sample', model: 'bare', sample: v, code: 'SG_ERR_TYPE', field: 'x' },
  { what: 'an object holding it for a feature', model: 'classes', sample: { a: { [v]: v }, b: 1, c: 1, d: 1 }, code: 'SG_ERR_TYPE', field: 'a' },
  { what: 'a class name for the target, beside a string feature', model: 'classes', sample: { a: 1, b: 2, c: v, d: 4, kind: v }, code: 'SG_ERR_TYPE', field: 'c' },
  { what: 'a field named by it', model: 'load', sample: { temp: 1, wind: 2, rain: 3, [v]: v }, code: 'SG_ERR_UNKNOWN_FEATURE', field: 'keys[3]' },
  { what: 'a key named by it beside x', model: 'bare', sample: { x: [1, 2, 3, 4], [v]: 1 }, code: 'SG_ERR_UNKNOWN_FEATURE', field: 'keys[1]' },
  { what: 'a feature missing, a field named by it ignored', model: 'load', sample: { [v]: v, wind: 2 }, code: 'SG_ERR_MISSING', field: 'temp', ignore: true },
];

describe('errors never echo the client\'s text (D4)', () => {
  it('a hostile model name, content type, unknown feature name or string value: the message and field name the place, never the text', async () => {
    const server = await modelServer();
    server.addModel('load', regression());
    server.addModel('bare', bare());
    const evil = '\u202e<img src=x onerror=alert(1)>evil';
    const model = await post(server, `?model=${encodeURIComponent(evil)}`, [1, 2, 3]);
    expect([model.status, model.json.error.code, model.json.error.field]).toEqual([404, 'SG_ERR_UNKNOWN_MODEL', 'model']);
    expectNoEcho(model.json.error);
    const feature = await http(server, '/predict?model=load', JSON.stringify({ temp: 1, wind: 2, rain: 3, '\u202e<b>evil</b>': 1 }));
    expect([feature.status, feature.json.error.code, feature.json.error.field]).toEqual([422, 'SG_ERR_UNKNOWN_FEATURE', 'keys[3]']);
    expectNoEcho(feature.json.error);
    const value = await post(server, '?model=load', { temp: '<b>evil</b>', wind: 2, rain: 3 });
    expect([value.status, value.json.error.code, value.json.error.field]).toEqual([422, 'SG_ERR_TYPE', 'temp']);
    expectNoEcho(value.json.error);
    const positional = await post(server, '?model=bare', [1, 2, '<b>evil</b>', 4]);
    expect([positional.json.error.code, positional.json.error.field]).toEqual(['SG_ERR_TYPE', 'x[2]']);
    expectNoEcho(positional.json.error);
    const type = await http(server, '/predict?model=load', '[1,2,3]', { 'Content-Type': 'text/<b>evil</b>' });
    expect([type.status, type.json.error.field]).toEqual([415, 'Content-Type']);
    expectNoEcho(type.json.error);
    const encoding = await http(server, '/predict?model=load', '[1,2,3]', { 'Content-Type': 'application/json', 'Content-Encoding': '<b>evil</b>' });
    expect([encoding.status, encoding.json.error.field]).toEqual([415, 'Content-Encoding']);
    expectNoEcho(encoding.json.error);
    const bulk = answerLines((await ndjson(server, '?model=load', `${JSON.stringify({ temp: 1, wind: 2, rain: 3, '<b>evil</b>': 1 })}\n${JSON.stringify({ temp: '<b>evil</b>', wind: 2, rain: 3 })}\n`)).text);
    expect(bulk.map((l) => l.error?.code)).toEqual(['SG_ERR_UNKNOWN_FEATURE', 'SG_ERR_TYPE']);
    for (const l of bulk) expectNoEcho(l.error!);

    const client = await connect(server, { token: TOKEN });
    const cases: [Record<string, unknown>, string, string][] = [
      [{ type: 'predict', id: 'm', model: evil, input: [1, 2, 3] }, 'SG_ERR_UNKNOWN_MODEL', 'model'],
      [{ type: 'predict', id: 'f', model: 'load', input: { temp: 1, wind: 2, rain: 3, '\u202e<b>evil</b>': 1 } }, 'SG_ERR_UNKNOWN_FEATURE', 'keys[3]'],
      [{ type: 'predict', id: 'v', model: 'load', input: { temp: '<b>evil</b>', wind: 2, rain: 3 } }, 'SG_ERR_TYPE', 'temp'],
      [{ type: 'predict', id: 'k', model: 'load', input: [1, 2, 3], '<b>evil</b>': 1 }, 'SG_ERR_SCHEMA', ''],
      [{ type: 'promote', id: 'p', model: evil, version: 1 }, 'SG_ERR_UNKNOWN_MODEL', ''],
      [{ type: 'history', id: 'h', run: evil, fromStep: 0 }, 'SG_ERR_UNKNOWN_RUN', 'run'],
    ];
    for (const [message, code, field] of cases) {
      const answer = await ask(client, message) as { type: string; code?: string; field?: string; message?: string };
      expect([message.id, answer.type, answer.code]).toEqual([message.id, 'error', code]);
      if (field !== '') expect(answer.field).toBe(field);
      expectNoEcho(answer);
    }
  });

  it('a version label that points nowhere (POST /predict, JSON and NDJSON, WebSocket predict, rollback): the code and field, never the label', async () => {
    const server = await modelServer();
    server.addModel('load', regression());
    for (const answer of [await post(server, '?model=load&version=evil', [1, 2, 3]), await ndjson(server, '?model=load&version=evil', '[1,2,3]\n')]) {
      expect([answer.status, answer.json.error.code, answer.json.error.field]).toEqual([404, 'SG_ERR_UNKNOWN_VERSION', 'version']);
      expectNoEcho(answer.json.error);
    }
    const client = await connect(server, { token: TOKEN });
    const cases = [
      [{ type: 'predict', id: 'v', model: 'load', version: 'evil', input: [1, 2, 3] }, 'SG_ERR_UNKNOWN_VERSION', 'version'],
      [{ type: 'rollback', id: 'r', model: 'load', label: 'evil' }, 'SG_ERR_STATE', undefined],
    ] as const;
    for (const [message, code, field] of cases) {
      const answer = await ask(client, message) as { type: string; code?: string; field?: string; message?: string };
      expect([answer.type, answer.code, answer.field]).toEqual(['error', code, field]);
      expectNoEcho(answer);
    }
  });

  it('every predictor error a client can cause, through every serving surface (POST /predict one sample and batch, NDJSON on the server thread and the bulk thread, WebSocket one sample and batch): code and field right, none of the client\'s text in the message', async () => {
    // one error, two messages: streamgrad predict's stderr quotes the user's own value, an answer never does
    const warm = createPredictor(regression(), { kernels: jsKernels })({ temp: 'warm', wind: 2, rain: 3 }).error!;
    expect([warm.message, warm.publicMessage]).toEqual(['temp: must be a number, got the string "warm"', 'temp: must be a number, got a string']);

    const here = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', bulkThread: false });
    const there = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', bulkThread: true });
    onCleanup(() => here.close());
    onCleanup(() => there.close());
    for (const server of [here, there]) {
      server.addModel('load', regression());
      server.addModel('bare', bare());
      server.addModel('classes', classifier());
    }
    const threadBlocks = async () => Number(/^streamgrad_bulk_thread_blocks_total (\d+)$/m.exec((await http(there, '/metrics', undefined, {}, 'GET')).text)?.[1] ?? 0);
    // the bulk thread starts at the first bulk request and answers once it is ready
    for (let attempt = 0; await threadBlocks() === 0; attempt++) {
      expect(attempt).toBeLessThan(600);
      await ndjson(there, '?model=bare', '[1,2,3,4]\n');
      await new Promise((r) => setTimeout(r, 50));
    }
    const threadBefore = await threadBlocks();
    const client = await connect(here);
    let bulkOnThread = 0, id = 0;
    for (const v of HOSTILE) {
      for (const kind of hostileKinds(v)) {
        const query = `?model=${kind.model}${kind.ignore === true ? '&unknown=ignore' : ''}`;
        const said = (where: string, error: { code?: string; field?: string; message?: string } | undefined) => {
          expect([kind.what, where, error?.code, error?.field]).toEqual([kind.what, where, kind.code, kind.field]);
          expectNoEcho(error!);
          for (const piece of ['ü', '\n', '\u2028', '\\']) expect(error!.message).not.toContain(piece);
        };
        const one = await post(here, query, kind.sample);
        expect(one.status).toBe(422);
        said('POST one sample', one.json.error);
        for (const [where, server] of [['NDJSON', here], ['NDJSON on the bulk thread', there]] as const) {
          const [line] = answerLines((await ndjson(server, query, `${JSON.stringify(kind.sample)}\n`)).text);
          said(where, line.error);
        }
        bulkOnThread++;
        const ws = { type: 'predict', model: kind.model, ...(kind.ignore === true && { unknown: 'ignore' }) };
        said('WebSocket one sample', await ask(client, { ...ws, id: `h${id++}`, input: kind.sample }) as { code?: string; field?: string; message?: string });
        // a batch holds samples (objects or arrays): a bare string is only ever one sample
        if (typeof kind.sample !== 'object') continue;
        said('POST batch', (await post(here, query, [kind.sample])).json.predictions[0].error);
        said('WebSocket batch', ((await ask(client, { ...ws, id: `h${id++}`, input: [kind.sample] })).predictions as { error?: { code: string } }[])[0].error);
      }
    }
    expect(await threadBlocks()).toBeGreaterThanOrEqual(threadBefore + bulkOnThread);
  });
});

describe('NDJSON whitespace lines (D6)', () => {
  it('a line of spaces or tabs gets its own error line (SG_ERR_BAD_JSON, its line number); only an empty line (or a lone CR) is skipped, so answers align with the non-empty lines', async () => {
    const server = await modelServer();
    server.addModel('bare', bare());
    const answer = await ndjson(server, '?model=bare', '[0,20,11,2.5]\n   \n[10.9,10.6,2.8,4.5]\n\t\n\n\r\n[1,2,3,4]\n');
    const lines = answerLines(answer.text);
    expect(lines.map((l) => l.error?.code ?? 'ok')).toEqual(['ok', 'SG_ERR_BAD_JSON', 'ok', 'SG_ERR_BAD_JSON', 'ok']);
    expect(lines.filter((l) => l.error !== undefined).map((l) => l.line)).toEqual([2, 4]);
  });
});

describe('metrics of refused requests (D7)', () => {
  it('every request counted in streamgrad_predict_requests_total is in the latency histogram\'s count, refused ones (400, 413, 415) and WebSocket ones included', async () => {
    const server = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', maxPredictBodyBytes: 1024 });
    onCleanup(() => server.close());
    server.addModel('bare', bare());
    const statuses = [
      (await post(server, '', [1, 2, 3, 4])).status,
      (await http(server, '/predict', '{"x":')).status,
      (await http(server, '/predict', JSON.stringify(Array.from({ length: 200 }, () => [1, 2, 3, 4])))).status,
      (await http(server, '/predict', '[1,2,3,4]', { 'Content-Type': 'text/plain' })).status,
      (await post(server, '', [1, 2])).status,
    ];
    expect(statuses).toEqual([200, 400, 413, 415, 422]);
    const client = await connect(server);
    expect((await ask(client, { type: 'predict', id: 'a', input: [1, 2, 3, 4] })).type).toBe('prediction');
    expect((await ask(client, { type: 'predict', id: 'b', input: [[1, 2, 3, 4], 5] })).type).toBe('error');
    const metrics = (await http(server, '/metrics', undefined, {}, 'GET')).text;
    const requests = Number(/^streamgrad_predict_requests_total\{model="bare",version="1"\} (\d+)$/m.exec(metrics)?.[1]);
    const latency = Number(/^streamgrad_predict_latency_seconds_count\{model="bare",version="1"\} (\d+)$/m.exec(metrics)?.[1]);
    expect([requests, latency]).toEqual([7, 7]);
  });

  it('WebSocket schema errors of predict and promote name the field at fault (version, input)', async () => {
    const server = await modelServer();
    server.addModel('bare', bare());
    const client = await connect(server, { token: TOKEN });
    const cases: [Record<string, unknown>, string][] = [
      [{ type: 'predict', id: 'a', version: '1', input: [1, 2, 3, 4] }, 'version'],
      [{ type: 'predict', id: 'b', version: -1, input: [1, 2, 3, 4] }, 'version'],
      [{ type: 'predict', id: 'c' }, 'input'],
      [{ type: 'promote', id: 'd', model: 'bare', version: -1 }, 'version'],
      [{ type: 'promote', id: 'e', model: 'bare', version: '1' }, 'version'],
    ];
    for (const [message, field] of cases) {
      expect(await ask(client, message)).toMatchObject({ type: 'error', id: message.id, code: 'SG_ERR_SCHEMA', field });
    }
  });
});
