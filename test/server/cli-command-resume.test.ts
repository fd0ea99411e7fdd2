import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Rng } from '../../core/rng.ts';
import { runCli, spawnCli } from '../helpers/cli.ts';
import { onCleanup, TestClient } from './helpers.ts';

/** A local run's applied command ids across a kill -9 and `--resume`: the real command line, spawned, steered over a real WebSocket. */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-cli-command-resume-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const token = 'command-resume-token-42';

/** Records enough that the run never ends within the test: x → y. */
function writeData(file: string, n: number): void {
  const rng = new Rng(21);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = rng.uniform(-1, 1), b = rng.uniform(-1, 1);
    lines.push(JSON.stringify({ a, b, y: Math.sin(a) + 0.5 * b }));
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** The command line with `args`, once it serves, and a client with the token on its WebSocket (`predict`: the run's answer for one record). */
async function serving(args: string[]) {
  const run = spawnCli(work, args, { env: { STREAMGRAD_TOKEN: token }, waitMs: 120_000 });
  const url = (await run.waitFor(/dashboard at (http:\/\/127\.0\.0\.1:\d+)\//))[1];
  const ws = new WebSocket(url.replace('http', 'ws') + '/ws', { headers: { Authorization: `Bearer ${token}` } });
  onCleanup(() => ws.terminate());
  const client = new TestClient(ws);
  await client.next('hello');
  const predict = async () => (await (await fetch(`${url}/predict?model=train`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ a: 0.3, b: -0.2 }) })).json()) as { y: number[]; step: number };
  return { run, client, predict };
}

/** The step a `pause`, `step` or `reset` ack says the run is at. */
const stepOf = (ack: unknown) => ((ack as { result: { step: number } }).result.step);

describe('train --serve --checkpoint-dir: command ids outlive a kill -9', () => {
  it('an id applied before the checkpoint the run resumes from is acked duplicate: true with its first result after --resume, and not applied again; one applied after it is applied again; a malformed commands section is refused (exit 2) naming the entry', async () => {
    // before: the resumed server had forgotten every id, so a resent `reset` (no ack came
    // before the crash) reset the resumed model once more
    const data = join(work, 'data.ndjson');
    writeData(data, 300_000);
    const args = ['train', '--data', data, '--features', 'a,b', '--targets', 'y', '--layers', '2,8:tanh,1:linear', '--seed', '4', '--checkpoint-dir', 'ck', '--checkpoint-interval', '3600', '--serve', '0'];
    const start = (extra: string[]) => serving([...args, ...extra]);

    const before = await start([]);
    // paused, so that what each command did is read from its ack alone
    const paused = await before.client.command({ type: 'pause', id: 'pause-1', run: 'train' });
    expect(paused).toMatchObject({ type: 'ack', duplicate: false });
    const reset = await before.client.command({ type: 'reset', id: 'reset-1', run: 'train' });
    expect(reset).toMatchObject({ type: 'ack', duplicate: false });
    for (let i = 0; i < 3; i++) expect(await before.client.command({ type: 'step', id: `step-${i}`, run: 'train' })).toMatchObject({ type: 'ack' });
    const lr = await before.client.command({ type: 'setLearningRate', id: 'lr-1', run: 'train', learningRate: 0.0123 });
    expect(lr).toMatchObject({ type: 'ack', result: { learningRate: 0.0123 } });
    // the checkpoint holds reset-1, the steps and lr-1 with their effects; lr-2 comes after it
    expect(await before.client.command({ type: 'checkpoint', id: 'ck-1', run: 'train' })).toMatchObject({ type: 'ack' });
    expect(await before.client.command({ type: 'setLearningRate', id: 'lr-2', run: 'train', learningRate: 0.0456 })).toMatchObject({ type: 'ack', duplicate: false });
    before.run.child.kill('SIGKILL');
    await before.run.exit;

    const after = await start(['--resume']);
    expect(after.run.stderr).toMatch(/resuming from/);
    const held = await after.client.command({ type: 'pause', id: 'pause-2', run: 'train' });
    expect(held).toMatchObject({ type: 'ack', duplicate: false });
    const at = stepOf(held);
    expect(at).toBeGreaterThan(0);
    const weights = await after.predict();
    // the client got no ack for reset-1 (as far as it knows) and resends it: answered as the first time, nothing reset
    const again = await after.client.command({ type: 'reset', id: 'reset-1', run: 'train' });
    expect(again).toMatchObject({ type: 'ack', command: 'reset', duplicate: true, result: (reset as { result: unknown }).result });
    expect(await after.client.command({ type: 'step', id: 'step-2', run: 'train' })).toMatchObject({ type: 'ack', duplicate: true });
    const still = await after.client.command({ type: 'pause', id: 'pause-3', run: 'train' });
    expect(stepOf(still)).toBe(at);
    // a reset puts the weights back to where they started: they are the ones the pause held
    expect(await after.predict()).toEqual(weights);
    expect(await after.client.command({ type: 'setLearningRate', id: 'lr-1', run: 'train', learningRate: 0.0123 })).toMatchObject({ type: 'ack', duplicate: true });
    // lr-2 was applied after the checkpoint: lost with its effect (the rate is lr-1's), so applied again
    expect(await after.client.command({ type: 'setLearningRate', id: 'lr-2', run: 'train', learningRate: 0.0456 })).toMatchObject({ type: 'ack', duplicate: false, result: { learningRate: 0.0456 } });
    after.run.child.kill('SIGKILL');
    await after.run.exit;

    // the newest checkpoint with a section nobody wrote (a field renamed, the checksum made
    // good): refused, naming the entry, rather than resumed with a memory of other commands
    const dir = join(work, 'ck');
    const newest = join(dir, readdirSync(dir).filter((f) => f.endsWith('.sgck')).sort().at(-1)!);
    const bytes = readFileSync(newest);
    const body = bytes.subarray(0, bytes.length - 32);
    const field = body.indexOf('"result":', body.indexOf('"commands":[{'));
    expect(field).toBeGreaterThan(0);
    body.write('"resulx":', field, 'latin1');
    writeFileSync(newest, Buffer.concat([body, createHash('sha256').update(body).digest()]));
    const refused = await runCli(work, [...args, '--resume']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--resume: sections\.commands\[\d+\]: has fields other than key and result: resulx/);
  }, 240_000);

  it('a checkpoint written at the boundary a `step` command trained to (--checkpoint-every 1) holds that command\'s id too: resent after --resume it is a duplicate, the step not trained twice', async () => {
    // before: the resumed server had forgotten step-1 and trained a second step (that the
    // checkpoint of a commanded step holds its id is test/server/command-checkpoint.test.ts)
    const data = join(work, 'every.ndjson');
    writeData(data, 300_000);
    const args = ['train', '--data', data, '--features', 'a,b', '--targets', 'y', '--layers', '2,8:tanh,1:linear', '--seed', '4', '--checkpoint-dir', 'ck-every', '--checkpoint-every', '1', '--checkpoint-keep', '2', '--serve', '0'];
    const start = (extra: string[]) => serving([...args, ...extra]);
    const before = await start([]);
    const at = stepOf(await before.client.command({ type: 'pause', id: 'pause-1', run: 'train' }));
    const stepped = await before.client.command({ type: 'step', id: 'step-1', run: 'train' });
    expect(stepOf(stepped)).toBe(at + 1);
    // the checkpoint of that boundary, written after the step (paused: the newest there will be)
    const file = join(work, 'ck-every', `train-${String(at + 1).padStart(12, '0')}.sgck`);
    const deadline = Date.now() + 60_000;
    while (!existsSync(file)) {
      if (Date.now() > deadline) throw new Error(`no ${file}:\n${before.run.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    before.run.child.kill('SIGKILL');
    await before.run.exit;

    const after = await start(['--resume']);
    const held = stepOf(await after.client.command({ type: 'pause', id: 'pause-2', run: 'train' }));
    expect(held).toBeGreaterThanOrEqual(at + 1);
    expect(await after.client.command({ type: 'step', id: 'step-1', run: 'train' })).toMatchObject({ type: 'ack', duplicate: true, result: (stepped as { result: unknown }).result });
    expect(stepOf(await after.client.command({ type: 'pause', id: 'pause-3', run: 'train' }))).toBe(held);
    after.run.child.kill('SIGKILL');
    await after.run.exit;
  }, 240_000);
});
