import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { BIN, pool, runCli } from '../helpers/cli.ts';
import { handshakeAt, onCleanup } from '../server/helpers.ts';

/**
 * `--labels ingest` (issue 12): the features come from --data, their labels later to the
 * live server's `/ingest` WebSocket, with the token and Origin rules `/ingest` has. The real
 * command line, spawned, and real WebSockets on 127.0.0.1.
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-ingest-labels-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const TOKEN = 'ingest-labels-token-5150';


describe('train --labels ingest', () => {
  it('joins labels sent to /ingest (labels messages and plain records) with the features of --data, trains on them, counts duplicates and unknown ids, and ends when no features wait', async () => {
    const n = 300;
    const features = Array.from({ length: n }, (_, i) => JSON.stringify({ id: `s${i}`, a: (i % 17) / 4, b: (i % 5) - 2 }));
    writeFileSync(join(work, 'features.ndjson'), `${features.join('\n')}\n`);
    const child = spawn(process.execPath, [BIN, 'train', '--data', 'features.ndjson', '--labels', 'ingest', '--id-field', 'id', '--features', 'a,b', '--targets', 'y',
      '--layers', '2,4:tanh,1:linear', '--seed', '2', '--serve', '0', '--dead-letter', 'rejected.ndjson'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: TOKEN, PORT: '' } });
    onCleanup(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const waitFor = async (pattern: RegExp, ms = 60_000) => {
      const deadline = Date.now() + ms;
      while (!pattern.test(stderr)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return pattern.exec(stderr)!;
    };
    const url = (await waitFor(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//))[1];
    const ingestUrl = `${url.replace('http', 'ws')}/ingest`;
    const origin = url;
    // the rules /ingest has: a token (Bearer or an auth message), and no foreign Origin even with it
    expect(await handshakeAt(ingestUrl, { Authorization: 'Bearer wrong-token' })).toBe(401);
    expect(await handshakeAt(ingestUrl, { Authorization: `Bearer ${TOKEN}`, Origin: 'https://evil.example' })).toBe(403);
    // the features are all read (they wait for their labels): nothing trains yet
    await new Promise((r) => setTimeout(r, 300));
    expect(stderr).not.toMatch(/training done/);

    // a sensor without headers: its first message is the token
    const ws = new WebSocket(ingestUrl, { headers: { Origin: origin } });
    onCleanup(() => ws.terminate());
    const answers: Record<string, unknown>[] = [];
    ws.on('message', (data) => answers.push(JSON.parse(String(data)) as Record<string, unknown>));
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
    const label = (i: number) => ({ id: `s${i}`, y: Math.sin(i) });
    // labels in another order than the features, in labels messages of 50, the last 50 as plain records, one twice, one unknown
    const order = Array.from({ length: n }, (_, i) => (i * 7) % n);
    for (let k = 0; k < n - 50; k += 50) ws.send(JSON.stringify({ type: 'labels', labels: order.slice(k, k + 50).map(label) }));
    ws.send(JSON.stringify({ type: 'labels', labels: [label(order[0]), { id: 'nobody', y: 1 }] }));
    ws.send(JSON.stringify(order.slice(n - 50).map(label)));
    await waitFor(/training done/);
    const summary = (await waitFor(/labels: .*waiting/))[0];
    expect(summary).toMatch(new RegExp(`labels: ${n} features and ${n + 2} labels in; ${n} joined`));
    expect(summary).toMatch(/1 duplicate labels, 1 unknown ids/);
    expect(answers[0]).toEqual({ type: 'auth-ok' });
    expect(answers.filter((a) => a.type === 'ack').map((a) => a.received)).toEqual([50, 50, 50, 50, 50, 2, 50]);
    // the joined samples trained, the pending map is empty
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain(`streamgrad_labels_total{run="train",kind="joined"} ${n}`);
    expect(metrics).toMatch(new RegExp(`streamgrad_samples_total\\{run="train"\\} ${n}\\b`));
    child.kill('SIGINT');
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
  }, 240_000);

  it('Ctrl-C while features wait for labels that never come: the run stops, what waited is dead-lettered and counted, exit 0', async () => {
    writeFileSync(join(work, 'waiting.ndjson'), '{"id":"a","x":1}\n{"id":"b","x":2}\n');
    const child = spawn(process.execPath, [BIN, 'train', '--data', 'waiting.ndjson', '--labels', 'ingest', '--id-field', 'id', '--features', 'x', '--targets', 'y', '--layers', '1,1:linear', '--serve', '0', '--dead-letter', 'waiting-rejected.ndjson'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: TOKEN, PORT: '' } });
    onCleanup(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const exit = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (!/websocket at/.test(stderr)) {
      if (Date.now() > deadline) throw new Error(stderr);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGINT');
    expect(await exit).toBe(0);
    expect(stderr).toMatch(/labels: 2 features and 0 labels in; 0 joined .*2 expired \(dead-lettered\)/);
  }, 120_000);

  it('refuses --labels ingest without a server, without a token, or with checkpoints of a file source (exit 2, naming the option)', async () => {
    writeFileSync(join(work, 'f.ndjson'), '{"id":"a","x":1}\n');
    const base = ['train', '--data', 'f.ndjson', '--labels', 'ingest', '--id-field', 'id', '--features', 'x', '--targets', 'y', '--layers', '1,1:linear'];
    const cases: [string[], RegExp][] = [
      [[...base, '--token', TOKEN], /--labels: ingest: .*give --serve PORT/],
      [[...base, '--serve', '0'], /--labels: ingest needs a token/],
      [[...base, '--serve', '0', '--token', TOKEN, '--checkpoint-dir', 'ck'], /--labels: ingest with --checkpoint-dir needs live features/],
      [[...base, '--serve', '0', '--token', TOKEN, '--time-field', 't'], /--time-field/],
    ];
    expect(process.env.STREAMGRAD_TOKEN ?? '').toBe('');
    const runs = await pool(cases.map(([args]) => () => runCli(work, args)));
    cases.forEach(([args, pattern], i) => {
      expect([args.join(' '), runs[i].code]).toEqual([args.join(' '), 2]);
      expect(runs[i].stderr).toMatch(pattern);
    });
  }, 120_000);
});

describe('run with labels.ingest', () => {
  it('a stdin source\'s features joined with labels sent to /ingest, for every model of the config; a labels.ingest without a server is refused', async () => {
    const config = {
      source: { stdin: 'ndjson', features: ['a', 'b'], targets: ['y'] },
      labels: { idField: 'id', ingest: true },
      server: { port: 0, token: TOKEN, keepServing: false },
      models: [{ name: 'small', layers: '2,4:tanh,1:linear', seed: 1 }, { name: 'wide', layers: '2,16:tanh,1:linear', seed: 2 }],
    };
    writeFileSync(join(work, 'ingest-labels.json'), JSON.stringify(config));
    writeFileSync(join(work, 'no-server.json'), JSON.stringify({ ...config, server: undefined }));
    const refused = await runCli(work, ['run', 'no-server.json']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/labels\.ingest: needs a server/);

    const child = spawn(process.execPath, [BIN, 'run', 'ingest-labels.json'], { cwd: work, stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: '', PORT: '' } });
    onCleanup(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const exit = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (!/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//.test(stderr)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(stderr);
      await new Promise((r) => setTimeout(r, 20));
    }
    const url = /dashboard at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr)![1];
    const n = 120;
    for (let i = 0; i < n; i++) child.stdin.write(`${JSON.stringify({ id: `r${i}`, a: i % 9, b: (i % 4) / 2 })}\n`);
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ingest`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    onCleanup(() => ws.terminate());
    await once(ws, 'open');
    for (let k = 0; k < n; k += 40) ws.send(JSON.stringify({ type: 'labels', labels: Array.from({ length: 40 }, (_, j) => ({ id: `r${n - 1 - k - j}`, y: (k + j) / n })) }));
    const joined = (model: string) => async () => (await (await fetch(`${url}/metrics`)).text()).includes(`streamgrad_labels_total{run="${model}",kind="joined"} ${n}`);
    for (const model of ['small', 'wide']) {
      const until = Date.now() + 60_000;
      while (!(await joined(model)())) {
        if (Date.now() > until) throw new Error(`${model}: not every label joined\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    child.stdin.end();
    expect(await exit).toBe(0);
    expect(stderr).toMatch(/small: labels: 120 features and 120 labels in; 120 joined/);
    expect(stderr).toMatch(/wide: labels: 120 features and 120 labels in; 120 joined/);
  }, 240_000);
});
