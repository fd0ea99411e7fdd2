import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { jsKernels } from '../../core/kernels-js.ts';
import { artifactFromJSON, type ModelArtifact } from '../../pipeline/model-artifact.ts';
import { createPredictor } from '../../pipeline/predict-record.ts';
import { Rng } from '../../core/rng.ts';
import { pool, runCli, spawnCli } from '../helpers/cli.ts';
import { onCleanup, TestClient } from './helpers.ts';

/** `streamgrad serve --model` and `train --serve`'s /predict: the real command line, spawned, asked over real sockets. */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-predict-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Training a few hundred records then serving takes its time on a loaded machine: `waitFor` waits up to 2 minutes. */
const serveCli = (args: string[], env: Record<string, string> = {}) => spawnCli(work, args, { env, waitMs: 120_000 });

/** Named weather-like records: a regression target `load`, or a class `kind`. */
function writeData(file: string, n: number, seed: number): void {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const temp = rng.uniform(-5, 30), wind = rng.uniform(0, 12), rain = rng.uniform(0, 5);
    const load = 100 + 2 * temp - 3 * wind + rain * rain;
    const kind = rain > 2.5 ? 'rain' : temp > 15 ? 'sun' : 'cloud';
    lines.push(JSON.stringify({ temp, wind, rain, load, kind }));
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

const readIfThere = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const post = async (url: string, body: unknown, type = 'application/json') => {
  const res = await fetch(`${url}/predict`, { method: 'POST', headers: { 'Content-Type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
};

const expected = (artifact: ModelArtifact, record: unknown) => {
  const r = createPredictor(artifact, { kernels: jsKernels })(record);
  if (r.error !== undefined) throw r.error;
  const { y, class: cls, probabilities } = r.prediction;
  return { y: Array.from(y), ...(cls !== undefined && { class: cls }), ...(probabilities !== undefined && { probabilities }) };
};

describe('streamgrad serve --model and train --serve answer /predict', () => {
  it('serve --model FILE --model NAME=FILE: each model by name, through its own preprocessing, exactly as createPredictor; promote with the token; Ctrl-C stops with 0', async () => {
    const data = join(work, 'weather.ndjson');
    writeData(data, 600, 3);
    const trained = await Promise.all([
      runCli(work, ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--normalize', '--normalize-target', '--layers', '3,8:tanh,1:linear', '--seed', '1', '--lr', '0.01', '--save', 'load.json']),
      runCli(work, ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'kind', '--classes', 'cloud,rain,sun', '--normalize', '--missing', 'wind=mean', '--layers', '3,8:relu,3:softmax', '--loss', 'cross_entropy', '--seed', '2', '--save', 'kind.json']),
    ]);
    for (const t of trained) expect(t.code, t.stderr).toBe(0);
    const load = artifactFromJSON(JSON.parse(readFileSync(join(work, 'load.json'), 'utf8')));
    const kind = artifactFromJSON(JSON.parse(readFileSync(join(work, 'kind.json'), 'utf8')));

    const token = 'serve-token-31337';
    const server = serveCli(['serve', '--model', 'load.json', '--model', 'weather=kind.json', '--port', '0'], { STREAMGRAD_TOKEN: token });
    const url = (await server.waitFor(/predictions at (http:\/\/127\.0\.0\.1:\d+)\/predict/))[1];
    expect(server.stderr).toMatch(/model load \(load\.json\): 3 inputs; features temp, wind, rain/);
    expect(server.stderr).toMatch(/model weather \(kind\.json\): .*classes cloud, rain, sun/);
    const record = { temp: 21, wind: 3, rain: 0.5 };
    const a = await fetch(`${url}/predict?model=load`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) });
    expect(a.status).toBe(200);
    const answer = await a.json() as Record<string, unknown>;
    expect(answer).toMatchObject({ model: 'load', version: 1, prediction: expected(load, record) });
    const b = await (await fetch(`${url}/predict?model=weather`, { method: 'POST', headers: { 'Content-Type': 'application/x-ndjson' }, body: `${JSON.stringify(record)}\n{"temp":2,"rain":4}\n` })).text();
    const lines = b.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.slice(1)).toEqual([expected(kind, record), expected(kind, { temp: 2, rain: 4 })]);
    // two models: a request must name one
    expect((await post(url, record)).status).toBe(404);

    const ws = new WebSocket(url.replace('http', 'ws') + '/ws', { headers: { Authorization: `Bearer ${token}` } });
    const c = new TestClient(ws);
    onCleanup(() => ws.terminate());
    await c.next('hello');
    expect(await c.command({ type: 'promote', id: 'p', model: 'weather', version: 1 })).toMatchObject({ type: 'ack', result: { label: 'stable', version: 1 } });
    const stable = await (await fetch(`${url}/predict?model=weather&version=stable`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) })).json() as Record<string, unknown>;
    expect(stable).toMatchObject({ model: 'weather', version: 1, prediction: expected(kind, record) });
    server.child.kill('SIGINT');
    expect(await server.exit).toBe(0);
  }, 240_000);

  it('serve --watch: a model file written again is a new version (the old one still answers when pinned); a broken file is reported and changes nothing', async () => {
    const data = join(work, 'watch.ndjson');
    writeData(data, 300, 4);
    const t = await runCli(work, ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--normalize', '--layers', '3,4:tanh,1:linear', '--seed', '3', '--save', 'watched.json']);
    expect(t.code, t.stderr).toBe(0);
    const file = join(work, 'watched.json');
    const first = artifactFromJSON(JSON.parse(readFileSync(file, 'utf8')));
    const server = serveCli(['serve', '--model', 'watched.json', '--port', '0', '--watch']);
    const url = (await server.waitFor(/predictions at (http:\/\/127\.0\.0\.1:\d+)\/predict/))[1];
    const record = { temp: 10, wind: 1, rain: 2 };
    const ask = async (query = '') => (await fetch(`${url}/predict${query}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) })).json() as Promise<Record<string, unknown>>;
    expect(await ask()).toMatchObject({ model: 'watched', version: 1, prediction: expected(first, record) });
    // written again (atomically, as streamgrad writes models): new weights
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { layers: { bias: number[] }[] };
    doc.layers[1].bias[0] += 0.5;
    writeFileSync(`${file}.tmp`, JSON.stringify(doc));
    renameSync(`${file}.tmp`, file);
    await server.waitFor(/model watched: version 2 from watched\.json/);
    const second = artifactFromJSON(doc);
    expect(await ask()).toMatchObject({ version: 2, prediction: expected(second, record) });
    expect(await ask('?version=1')).toMatchObject({ version: 1, prediction: expected(first, record) });
    writeFileSync(file, '{"format": "streamgrad/model@1", "inputSize": 3');
    await server.waitFor(/model watched: watched\.json changed but cannot be served/);
    expect(await ask()).toMatchObject({ version: 2, prediction: expected(second, record) });
    server.child.kill('SIGINT');
    expect(await server.exit).toBe(0);
  }, 240_000);

  it('serve --watch: a saved model\'s version numbers are never given twice across a kill -9 (FILE.versions.json), labels or not', async () => {
    // before: without labels nothing was kept, so after a restart the file's new weights were
    // version 1 again, and a caller pinned to 1 got other weights under it
    const data = join(work, 'numbers-saved.ndjson');
    writeData(data, 300, 6);
    const t = await runCli(work, ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--layers', '3,4:tanh,1:linear', '--seed', '6', '--save', 'numbered.json']);
    expect(t.code, t.stderr).toBe(0);
    const file = join(work, 'numbered.json');
    const record = { temp: 12, wind: 4, rain: 1 };
    const start = async () => {
      const server = serveCli(['serve', '--model', 'numbered.json', '--port', '0', '--watch']);
      const url = (await server.waitFor(/predictions at (http:\/\/127\.0\.0\.1:\d+)\/predict/))[1];
      const ask = async () => (await fetch(`${url}/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) })).json() as Promise<{ version: number }>;
      return { server, ask };
    };
    const before = await start();
    expect((await before.ask()).version).toBe(1);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { layers: { bias: number[] }[] };
    doc.layers[1].bias[0] -= 0.5;
    writeFileSync(`${file}.tmp`, JSON.stringify(doc));
    renameSync(`${file}.tmp`, file);
    await before.server.waitFor(/model numbered: version 2 from numbered\.json/);
    before.server.child.kill('SIGKILL');
    await before.server.exit;
    expect(JSON.parse(readFileSync(`${file}.versions.json`, 'utf8'))).toMatchObject({ reserved: 1000 });

    const after = await start();
    expect((await after.ask()).version).toBe(1001);
    after.server.child.kill('SIGINT');
    expect(await after.server.exit).toBe(0);
    // a damaged reservation is refused, naming it
    writeFileSync(`${file}.versions.json`, 'garbage');
    const refused = await runCli(work, ['serve', '--model', 'numbered.json', '--port', '0']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--model .*numbered\.json: .*numbered\.json\.versions\.json: not a reservation of version numbers/);
  }, 240_000);

  it('serve: labels outlive a kill -9 (FILE.labels.json): after the restart stable is the same version, meta and weights, latest goes on from there, and the hello lists the models', async () => {
    const data = join(work, 'labels.ndjson');
    writeData(data, 300, 5);
    const t = await runCli(work, ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--normalize', '--layers', '3,4:tanh,1:linear', '--seed', '4', '--save', 'labelled.json']);
    expect(t.code, t.stderr).toBe(0);
    const file = join(work, 'labelled.json');
    const first = artifactFromJSON(JSON.parse(readFileSync(file, 'utf8')));
    const token = 'labels-token-4242';
    const record = { temp: 12, wind: 4, rain: 1 };
    const start = async () => {
      const server = serveCli(['serve', '--model', 'labelled.json', '--port', '0', '--watch'], { STREAMGRAD_TOKEN: token });
      const url = (await server.waitFor(/predictions at (http:\/\/127\.0\.0\.1:\d+)\/predict/))[1];
      const ask = async (query = '') => (await fetch(`${url}/predict${query}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) })).json() as Promise<Record<string, unknown>>;
      const ws = new WebSocket(url.replace('http', 'ws') + '/ws', { headers: { Authorization: `Bearer ${token}` } });
      onCleanup(() => ws.terminate());
      const client = new TestClient(ws);
      return { server, url, ask, client, hello: await client.next('hello') };
    };
    const before = await start();
    expect(before.hello.models).toEqual([{ name: 'labelled', kind: 'saved', latest: 1, labels: {} }]);
    // version 2 from the file written again; version 1 (the old weights) is promoted
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { layers: { bias: number[] }[] };
    doc.layers[1].bias[0] -= 0.75;
    writeFileSync(`${file}.tmp`, JSON.stringify(doc));
    renameSync(`${file}.tmp`, file);
    await before.server.waitFor(/model labelled: version 2 from labelled\.json/);
    expect(await before.client.command({ type: 'promote', id: 'p1', model: 'labelled', version: 1 })).toMatchObject({ type: 'ack', result: { label: 'stable', version: 1, previous: null } });
    const stable = await before.ask('?version=stable');
    expect(stable).toMatchObject({ version: 1, prediction: expected(first, record) });
    const latest = await before.ask();
    expect(latest).toMatchObject({ version: 2, prediction: expected(artifactFromJSON(doc), record) });
    const labelsFile = `${file}.labels.json`;
    const deadline = Date.now() + 30_000;
    while (!(readIfThere(labelsFile) ?? '').includes('"stable"')) {
      if (Date.now() > deadline) throw new Error(`no ${labelsFile}:\n${before.server.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    before.server.child.kill('SIGKILL');
    await before.server.exit;

    const after = await start();
    expect(after.server.stderr).toMatch(/model labelled: labels from .*labelled\.json\.labels\.json: stable version 1; serving version 2/);
    expect(after.hello.models).toEqual([{ name: 'labelled', kind: 'saved', latest: 2, labels: { stable: 1 } }]);
    // bit for bit the answer before the restart: version, step, samples, time and outputs
    expect(await after.ask('?version=stable')).toEqual(stable);
    expect(await after.ask()).toEqual(latest);
    // numbering goes on after the restart past the first process's reserved block (1 to 1000): a new file is 1001, and stable holds
    doc.layers[1].bias[0] += 0.25;
    writeFileSync(`${file}.tmp`, JSON.stringify(doc));
    renameSync(`${file}.tmp`, file);
    await after.server.waitFor(/model labelled: version 1001 from labelled\.json/);
    expect(await after.client.command({ type: 'promote', id: 'p2', model: 'labelled', version: 1001 })).toMatchObject({ type: 'ack', result: { version: 1001, previous: 1 } });
    expect(await after.client.command({ type: 'rollback', id: 'r1', model: 'labelled' })).toMatchObject({ type: 'ack', result: { version: 1, from: 1001 } });
    expect(await after.ask('?version=stable')).toEqual(stable);
    after.server.child.kill('SIGINT');
    expect(await after.server.exit).toBe(0);
    // a damaged labels file is refused, naming it (serving stable from the wrong weights must not start silently)
    writeFileSync(labelsFile, '{"format":"streamgrad/version-labels@1","next":1');
    const refused = await runCli(work, ['serve', '--model', 'labelled.json', '--port', '0']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/labelled\.json\.labels\.json: not JSON/);
  }, 240_000);

  it('serve --state DIR: labels go to DIR/NAME.labels.json (nothing beside the model file) and are read back from there; a first start takes the model folder\'s; a DIR that is a file is refused (exit 2)', async () => {
    const data = join(work, 'state.ndjson');
    writeData(data, 200, 6);
    mkdirSync(join(work, 'models-ro'));
    const t = await runCli(work, ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--layers', '3,4:tanh,1:linear', '--seed', '6', '--save', 'models-ro/stateful.json']);
    expect(t.code, t.stderr).toBe(0);
    const token = 'state-token-31';
    const start = async (state: string) => {
      const server = serveCli(['serve', '--model', 'models-ro/stateful.json', '--port', '0', '--state', state], { STREAMGRAD_TOKEN: token });
      const url = (await server.waitFor(/predictions at (http:\/\/127\.0\.0\.1:\d+)\/predict/))[1];
      const ws = new WebSocket(url.replace('http', 'ws') + '/ws', { headers: { Authorization: `Bearer ${token}` } });
      onCleanup(() => ws.terminate());
      const client = new TestClient(ws);
      return { server, client, hello: await client.next('hello') };
    };
    const waitForFile = async (path: string, server: { stderr: string }) => {
      const deadline = Date.now() + 30_000;
      while (!(readIfThere(path) ?? '').includes('"stable"')) {
        if (Date.now() > deadline) throw new Error(`no ${path}:\n${server.stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const first = await start('state/serve');
    expect(first.hello.models).toEqual([{ name: 'stateful', kind: 'saved', latest: 1, labels: {} }]);
    expect(await first.client.command({ type: 'promote', id: 'p1', model: 'stateful', version: 1 })).toMatchObject({ type: 'ack', result: { label: 'stable', version: 1 } });
    const inState = join(work, 'state/serve/stateful.labels.json');
    await waitForFile(inState, first.server);
    first.server.child.kill('SIGINT');
    expect(await first.server.exit).toBe(0);
    expect(readdirSync(join(work, 'models-ro'))).toEqual(['stateful.json']);

    const again = await start('state/serve');
    expect(again.server.stderr).toMatch(/model stateful: labels from state\/serve\/stateful\.labels\.json: stable version 1; serving version 1/);
    expect(again.hello.models).toEqual([{ name: 'stateful', kind: 'saved', latest: 1, labels: { stable: 1 } }]);
    again.server.child.kill('SIGINT');
    expect(await again.server.exit).toBe(0);

    // a model folder that comes with its labels: a new state folder starts from them, and keeps its own
    renameSync(inState, join(work, 'models-ro/stateful.json.labels.json'));
    const moved = await start('state/other');
    expect(moved.server.stderr).toMatch(/model stateful: labels from state\/other\/stateful\.labels\.json: stable version 1/);
    expect(moved.hello.models).toEqual([{ name: 'stateful', kind: 'saved', latest: 1, labels: { stable: 1 } }]);
    expect(await moved.client.command({ type: 'promote', id: 'p2', model: 'stateful', version: 1, label: 'canary' })).toMatchObject({ type: 'ack', result: { label: 'canary', version: 1 } });
    const otherState = join(work, 'state/other/stateful.labels.json');
    const deadline = Date.now() + 30_000;
    while (!(readIfThere(otherState) ?? '').includes('"canary"')) {
      if (Date.now() > deadline) throw new Error(`no ${otherState}:\n${moved.server.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    moved.server.child.kill('SIGINT');
    expect(await moved.server.exit).toBe(0);
    expect(JSON.parse(readFileSync(join(work, 'models-ro/stateful.json.labels.json'), 'utf8'))).not.toHaveProperty('labels.canary');

    const refused = await runCli(work, ['serve', '--model', 'models-ro/stateful.json', '--port', '0', '--state', 'state.ndjson']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--state state\.ndjson: not a folder/);
  }, 240_000);

  it('serve: bad options and model files are usage errors naming them (exit 2)', async () => {
    writeFileSync(join(work, 'broken.json'), '{"format": "streamgrad/model@1"');
    const cases: [string[], RegExp][] = [
      [['serve'], /--model: required/],
      [['serve', '--model', 'missing.json'], /--model missing\.json/],
      [['serve', '--model', 'broken.json'], /broken\.json/],
      [['serve', '--model', 'a=x.json', '--model', 'a=y.json'], /two models are named "a"/],
      [['serve', '--model', 'x.json', '--port', '99999'], /--port: must be a port number/],
      [['serve', '--model', 'x.json', '--rate', '0'], /--rate: must be an integer ≥ 1/],
      // a size option has a documented bound (docs/cli.md): a JSON body is held and parsed whole
      [['serve', '--model', 'x.json', '--max-body-bytes', '99999999999'], /--max-body-bytes: must be at most 268435456/],
    ];
    const runs = await pool(cases.map(([args]) => () => runCli(work, args)));
    cases.forEach(([args, pattern], i) => {
      expect([args.join(' '), runs[i].code]).toEqual([args.join(' '), 2]);
      expect(runs[i].stderr).toMatch(pattern);
    });
  }, 240_000);

  it('train --serve --checkpoint-dir: a promoted version outlives a kill -9; after --resume stable is the same version, meta and weights (not the checkpoint\'s)', async () => {
    const data = join(work, 'resumed.ndjson');
    writeData(data, 200_000, 11);
    const token = 'resume-token-777';
    const args = ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--normalize', '--layers', '3,16:tanh,1:linear', '--seed', '5', '--lr', '0.001', '--checkpoint-dir', 'ck-labels', '--checkpoint-interval', '3600', '--serve', '0'];
    const record = { temp: 3, wind: 7, rain: 2 };
    const start = async (extra: string[]) => {
      const run = serveCli([...args, ...extra], { STREAMGRAD_TOKEN: token });
      const url = (await run.waitFor(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//))[1];
      const ask = async (query = '') => (await fetch(`${url}/predict?model=train${query === '' ? '' : `&${query}`}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) })).json() as Promise<Record<string, unknown>>;
      const ws = new WebSocket(url.replace('http', 'ws') + '/ws', { headers: { Authorization: `Bearer ${token}` } });
      onCleanup(() => ws.terminate());
      const client = new TestClient(ws);
      return { run, url, ask, client, hello: await client.next('hello') };
    };
    const before = await start([]);
    // a version taken while training: its weights are neither the first nor the last
    let now = await before.ask();
    while ((now.step as number) === 0) now = await before.ask();
    const promoted = await before.client.command({ type: 'promote', id: 'p', model: 'train', version: now.version as number });
    expect(promoted).toMatchObject({ type: 'ack', result: { label: 'stable', version: now.version } });
    const stable = await before.ask('version=stable');
    expect(stable).toEqual(now);
    // the label change asks for a checkpoint of the run: wait until one holds it, then kill -9
    const dir = join(work, 'ck-labels');
    const deadline = Date.now() + 60_000;
    const holding = () => readdirSync(dir).filter((f) => f.endsWith('.sgck')).some((f) => readFileSync(join(dir, f)).includes('"stable":['));
    while (!holding()) {
      if (Date.now() > deadline) throw new Error(`no checkpoint with the label:\n${before.run.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    before.run.child.kill('SIGKILL');
    await before.run.exit;

    const after = await start(['--resume']);
    expect(after.run.stderr).toMatch(/resuming from/);
    expect(after.hello.models).toEqual([expect.objectContaining({ name: 'train', kind: 'run', labels: { stable: now.version } })]);
    expect(await after.ask('version=stable')).toEqual(stable);
    // the checkpoint's weights are later ones: stable is not them
    const latest = await after.ask();
    expect(latest.step as number).toBeGreaterThan(now.step as number);
    expect(latest.version as number).toBeGreaterThan(now.version as number);
    after.run.child.kill('SIGKILL');
    await after.run.exit;
  }, 240_000);

  it('train --serve --checkpoint-dir: a version number is never given twice across a kill -9: after --resume, versions are numbered past every one given before', async () => {
    // before: with no label, a resumed run numbered its versions from 1 again (with one, from the
    // count its checkpoint held when the label was set), so a number pinned before the crash
    // answered with other weights after it
    const data = join(work, 'numbers.ndjson');
    writeData(data, 20_000, 13);
    const args = ['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--normalize', '--layers', '3,8:tanh,1:linear', '--seed', '3', '--checkpoint-dir', 'ck-numbers', '--checkpoint-every', '100', '--serve', '0'];
    const ask = async (url: string) => (await (await fetch(`${url}/predict?model=train`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ temp: 3, wind: 7, rain: 2 }) })).json()) as { version: number; step: number };
    const before = serveCli(args);
    const url = (await before.waitFor(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//))[1];
    const seen = [await ask(url)];
    while (!/training done/.test(before.stderr)) {
      seen.push(await ask(url));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    seen.push(await ask(url));
    const highest = Math.max(...seen.map((s) => s.version));
    expect(highest).toBeGreaterThan(1);
    before.child.kill('SIGKILL');
    await before.exit;
    const reservation = JSON.parse(readFileSync(join(work, 'ck-numbers', 'train.versions.json'), 'utf8')) as { reserved: number };
    expect(reservation.reserved).toBeGreaterThanOrEqual(highest);

    const after = serveCli([...args, '--resume']);
    const again = (await after.waitFor(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//))[1];
    expect(after.stderr).toMatch(/resuming from/);
    const resumed = await ask(again);
    expect(resumed.version).toBeGreaterThan(reservation.reserved);
    after.child.kill('SIGINT');
    expect(await after.exit).toBe(0);
  }, 240_000);

  it('train --serve: /predict answers while the run trains (versions move on), through the run\'s preprocessing; at the end the latest version is exactly the saved model', async () => {
    const data = join(work, 'long.ndjson');
    writeData(data, 60_000, 9);
    const run = serveCli(['train', '--data', data, '--features', 'temp,wind,rain', '--targets', 'load', '--normalize', '--normalize-target', '--layers', '3,16:tanh,1:linear', '--seed', '1', '--lr', '0.001', '--save', 'live.json', '--serve', '0']);
    const url = (await run.waitFor(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//))[1];
    const record = { temp: 21, wind: 3, rain: 0.5 };
    const seen: { version: number; step: number; prediction: { y: number[] } }[] = [];
    const deadline = Date.now() + 180_000;
    while (!/training done/.test(run.stderr)) {
      if (Date.now() > deadline) throw new Error(`training did not end:\n${run.stderr}`);
      const r = await fetch(`${url}/predict?model=train`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) });
      expect(r.status).toBe(200);
      seen.push(await r.json() as (typeof seen)[number]);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const during = seen.filter((s) => s.step > 0);
    expect(during.length).toBeGreaterThan(1);
    expect(new Set(during.map((s) => s.version)).size).toBeGreaterThan(1);
    for (let i = 1; i < seen.length; i++) expect(seen[i].version).toBeGreaterThanOrEqual(seen[i - 1].version);
    // in the target's units (about 100 + 2·21 − 9 + 0.25 ≈ 133), not z-units
    expect(Math.abs(during[during.length - 1].prediction.y[0])).toBeGreaterThan(20);

    const saved = artifactFromJSON(JSON.parse(readFileSync(join(work, 'live.json'), 'utf8')));
    const last = await (await fetch(`${url}/predict?model=train`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(record) })).json() as Record<string, unknown>;
    expect(last).toMatchObject({ model: 'train', step: 60_000, samples: 60_000, prediction: expected(saved, record) });
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(0);
  }, 240_000);
});
