import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { planExperiment } from '../../runtime/experiment-plan.ts';
import { BIN, killWhenTestEnds, runCli } from '../helpers/cli.ts';

/** `streamgrad run` with a `labels` section: the shipped example, a labels file beside a file source, resume, bad sections. */
const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples');
const work = mkdtempSync(join(tmpdir(), 'streamgrad-run-labels-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const write = (name: string, text: string) => (writeFileSync(join(work, name), text), name);
const letters = (name: string) => readFileSync(join(work, name), 'utf8').split('\n').filter(Boolean).map((l) => {
  const { time: _time, ...rest } = JSON.parse(l) as Record<string, unknown>;
  return rest;
});

function lcg(seed: number) {
  let r = seed;
  return () => (r = (r * 16807) % 2147483647) / 2147483647;
}

describe('streamgrad run: delayed labels', () => {
  it('examples/delayed-labels.json runs: every label joined, the lost ones expired and counted, the model learns from late labels', async () => {
    const run = await runCli(work, ['run', join(EXAMPLES, 'delayed-labels.json'), '--log-json']);
    expect(run.code, run.stderr).toBe(0);
    const line = run.stderr.split('\n').find((l) => l.startsWith('streamgrad: delayed: labels:'))!;
    expect(line).toMatch(/^streamgrad: delayed: labels: 20000 features and (\d+) labels in; \1 joined \(0 early, \d+ out of order\); (\d+) expired \(dead-lettered\);.* 0 features and 0 labels waiting$/);
    const [, labels, expired] = /and (\d+) labels in; .*; (\d+) expired/.exec(line)!.map(Number);
    expect(labels + expired).toBe(20_000); // each sample: joined, or its label lost and the features expired
    expect(expired).toBeGreaterThan(100); // 1% lost
    const done = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; labels?: Record<string, Record<string, number>>; models?: { model: string; mae: number }[] }).find((e) => e.event === 'done')!;
    expect(done.labels!.delayed).toMatchObject({ features: 20_000, joined: labels, expired });
    expect(done.models![0].mae).toBeLessThan(0.05); // the rolling MAE of predictions made 100-150 samples before their labels
  });

  it('a labels file beside an NDJSON source, two models racing: each joins on its own, dead letters written once; killed and resumed, the same models', async () => {
    const rnd = lcg(99);
    const f: string[] = [], l: { id: string; ts: number; y: number }[] = [];
    for (let i = 0; i < 12_000; i++) {
      const [a, b] = [rnd(), rnd()];
      f.push(JSON.stringify({ id: `s${i}`, ts: i, a, b }));
      if (i % 97 !== 5) l.push({ id: `s${i}`, ts: i + 10 + rnd() * 30, y: Math.sin(3 * a) + b }); // 10-40 records late; 124 never
      if (i % 503 === 7) l.push({ id: `s${i}`, ts: i + 45, y: 0 }); // a second label (24 of them)
    }
    l.sort((p, q) => p.ts - q.ts);
    write('f.ndjson', `${f.join('\n')}\n`);
    write('l.ndjson', `${l.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const config = (dir: string, checkpoints: boolean) => JSON.stringify({
      source: { ndjson: 'f.ndjson', features: ['a', 'b'], targets: ['y'], deadLetter: `${dir}-dead.ndjson` },
      labels: { ndjson: 'l.ndjson', idField: 'id', timeField: 'ts', timeoutSamples: 100 },
      models: ['small', 'large'].map((name, k) => ({ name, layers: k === 0 ? '2,8:tanh,1:linear' : '2,32:tanh,1:linear', loss: 'mse', optimizer: { type: 'adam', lr: 0.003 }, seed: k, batch: 2, save: `${dir}-${name}.json` })),
      ...(checkpoints && { checkpoints: { dir: `${dir}-ck`, everySteps: 200 } }),
    });
    write('ref.json', config('ref', false));
    const reference = await runCli(work, ['run', 'ref.json']);
    expect(reference.code, reference.stderr).toBe(0);
    for (const name of ['small', 'large']) expect(reference.stderr).toMatch(new RegExp(`${name}: labels: 12000 features and \\d+ labels in; \\d+ joined .*; 124 expired \\(dead-lettered\\); 0 duplicate features, 24 duplicate labels`));
    const dead = letters('ref-dead.ndjson');
    expect(dead.filter((d) => d.code === 'SG_ERR_LABEL_TIMEOUT')).toHaveLength(124); // once, not once per model
    expect(dead.filter((d) => d.code === 'SG_ERR_DUPLICATE_ID')).toHaveLength(24);

    write('killed.json', config('killed', true));
    const ck = join(work, 'killed-ck');
    const newest = () => (existsSync(ck) ? readdirSync(ck).filter((n) => n.endsWith('.sgck')).sort().at(-1) : undefined);
    for (let k = 0; k < 2; k++) {
      const before = newest();
      const signal = await new Promise<NodeJS.Signals | null>((done) => {
        const child = spawn(process.execPath, [BIN, 'run', 'killed.json', '--resume'], { cwd: work, stdio: 'ignore' });
        killWhenTestEnds(child);
        const poll = setInterval(() => {
          const now = newest();
          if (now !== undefined && now !== before) {
            clearInterval(poll);
            setTimeout(() => child.kill('SIGKILL'), 20);
          }
        }, 3);
        child.on('close', (_code, s) => { clearInterval(poll); done(s); });
      });
      expect(signal, `kill ${k}: the run ended by itself first`).toBe('SIGKILL');
    }
    const last = await runCli(work, ['run', 'killed.json', '--resume']);
    expect(last.code, last.stderr).toBe(0);
    expect(last.stderr).toMatch(/resuming from/);
    for (const name of ['small', 'large']) expect(readFileSync(join(work, `killed-${name}.json`), 'utf8')).toBe(readFileSync(join(work, `ref-${name}.json`), 'utf8'));
    const labelLines = (stderr: string) => stderr.split('\n').filter((x) => /: labels: /.test(x));
    expect(labelLines(last.stderr)).toEqual(labelLines(reference.stderr));
    expect(letters('killed-dead.ndjson')).toEqual(dead);
  }, 180_000);

  it('checks the labels section against the source: each problem named by its path', async () => {
    const bad = async (doc: unknown) => {
      const file = write(`bad-${Math.random().toString(36).slice(2)}.json`, JSON.stringify(doc));
      const planned = await planExperiment(join(work, file));
      return planned.ok ? [] : planned.problems.map((p) => `${p.path}: ${p.message}`);
    };
    const models = [{ layers: '2,1:linear', loss: 'mse' }];
    // a stdin source takes labels only at the server's /ingest
    expect(await bad({ source: { stdin: 'ndjson' }, labels: { idField: 'id', delay: 3 }, models })).toEqual(expect.arrayContaining([expect.stringMatching(/^labels\.delay: with a stdin source, give exactly one of: ingest/)]));
    expect(await bad({ source: { stdin: 'ndjson' }, labels: { idField: 'id', ingest: true }, models })).toEqual(expect.arrayContaining([expect.stringMatching(/^labels\.ingest: needs a server/)]));
    expect(await bad({ source: { ndjson: 'f.ndjson' }, labels: { delay: 3, jitter: 2 }, models })).toEqual(expect.arrayContaining([
      expect.stringMatching(/^labels\.delay: with a ndjson source, give exactly one of: ndjson, csv or ingest/),
      expect.stringMatching(/^labels\.jitter: only applies to a simulated source/),
      expect.stringMatching(/^labels\.idField: required/),
    ]));
    // labels on standard input, or at /ingest beside a file, are one stream read once: one model (train --labels -|ingest)
    write('one-reader.ndjson', '{"id": 1, "a": 0, "b": 1}\n');
    const two = [{ name: 'one', layers: '2,1:linear', loss: 'mse' }, { name: 'two', layers: '2,1:linear', loss: 'mse' }];
    const labelled = { ndjson: 'one-reader.ndjson', features: ['a', 'b'], targets: ['y'] };
    expect(await bad({ source: labelled, labels: { idField: 'id', ndjson: '-' }, models: two })).toEqual([expect.stringMatching(/^labels\.ndjson: is one stream of labels, read once: with a file source it takes one model/)]);
    expect(await bad({ source: labelled, labels: { idField: 'id', ingest: true }, server: { port: 0 }, models: two })).toEqual([expect.stringMatching(/^labels\.ingest: is one stream of labels, read once/)]);
    expect(await bad({ source: labelled, labels: { idField: 'id', ndjson: '-' }, models: two.slice(0, 1) })).toEqual([]);
    expect(await bad({ source: { simulated: 'xor', samples: 10 }, labels: { delay: 3, expired: 'default' }, models: [{ layers: '2,1:sigmoid', loss: 'bce' }] })).toEqual([expect.stringMatching(/^labels\.default: required with expired: "default"/)]);
    expect(await bad({ source: { simulated: 'xor', samples: 10 }, labels: { delay: -1, capacity: 0, expired: 'keep' }, models: [{ layers: '2,1:sigmoid', loss: 'bce' }] })).toEqual(expect.arrayContaining([
      expect.stringMatching(/^labels\.delay/), expect.stringMatching(/^labels\.capacity/), expect.stringMatching(/^labels\.expired/),
    ]));
  });
});
