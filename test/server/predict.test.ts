import { createConnection } from 'node:net';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { firstValueFrom } from 'rxjs';
import { parseServerMessage } from '../../clients/node/server-message.ts';
import { describe, expect, it } from 'vitest';
import { connect as connectClient } from '../../clients/node/client.ts';
import { CommandError } from '../../clients/node/errors.ts';
import { type HttpPredictOptions, predictBulk, predictHttp, PredictError } from '../../clients/node/predict-http.ts';
import { jsKernels } from '../../core/kernels-js.ts';
import type { Model } from '../../core/model.ts';
import { cloneModel } from '../../core/model.ts';
import type { ModelArtifact, Preprocessing } from '../../pipeline/model-artifact.ts';
import { createPredictor } from '../../pipeline/predict-record.ts';
import type { PredictionMessage, ServerMessage } from '../../server/protocol.ts';
import { serve, type ServeOptions, type StreamgradServer } from '../../server/server.ts';
import { serveInThread } from '../../server/threaded-server.ts';
import { classifier, regression } from './artifacts.ts';
import { connect, onCleanup, rawFrame, rawWebSocket, startServer, testRun, TOKEN } from './helpers.ts';
import { http } from '../helpers/http.ts';

/**
 * Live prediction serving (issue 12): `POST /predict` and the `predict` message answer
 * from immutable versions of a model's weights, through the model's own preprocessing,
 * and say which version answered. Real HTTP and WebSockets on 127.0.0.1, port 0.
 */

/** A server on this thread for saved models (`addModel` is `serve()`'s; the threaded server serves runs only). */
async function modelServer(options: ServeOptions = {}): Promise<StreamgradServer> {
  const server = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', ...options });
  onCleanup(() => server.close());
  return server;
}

const post = (server: Pick<StreamgradServer, 'port'>, query: string, body: unknown) => http(server, `/predict${query}`, JSON.stringify(body));
const ndjson = (server: Pick<StreamgradServer, 'port'>, query: string, lines: string) => http(server, `/predict${query}`, lines, { 'Content-Type': 'application/x-ndjson' });

/** What createPredictor says of a record, as the wire carries it. */
function expected(artifact: ModelArtifact, record: unknown): unknown {
  const result = createPredictor(artifact, { kernels: jsKernels })(record);
  if (result.error !== undefined) return { error: { code: result.error.code } };
  const { y, class: cls, probabilities } = result.prediction;
  return { y: Array.from(y), ...(cls !== undefined && { class: cls }), ...(probabilities !== undefined && { probabilities }) };
}

/** A copy of a model's current weights with a preprocessing: what a version of it holds. */
const snapshotOf = (model: Model, preprocessing: Preprocessing | null): ModelArtifact => ({ model: cloneModel(model, jsKernels), preprocessing });

describe('POST /predict and the predict message: answers through the model\'s own preprocessing', () => {
  it('a saved regression and classifier: one sample, a batch, NDJSON and WebSocket answers are exactly createPredictor\'s, in user units, with class names and probabilities, and say which version answered', async () => {
    const reg = regression(), cls = classifier();
    const server = await modelServer();
    server.addModel('load', reg, { time: 1_700_000_000_000 });
    server.addModel('weather', cls, { time: 1_700_000_001_000 });

    const samples = [{ temp: 14, wind: 2.5, rain: 1 }, { temp: 3, rain: 0.2 }, { temp: -4, wind: 10 }, [13, 4, 0], { x: [9, 1, 2] }];
    const one = await post(server, '?model=load', samples[0]);
    expect(one.status).toBe(200);
    expect(one.json).toEqual({ model: 'load', version: 1, step: 0, samples: 0, time: 1_700_000_000_000, prediction: expected(reg, samples[0]) });
    // the outputs are in the target's units (the target was standardised: mean 100 and 40)
    expect(Math.abs(one.json.prediction.y[0] - 100)).toBeLessThan(100);
    const batch = await post(server, '?model=load&version=1', samples);
    expect(batch.status).toBe(200);
    expect(batch.json.predictions).toEqual(samples.map((s) => expected(reg, s)));

    const records = [{ a: 1, b: 2, c: 3, d: 4 }, { c: 0, d: 9 }, { a: -3, b: 0.5, c: 8, d: 1, kind: 'sun' }];
    const bulk = await ndjson(server, '?model=weather', `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
    expect(bulk.status).toBe(200);
    expect(bulk.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = bulk.text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ model: 'weather', version: 1, step: 0, samples: 0, time: 1_700_000_001_000 });
    expect(lines.slice(1)).toEqual(records.map((r) => expected(cls, r)));
    for (const line of lines.slice(1)) {
      expect(['rain', 'snow', 'sun']).toContain(line.class);
      expect(Object.values(line.probabilities as Record<string, number>).reduce((a, b) => a + b)).toBeCloseTo(1, 12);
    }

    const client = await connect(server);
    client.send({ type: 'predict', id: 'w1', model: 'weather', input: records[0] });
    const answer = await client.next('prediction', (m) => m.id === 'w1');
    expect(answer).toEqual({ type: 'prediction', id: 'w1', model: 'weather', version: 1, step: 0, samples: 0, time: 1_700_000_001_000, prediction: expected(cls, records[0]) });
    client.send({ type: 'predict', id: 'w2', model: 'load', version: 'latest', input: samples });
    expect((await client.next('prediction', (m) => m.id === 'w2')).predictions).toEqual(samples.map((s) => expected(reg, s)));

    const models = await http(server, '/models', undefined, {}, 'GET');
    expect(models.json.models.map((m: { name: string; latest: number }) => [m.name, m.latest])).toEqual([['load', 1], ['weather', 1]]);

    // a saved model written again (serve --watch): the same weights are no new version, new ones are, another shape is refused
    expect(server.updateModel('load', reg, { time: 1_700_000_000_000 })).toBeNull();
    const changed = { model: cloneModel(reg.model, jsKernels), preprocessing: reg.preprocessing };
    changed.model.params[0] += 1;
    expect(server.updateModel('load', changed, { step: 7, samples: 70, time: 1_700_000_002_000 })).toMatchObject({ version: 2, step: 7, samples: 70 });
    expect((await post(server, '?model=load', samples[0])).json).toEqual({ model: 'load', version: 2, step: 7, samples: 70, time: 1_700_000_002_000, prediction: expected(changed, samples[0]) });
    expect((await post(server, '?model=load&version=1', samples[0])).json.prediction).toEqual(expected(reg, samples[0]));
    expect(() => server.updateModel('load', cls)).toThrow(expect.objectContaining({ code: 'SG_ERR_MODEL' }));
  });

  it('a training run: versions are monotonic, a pinned version answers the same while training goes on, stable is promoted and rolled back with the token (acked, at most once)', async () => {
    const preprocessing: Preprocessing = { features: null, targets: null, classes: null, missing: null, imputation: null, normalizer: null };
    const run = testRun({ preprocessing: () => preprocessing });
    const server = await startServer({ keepVersions: 8 }, run);
    const first = await post(server, '', [0.1, 0.2, 0.3]);
    expect(first.json).toMatchObject({ model: 'a', version: 1, step: 0, samples: 0 });
    // before training, version 1 is the run's weights
    expect(first.json.prediction).toEqual(expected(snapshotOf(run.trainer.model, null), [0.1, 0.2, 0.3]));
    void run.start();

    const seen: { version: number; step: number; samples: number; time: number }[] = [];
    const deadline = Date.now() + 20_000;
    while (seen.length < 3 || seen[seen.length - 1].version < 4) {
      if (Date.now() > deadline) throw new Error(`no new versions: ${JSON.stringify(seen)}`);
      const r = await post(server, '?model=a', [0.1, 0.2, 0.3]);
      expect(r.status).toBe(200);
      seen.push(r.json);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i].version).toBeGreaterThanOrEqual(seen[i - 1].version);
      expect(seen[i].step).toBeGreaterThanOrEqual(seen[i - 1].step);
      expect(seen[i].samples).toBeGreaterThanOrEqual(seen[i - 1].samples);
      expect(seen[i].time).toBeGreaterThanOrEqual(seen[i - 1].time);
      if (seen[i].version === seen[i - 1].version) expect(seen[i].step).toBe(seen[i - 1].step);
    }
    // pin a version: the run pauses meanwhile, so that 8 newer versions cannot push it out
    // of memory before `stable` holds it (on a loaded machine a round trip can take a while)
    const control = await connect(server, { token: TOKEN });
    const pause = async () => {
      run.pause();
      await control.until(() => run.state === 'paused', 'the pause');
      await new Promise((resolve) => setTimeout(resolve, 100));
    };
    await pause();
    const pinnedAnswer = (await post(server, '', [0.5, -0.5, 0.25])).json;
    const pinned: number = pinnedAnswer.version;
    expect(pinned).toBeGreaterThanOrEqual(seen[seen.length - 1].version);
    expect((await post(server, `?version=${pinned}`, [0.5, -0.5, 0.25])).json).toEqual(pinnedAnswer);

    // promoting needs control access
    const reader = await connect(server);
    expect(await reader.command({ type: 'promote', id: 'p0', model: 'a', version: pinned })).toMatchObject({ type: 'error', code: 'SG_ERR_FORBIDDEN' });
    expect(await control.command({ type: 'promote', id: 'p1', model: 'a', version: pinned })).toMatchObject({ type: 'ack', command: 'promote', duplicate: false, result: { model: 'a', label: 'stable', version: pinned, previous: null } });
    expect(await control.command({ type: 'promote', id: 'p1', model: 'a', version: pinned })).toMatchObject({ type: 'ack', duplicate: true });
    expect((await post(server, '?version=stable', [0.5, -0.5, 0.25])).json).toEqual(pinnedAnswer);

    // while training runs on, the pinned version and stable answer exactly as before; latest moves on
    run.resume();
    await control.until(() => run.trainer.counters.steps > pinnedAnswer.step + 200, 'more training');
    let latest = (await post(server, '', [0.5, -0.5, 0.25])).json;
    const until = Date.now() + 10_000;
    while (latest.version <= pinned + 2 && Date.now() < until) latest = (await post(server, '', [0.5, -0.5, 0.25])).json;
    expect(latest.version).toBeGreaterThan(pinned + 2);
    expect(latest.prediction).not.toEqual(pinnedAnswer.prediction);
    expect((await post(server, `?version=${pinned}`, [0.5, -0.5, 0.25])).json).toEqual(pinnedAnswer);
    await pause();
    latest = (await post(server, '', [0.5, -0.5, 0.25])).json;

    expect(await control.command({ type: 'promote', id: 'p2', model: 'a', version: latest.version })).toMatchObject({ type: 'ack', result: { version: latest.version, previous: pinned } });
    expect((await post(server, '?version=stable', [0.5, -0.5, 0.25])).json).toEqual(latest);
    expect(await control.command({ type: 'rollback', id: 'r1', model: 'a' })).toMatchObject({ type: 'ack', command: 'rollback', result: { label: 'stable', version: pinned, from: latest.version } });
    expect((await post(server, '?version=stable', [0.5, -0.5, 0.25])).json).toEqual(pinnedAnswer);
    expect(await control.command({ type: 'rollback', id: 'r2', model: 'a' })).toMatchObject({ type: 'error', code: 'SG_ERR_STATE' });
    expect(await control.command({ type: 'promote', id: 'p3', model: 'a', version: 10 ** 9 })).toMatchObject({ type: 'error', code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(await control.command({ type: 'promote', id: 'p4', model: 'nope', version: 1 })).toMatchObject({ type: 'error', code: 'SG_ERR_UNKNOWN_MODEL' });

    // bounded: 8 recent versions, older ones 10 s apart (here only version 1: all came within seconds), and the labelled one besides
    const versions = (await http(server, '/models', undefined, {}, 'GET')).json.models[0];
    expect(versions.versions.length).toBeLessThanOrEqual(8 + 1 + 1);
    expect(versions.labels).toEqual({ stable: pinned });
    const listed = new Set((versions.versions as { version: number }[]).map((v) => v.version));
    const gone = Array.from({ length: Math.max(...listed) }, (_, i) => i + 1).find((n) => !listed.has(n))!;
    expect((await post(server, `?version=${gone}`, [0, 0, 0])).json).toMatchObject({ error: { code: 'SG_ERR_UNKNOWN_VERSION' } });
    // a paused run's latest version is exactly its weights
    expect((await post(server, '', [0.5, -0.5, 0.25])).json.prediction).toEqual(expected(snapshotOf(run.trainer.model, null), [0.5, -0.5, 0.25]));
  });

  it('a run trained on this thread, served from the server thread (serveInThread): predictions come from the mirrored weights with the run\'s preprocessing, and a pinned version never changes under full-speed training', async () => {
    const artifact = regression();
    const run = testRun({ inputs: 3, layers: [[8, 'tanh'], [2, 'linear']], seed: 11, preprocessing: () => artifact.preprocessing });
    // every version kept (a tiny model): on a loaded machine 40 requests may outlast the default 32 versions
    const server = await serveInThread({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', keepVersions: 100_000 });
    onCleanup(() => server.close());
    server.addRun(run);
    const record = { temp: 14, wind: 2.5, rain: 1 };
    const before = await post(server, '?model=a', record);
    expect(before.json).toEqual({ model: 'a', version: 1, step: 0, samples: 0, time: before.json.time, prediction: expected(snapshotOf(run.trainer.model, artifact.preprocessing), record) });
    void run.start();
    const deadline = Date.now() + 20_000;
    let pinned = before.json;
    while (pinned.version < 3) {
      if (Date.now() > deadline) throw new Error('no new version from the server thread');
      pinned = (await post(server, '?model=a', record)).json;
    }
    const answers = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 10));
      return (await post(server, `?model=a&version=${pinned.version}`, record)).json;
    }));
    for (const a of answers) expect(a).toEqual(pinned);
    expect(run.trainer.counters.steps).toBeGreaterThan(pinned.step);
    run.pause();
    const pausedUntil = Date.now() + 10_000;
    while (run.state !== 'paused' && Date.now() < pausedUntil) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const now = (await post(server, '?model=a', record)).json;
    expect(now.step).toBe(run.trainer.counters.steps);
    expect(now.prediction).toEqual(expected(snapshotOf(run.trainer.model, artifact.preprocessing), record));
  });
});

describe('saved models on the server thread (serveInThread.addModel: what streamgrad serve runs on)', () => {
  it('addModel and updateModel answer exactly createPredictor\'s; a busy main thread does not hold an answer; the hello lists runs and saved models with their labels; promote tells onLabels; a clash or another shape is refused', async () => {
    const told: { model: string; labels: Record<string, readonly number[]> }[] = [];
    const server = await serveInThread({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', onLabels: (model, labels) => told.push({ model, labels: labels.labels }) });
    onCleanup(() => server.close());
    const cls = classifier();
    expect(await server.addModel('weather', cls, { time: 7, step: 3, samples: 30 })).toEqual({ model: 'weather', version: 1, step: 3, samples: 30, time: 7 });
    const run = testRun({ inputs: 3, layers: [[8, 'tanh'], [2, 'linear']], seed: 11 });
    server.addRun(run);
    await expect(server.addModel('weather', cls)).rejects.toThrow(/already served/);
    await expect(server.addModel('a', cls)).rejects.toThrow(/a run named "a"/);
    expect(() => server.addRun(testRun({ id: 'weather', inputs: 3, layers: [[2, 'linear']], seed: 1 }))).toThrow(/a model named "weather"/);
    const record = { a: 1, b: 2, c: 3, d: 4 };
    expect((await post(server, '?model=weather', record)).json).toEqual({ model: 'weather', version: 1, step: 3, samples: 30, time: 7, prediction: expected(cls, record) });

    // the main thread (where a serve process watches files and writes labels) busy for a second: answers still come
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const ms = [];
        const until = Date.now() + 1500;
        while (Date.now() < until) {
          const t = performance.now();
          const res = await fetch(workerData.url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: workerData.body });
          await res.text();
          ms.push({ ms: performance.now() - t, at: Date.now() });
        }
        parentPort.postMessage(ms);
      })();`, { eval: true, workerData: { url: `${server.url}/predict?model=weather`, body: JSON.stringify(record) } });
    const latencies = new Promise<{ ms: number; at: number }[]>((resolve) => worker.once('message', resolve));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const busyFrom = Date.now();
    const busyUntil = busyFrom + 1000;
    while (Date.now() < busyUntil) { /* a main thread that does not turn its event loop */ }
    const answers = await latencies;
    await worker.terminate();
    // answers came while the main thread was busy (how many depends on the machine's load)
    expect(answers.filter((a) => a.at > busyFrom && a.at < busyUntil).length).toBeGreaterThanOrEqual(2);
    // generous: a loaded machine (load 20 on 2 cores gave one of 500 ms); a request that waited
    // for the busy thread would take up to the whole busy second
    expect(answers.filter((a) => a.ms > 800).length).toBe(0);

    const changed = cls.model.params.slice();
    changed[0] += 1;
    const next = { model: cloneModel(cls.model, jsKernels), preprocessing: cls.preprocessing };
    next.model.params.set(changed);
    expect(await server.updateModel('weather', next, { time: 9 })).toMatchObject({ version: 2, time: 9 });
    expect(await server.updateModel('weather', next, { time: 9 })).toBeNull();
    await expect(server.updateModel('weather', regression())).rejects.toMatchObject({ code: 'SG_ERR_MODEL' });
    expect((await post(server, '?model=weather', record)).json.prediction).toEqual(expected(next, record));
    expect((await post(server, '?model=weather&version=1', record)).json.prediction).toEqual(expected(cls, record));

    const client = connectClient(server.wsUrl, { token: TOKEN });
    onCleanup(() => client.close());
    expect(await client.promote('weather', 1)).toMatchObject({ result: { label: 'stable', version: 1 } });
    while (told.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(told).toEqual([{ model: 'weather', labels: { stable: [1] } }]);
    expect((await firstValueFrom(client.hello$)).models).toEqual([{ name: 'weather', kind: 'saved', latest: 2, labels: {} }, { name: 'a', kind: 'run', latest: 1, labels: {} }]);
    // a hello is the state when the connection opened: a new connection sees the label
    const later = connectClient(server.wsUrl, { token: TOKEN });
    onCleanup(() => later.close());
    const hello = await firstValueFrom(later.hello$);
    expect(hello.models).toEqual([{ name: 'weather', kind: 'saved', latest: 2, labels: { stable: 1 } }, { name: 'a', kind: 'run', latest: 1, labels: {} }]);
    server.removeModel('weather');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await post(server, '?model=weather', record)).json.error.code).toBe('SG_ERR_UNKNOWN_MODEL');
  });

  it('the Node client checks the hello\'s models: well-formed ones pass, a bad kind, version or label drops the message', () => {
    const hello = { type: 'hello', protocol: 1, server: 'streamgrad', access: 'read-only', runs: [], limits: { maxPayload: 1, maxRateHz: 1, commandsPerMinute: 1, heartbeatMs: 1 } };
    const models = [{ name: 'w', kind: 'saved', latest: 2, labels: { stable: 1 } }, { name: 'r', kind: 'run', latest: null, labels: {} }];
    expect(parseServerMessage(JSON.stringify({ ...hello, models }))).toMatchObject({ models });
    expect(parseServerMessage(JSON.stringify(hello))).not.toBeNull();
    for (const bad of [{ ...models[0], kind: 'other' }, { ...models[0], latest: -1 }, { ...models[0], labels: { stable: 'x' } }, { ...models[0], name: '' }, 'w']) {
      expect(parseServerMessage(JSON.stringify({ ...hello, models: [bad] }))).toBeNull();
    }
    // a metrics message's delayed-labels counters: counts, or the message is dropped
    const metrics = { type: 'metrics', run: 'r', step: 1, size: 1, loss: 1, gradNorm: 1, learningRate: 0.1, updated: true, metrics: { window: 1, count: 1, loss: 1, mae: 1 }, samplesPerSecond: null, counters: { steps: 1 }, state: 'running' };
    expect(parseServerMessage(JSON.stringify({ ...metrics, labels: { joined: 3, waiting: 1 } }))).toMatchObject({ labels: { joined: 3, waiting: 1 } });
    expect(parseServerMessage(JSON.stringify({ ...metrics, labels: { joined: -1 } }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ ...metrics, labels: [1] }))).toBeNull();
  });
});

describe('the Node client: predict, promote, rollback', () => {
  it('client.predict resolves with the prediction and the version that answered; a bad sample or version rejects with its code; promote and rollback are acked', async () => {
    const server = await modelServer();
    const cls = classifier();
    server.addModel('weather', cls, { time: 5 });
    const client = connectClient(server.wsUrl, { token: TOKEN });
    onCleanup(() => client.close());
    const record = { a: 1, b: 2, c: 3, d: 4 };
    expect(await client.predict(record)).toMatchObject({ type: 'prediction', model: 'weather', version: 1, time: 5, prediction: expected(cls, record) });
    expect((await client.predict([record, [1, 2]], { model: 'weather', version: 1 })).predictions).toEqual([expected(cls, record), { error: { code: 'SG_ERR_ARITY', message: expect.any(String), field: expect.any(String) } }]);
    await expect(client.predict({ a: 1 }, { model: 'weather' })).rejects.toMatchObject({ code: 'SG_ERR_MISSING' });
    await expect(client.predict(record, { version: 'stable' })).rejects.toBeInstanceOf(CommandError);
    expect(await client.promote('weather', 1)).toMatchObject({ command: 'promote', result: { label: 'stable', version: 1 } });
    expect((await client.predict(record, { version: 'stable' })).version).toBe(1);
    await expect(client.rollback('weather')).rejects.toMatchObject({ code: 'SG_ERR_STATE' });
    await expect(client.predict(record, { version: 0 })).rejects.toMatchObject({ code: 'SG_ERR_SCHEMA' });
  });
});

describe('the Node client over HTTP: predictHttp and predictBulk', () => {
  it('predictHttp: one sample and a batch, exactly createPredictor\'s with the version that answered; refusals are PredictErrors with the server\'s code, status and field', async () => {
    const server = await modelServer({ predictRequestsPerSecond: 50 });
    const cls = classifier();
    server.addModel('weather', cls, { time: 5, step: 2, samples: 20 });
    const record = { a: 1, b: 2, c: 3, d: 4 };
    expect(await predictHttp(server.url, record)).toEqual({ model: 'weather', version: 1, step: 2, samples: 20, time: 5, prediction: expected(cls, record) });
    // a ws:// URL names the same server
    const batch = await predictHttp(server.wsUrl, [record, [1, 2]], { model: 'weather', version: 1 });
    expect(batch.predictions).toEqual([expected(cls, record), { error: { code: 'SG_ERR_ARITY', message: expect.any(String), field: expect.any(String) } }]);
    const refused = async (input: unknown, options: HttpPredictOptions) => predictHttp(server.url, input, options).then(() => { throw new Error('resolved'); }, (error: unknown) => error as PredictError);
    expect(await refused(record, { version: 'stable' })).toMatchObject({ name: 'PredictError', code: 'SG_ERR_UNKNOWN_VERSION', status: 404, field: 'version' });
    expect(await refused({ a: 1 }, {})).toMatchObject({ code: 'SG_ERR_MISSING', status: 422, meta: { model: 'weather', version: 1 } });
    expect(await refused({ ...record, e: 1 }, {})).toMatchObject({ code: 'SG_ERR_UNKNOWN_FEATURE', field: 'keys[4]' });
    expect((await predictHttp(server.url, { ...record, e: 1 }, { unknown: 'ignore' })).prediction).toEqual(expected(cls, record));
    expect(await refused(record, { model: 'nope' })).toMatchObject({ code: 'SG_ERR_UNKNOWN_MODEL', status: 404 });
    let limited: PredictError | null = null;
    for (let i = 0; i < 200 && limited === null; i++) limited = await predictHttp(server.url, record).then(() => null, (error: PredictError) => error);
    expect(limited).toMatchObject({ code: 'SG_ERR_RATE_LIMIT', status: 429 });
    await expect(predictHttp('ftp://127.0.0.1/', record)).rejects.toThrow(TypeError);
    await expect(predictHttp('http://user:pw@127.0.0.1:1/', record)).rejects.toThrow(/no credentials/);
    await expect(predictHttp(server.url, record, { timeoutMs: 0 })).rejects.toThrow(RangeError);
  });

  it('predictHttp: a server that is not there, never answers, or answers something else: SG_ERR_CONNECTION, SG_ERR_TIMEOUT, SG_ERR_PROTOCOL', async () => {
    const { createServer } = await import('node:http');
    const { createServer: createTcp } = await import('node:net');
    const listen = async (s: { listen(port: number, host: string, done: () => void): unknown; address(): unknown; close(): unknown }) => {
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      onCleanup(() => { s.close(); });
      return (s.address() as { port: number }).port;
    };
    const silentSockets: import('node:net').Socket[] = [];
    const silent = createTcp((socket) => { silentSockets.push(socket); });
    onCleanup(() => { for (const socket of silentSockets) socket.destroy(); });
    const silentPort = await listen(silent);
    await expect(predictHttp(`http://127.0.0.1:${silentPort}`, [1], { timeoutMs: 300 })).rejects.toMatchObject({ code: 'SG_ERR_TIMEOUT', status: null });
    const other = createServer((_req, res) => res.end('<html>hello</html>'));
    const otherPort = await listen(other);
    await expect(predictHttp(`http://127.0.0.1:${otherPort}`, [1])).rejects.toMatchObject({ code: 'SG_ERR_PROTOCOL', status: 200 });
    const failing = createServer((_req, res) => { res.statusCode = 502; res.end('bad gateway'); });
    const failingPort = await listen(failing);
    await expect(predictHttp(`http://127.0.0.1:${failingPort}`, [1])).rejects.toMatchObject({ code: 'SG_ERR_PROTOCOL', status: 502 });
    // a port nothing listens on any more
    const probe = createTcp();
    const freed = await listen(probe);
    await new Promise((resolve) => probe.close(resolve));
    await expect(predictHttp(`http://127.0.0.1:${freed}`, [1])).rejects.toMatchObject({ code: 'SG_ERR_CONNECTION', status: null });
  });

  it('predictBulk: samples streamed from a generator are answered line by line, in order, exactly createPredictor\'s; a bad sample is its own {line, error}; a refused request rejects', async () => {
    const server = await modelServer();
    const reg = regression();
    server.addModel('load', reg, { time: 3 });
    const n = 5000;
    const sample = (i: number) => ({ temp: (i % 40) - 5, wind: (i % 13) / 2, rain: (i % 7) / 3 });
    async function* samples() {
      for (let i = 0; i < n; i++) {
        if (i % 1000 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
        yield i === 1234 ? { temp: 'warm', wind: 1, rain: 1 } : sample(i);
      }
    }
    const answer = await predictBulk(server.url, samples(), { model: 'load' });
    expect({ model: answer.model, version: answer.version, time: answer.time }).toEqual({ model: 'load', version: 1, time: 3 });
    let i = 0;
    for await (const result of answer.results) {
      if (i === 1234) expect(result).toMatchObject({ line: 1235, error: { code: 'SG_ERR_TYPE' } });
      else expect(result).toEqual(expected(reg, sample(i)));
      i++;
    }
    expect(i).toBe(n);
    await expect(predictBulk(server.url, [sample(0)], { model: 'nope' })).rejects.toMatchObject({ code: 'SG_ERR_UNKNOWN_MODEL', status: 404 });
    // a plain array works as well; an early break stops reading
    const few = await predictBulk(server.url, [sample(1), sample(2), sample(3)], { model: 'load' });
    for await (const result of few.results) {
      expect(result).toEqual(expected(reg, sample(1)));
      break;
    }
  });
});

describe('bad prediction requests get typed errors with codes, never a crash', () => {
  it('HTTP: arity, non-finite, type, missing, unknown feature, unknown model and version, malformed JSON, mixed arrays, method, media type, oversized body', async () => {
    const server = await modelServer({ maxPredictBodyBytes: 4096 });
    server.addModel('load', regression());
    server.addModel('weather', classifier());
    const cases: [string, unknown, number, string, string?][] = [
      ['?model=load', [1, 2], 422, 'SG_ERR_ARITY'],
      ['?model=load', { x: [1, 2, 3, 4] }, 422, 'SG_ERR_ARITY'],
      ['?model=load', { temp: 'warm', wind: 1, rain: 0 }, 422, 'SG_ERR_TYPE'],
      ['?model=load', { wind: 1, rain: 0 }, 422, 'SG_ERR_MISSING'],
      ['?model=load', { temp: 1, wind: 1, rian: 0 }, 422, 'SG_ERR_UNKNOWN_FEATURE'],
      ['?model=load', [1, 2, 'x'], 422, 'SG_ERR_TYPE'],
      ['?model=load', [1, [2], 3], 400, 'SG_ERR_SCHEMA'],
      ['?model=other', [1, 2, 3], 404, 'SG_ERR_UNKNOWN_MODEL'],
      ['', [1, 2, 3], 404, 'SG_ERR_UNKNOWN_MODEL'],
      ['?model=load&version=7', [1, 2, 3], 404, 'SG_ERR_UNKNOWN_VERSION'],
      ['?model=load&version=stable', [1, 2, 3], 404, 'SG_ERR_UNKNOWN_VERSION'],
      ['?model=load&version=Bad%20Label', [1, 2, 3], 400, 'SG_ERR_SCHEMA'],
      ['?model=load&unknown=maybe', [1, 2, 3], 400, 'SG_ERR_SCHEMA'],
    ];
    for (const [query, body, status, code] of cases) {
      const answer = await post(server, query, body);
      expect([query, body, answer.status, answer.json?.error?.code]).toEqual([query, body, status, code]);
      expect(typeof answer.json.error.message).toBe('string');
    }
    // a misspelt feature may be ignored on request (then the missing one is imputed, or refused)
    expect((await post(server, '?model=load&unknown=ignore', { temp: 1, wind: 1, rian: 0 })).json.prediction).toEqual(expected(regression(), { temp: 1, wind: 1 }));
    // non-finite: 1e999 is Infinity once parsed
    const inf = await http(server, '/predict?model=load', '[1, 1e999, 3]');
    expect([inf.status, inf.json.error.code]).toEqual([422, 'SG_ERR_NONFINITE_INPUT']);
    // a batch answers every sample, the bad ones with their error
    const mixed = await post(server, '?model=load', [[1, 2, 3], [1, 2], { temp: 1, wind: 2, rain: 'x' }, [4, 5, 6]]);
    expect(mixed.status).toBe(200);
    expect(mixed.json.predictions.map((p: { error?: { code: string } }) => p.error?.code ?? 'ok')).toEqual(['ok', 'SG_ERR_ARITY', 'SG_ERR_TYPE', 'ok']);
    const bad = await http(server, '/predict?model=load', '{"temp": 1,');
    expect([bad.status, bad.json.error.code]).toEqual([400, 'SG_ERR_BAD_JSON']);
    const notUtf8 = await http(server, '/predict?model=load', Buffer.from([0x5b, 0xff, 0x5d]));
    expect([notUtf8.status, notUtf8.json.error.code]).toEqual([400, 'SG_ERR_BAD_JSON']);
    const get = await http(server, '/predict?model=load', undefined, {}, 'GET');
    expect([get.status, get.json.error.code, get.headers.allow]).toEqual([405, 'SG_ERR_METHOD', 'POST']);
    const form = await http(server, '/predict?model=load', 'a=1', { 'Content-Type': 'application/x-www-form-urlencoded' });
    expect([form.status, form.json.error.code]).toEqual([415, 'SG_ERR_MEDIA_TYPE']);
    const big = await http(server, '/predict?model=load', JSON.stringify(Array.from({ length: 600 }, () => [1, 2, 3])));
    expect([big.status, big.json.error.code]).toEqual([413, 'SG_ERR_TOO_LARGE']);
    // chunked (no Content-Length): refused once it is over the limit
    const chunked = await http(server, '/predict?model=load', JSON.stringify(Array.from({ length: 600 }, () => [1, 2, 3])), { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    expect([chunked.status, chunked.json.error.code]).toEqual([413, 'SG_ERR_TOO_LARGE']);
    // the server is fine after all that
    expect((await post(server, '?model=load', [1, 2, 3])).status).toBe(200);
  });

  it('HTTP: model, version or unknown given twice is SG_ERR_SCHEMA naming the parameter, never the first one silently', async () => {
    // before: ?version=1&version=7 answered from version 1 (a proxy that reads the last one would have meant 7)
    const server = await modelServer();
    server.addModel('load', regression());
    for (const [query, field] of [['?model=load&version=1&version=7', 'version'], ['?model=load&model=other', 'model'], ['?model=load&unknown=ignore&unknown=reject', 'unknown']]) {
      const answer = await post(server, query, [1, 2, 3]);
      expect([query, answer.status, answer.json?.error?.code, answer.json?.error?.field]).toEqual([query, 400, 'SG_ERR_SCHEMA', field]);
    }
    expect((await post(server, '?model=load&version=1', [1, 2, 3])).status).toBe(200);
  });

  it('HTTP: a compressed body (Content-Encoding gzip or br) is 415 SG_ERR_MEDIA_TYPE naming Content-Encoding, JSON or NDJSON', async () => {
    // before: a gzipped NDJSON body of two samples was answered 200 with one "line 1 is not
    // valid UTF-8", and a plain body labelled br was predicted as if it were not
    const server = await modelServer();
    server.addModel('load', regression());
    const ndjson = await http(server, '/predict', gzipSync('[1,2,3]\n[1,2,3]\n'), { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' });
    expect([ndjson.status, ndjson.json?.error?.code, ndjson.json?.error?.field]).toEqual([415, 'SG_ERR_MEDIA_TYPE', 'Content-Encoding']);
    const json = await http(server, '/predict', '[1,2,3]', { 'Content-Type': 'application/json', 'Content-Encoding': 'br' });
    expect([json.status, json.json?.error?.code, json.json?.error?.field]).toEqual([415, 'SG_ERR_MEDIA_TYPE', 'Content-Encoding']);
    expect((await http(server, '/predict', '[1,2,3]', { 'Content-Type': 'application/json', 'Content-Encoding': 'identity' })).status).toBe(200);
  });

  it('NDJSON: a malformed, wrong or oversized line gets its own error line (with its line number) and the lines after it are answered', async () => {
    const server = await modelServer({ maxPredictLineBytes: 256 });
    server.addModel('load', regression());
    const long = JSON.stringify({ temp: 1, wind: 2, rain: 3, pad: 'x'.repeat(400) });
    const body = ['[1,2,3]', '{"temp": 1,', '', '[1,2]', long, '{"temp":1,"wind":2,"rain":3}', '[1,1e999,3]', '{"temp":1,"wind":2,"rain":3,"oops":1}', '[4,5,6]'].join('\n');
    const answer = await ndjson(server, '?model=load', body);
    expect(answer.status).toBe(200);
    const lines = answer.text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ model: 'load', version: 1 });
    expect(lines.slice(1).map((l) => (l.error === undefined ? 'ok' : `${l.line} ${l.error.code}`))).toEqual([
      'ok', '2 SG_ERR_BAD_JSON', '4 SG_ERR_ARITY', '5 SG_ERR_TOO_LARGE', 'ok', '7 SG_ERR_NONFINITE_INPUT', '8 SG_ERR_UNKNOWN_FEATURE', 'ok',
    ]);
    expect(lines[lines.length - 1]).toEqual(expected(regression(), [4, 5, 6]));
    // a line that is not UTF-8 is that line's error only
    const utf8 = await http(server, '/predict?model=load', Buffer.concat([Buffer.from('[1,2,3]\n[1,'), Buffer.from([0xff]), Buffer.from(',3]\n[4,5,6]')]), { 'Content-Type': 'application/x-ndjson' });
    expect(utf8.text.trimEnd().split('\n').slice(1).map((l) => JSON.parse(l).error?.code ?? 'ok')).toEqual(['ok', 'SG_ERR_BAD_JSON', 'ok']);
    // a line over the limit split across chunks is skipped too, and the next line answered
    const split = await ndjson(server, '?model=load', `${'[1,'.repeat(200)}\n[1,2,3]\n`);
    expect(split.text.trimEnd().split('\n').slice(1).map((l) => JSON.parse(l).error?.code ?? 'ok')).toEqual(['SG_ERR_TOO_LARGE', 'ok']);
    // over the bulk limit: the lines read are answered, then one error line ends the answer
    const small = await modelServer({ maxBulkBytes: 64 * 1024 });
    small.addModel('load', regression());
    const huge = Array.from({ length: 20_000 }, () => '[1,2,3]').join('\n');
    const cut = await http(small, '/predict', huge, { 'Content-Type': 'application/x-ndjson', 'Transfer-Encoding': 'chunked' });
    const cutLines = cut.text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(cutLines[cutLines.length - 1]).toMatchObject({ error: { code: 'SG_ERR_TOO_LARGE' } });
    expect(cutLines.length).toBeGreaterThan(2);
    const declared = await http(small, '/predict', huge, { 'Content-Type': 'application/x-ndjson' });
    expect([declared.status, declared.json.error.code]).toEqual([413, 'SG_ERR_TOO_LARGE']);
  });

  it('WebSocket: errors carry the request id, a code and the field at fault (as HTTP does); predictions have their own rate budget (429-like SG_ERR_RATE_LIMIT), HTTP too; /metrics counts requests, errors and latency by version', async () => {
    const server = await modelServer({ predictRequestsPerSecond: 10 });
    server.addModel('load', regression());
    const client = await connect(server);
    const ask = async (message: Record<string, unknown>): Promise<ServerMessage> => {
      client.send(message);
      let found: ServerMessage | undefined;
      await client.until(() => {
        const i = client.messages.findIndex((m) => (m.type === 'prediction' || m.type === 'error') && (m as PredictionMessage).id === message.id);
        if (i !== -1) found = client.messages.splice(i, 1)[0];
        return i !== -1;
      }, `the answer to ${String(message.id)}`, 30_000);
      return found!;
    };
    expect(await ask({ type: 'predict', id: 'a', model: 'load', input: [1, 2] })).toMatchObject({ type: 'error', id: 'a', code: 'SG_ERR_ARITY', field: 'x' });
    expect(await ask({ type: 'predict', id: 'b', model: 'load', version: 3, input: [1, 2, 3] })).toMatchObject({ type: 'error', id: 'b', code: 'SG_ERR_UNKNOWN_VERSION', field: 'version' });
    expect(await ask({ type: 'predict', id: 'c', model: 'x', input: [1, 2, 3] })).toMatchObject({ type: 'error', id: 'c', code: 'SG_ERR_UNKNOWN_MODEL', field: 'model' });
    expect(await ask({ type: 'predict', id: 'd', input: { temp: 1, wind: 2, rain: 3, extra: 1 } })).toMatchObject({ type: 'error', id: 'd', code: 'SG_ERR_UNKNOWN_FEATURE', field: 'keys[3]' });
    expect(await ask({ type: 'predict', id: 'e', model: 'load' })).toMatchObject({ type: 'error', id: 'e', code: 'SG_ERR_SCHEMA' });
    expect(await ask({ type: 'predict', id: 'f', model: 'load', input: [[1, 2, 3], [1, 2]] })).toMatchObject({ type: 'prediction', id: 'f', predictions: [{ y: expect.any(Array) }, { error: { code: 'SG_ERR_ARITY' } }] });
    // the budget: 10 a second in bursts of 10 (this connection has used 5): 30 at once go over it
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => ask({ type: 'predict', id: `r${i}`, model: 'load', input: [1, 2, 3] })));
    expect(answers.map((m) => (m.type === 'error' ? m.code : 'ok'))).toContain('SG_ERR_RATE_LIMIT');
    expect(client.closeCode).toBeNull();
    const refused = await Promise.all(Array.from({ length: 30 }, async () => (await post(server, '?model=load', [1, 2, 3])).status));
    expect(refused).toContain(429);

    const metrics = (await http(server, '/metrics', undefined, {}, 'GET')).text;
    expect(metrics).toMatch(/^streamgrad_predict_requests_total\{model="load",version="1"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^streamgrad_predictions_total\{model="load",version="1"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^streamgrad_predict_errors_total\{model="load",version="1",code="SG_ERR_ARITY"\} 2$/m);
    expect(metrics).toMatch(/^streamgrad_predict_errors_total\{model="load",version="none",code="SG_ERR_UNKNOWN_VERSION"\} 1$/m);
    expect(metrics).toMatch(/^streamgrad_predict_errors_total\{model="load",version="none",code="SG_ERR_RATE_LIMIT"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^streamgrad_predict_latency_seconds_count\{model="load",version="1"\} [1-9]\d*$/m);
  });

  it('a POST /predict whose client closes the connection mid-body (JSON or NDJSON) is counted in /metrics as code "aborted", not just logged as a failed request', async () => {
    // before: the JSON body's read rejected into server.ts's catch-all, "request POST failed"
    // in the log and no series in /metrics; an NDJSON one was counted as answered
    const logs: string[] = [];
    const server = await modelServer({ log: (line) => logs.push(line) });
    server.addModel('load', regression());
    const cutOff = (type: string, body: string) => new Promise<void>((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port: server.port }, () => {
        socket.write(`POST /predict?model=load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: 1000\r\n\r\n${body}`);
        // the server has the headers and part of the body when the client goes
        setTimeout(() => socket.destroy(), 100);
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
    await cutOff('application/json', '[[1, 2, 3], [1, ');
    await cutOff('application/x-ndjson', '[1, 2, 3]\n[1, 2');
    const aborted = async () => /^streamgrad_predict_errors_total\{model="load",version="1",code="aborted"\} (\d+)$/m.exec((await http(server, '/metrics', undefined, {}, 'GET')).text)?.[1];
    const until = Date.now() + 5_000;
    while ((await aborted()) !== '2' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(await aborted()).toBe('2');
    expect(logs.filter((l) => /request POST failed/.test(l))).toEqual([]);
    // the server answers on
    expect((await post(server, '?model=load', [1, 2, 3])).status).toBe(200);
  });

  it('WebSocket: a client that sends predict messages and does not read the answers gets no more of them (dropped, counted) and is terminated (slow client or heartbeat)', async () => {
    const server = await modelServer({ maxBufferedBytes: 16 * 1024, slowClientTimeoutMs: 500, predictRequestsPerSecond: 1_000_000, heartbeatMs: 200 });
    server.addModel('load', regression());
    const raw = await rawWebSocket(server);
    raw.socket.pause(); // reads nothing from now on
    const frame = rawFrame(0x1, Buffer.from(JSON.stringify({ type: 'predict', id: 'x', input: [1, 2, 3] })));
    const burst = Buffer.concat(Array.from({ length: 2000 }, () => frame));
    const until = Date.now() + 30_000;
    let dropped = 0;
    while (Date.now() < until && !raw.socket.destroyed) {
      if (raw.socket.writable) raw.socket.write(burst);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const metrics = (await http(server, '/metrics', undefined, {}, 'GET')).text;
      dropped = Number(/^streamgrad_predict_errors_total\{model="load",version="none",code="SG_ERR_RATE_LIMIT"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
      if (dropped > 0 && server.stats.clients === 0) break;
    }
    expect(dropped).toBeGreaterThan(0);
    expect(server.stats.clients).toBe(0);
    expect(server.stats.slowTerminations + server.stats.heartbeatTerminations).toBeGreaterThan(0);
  }, 60_000);
});
