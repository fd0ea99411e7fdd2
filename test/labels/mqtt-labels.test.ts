import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, killWhenTestEnds } from '../helpers/cli.ts';
import { findMosquitto, mosquittoForThisFile } from '../helpers/mosquitto.ts';

const binary = findMosquitto({ requiredInCi: true });

describe.skipIf(binary === null)('delayed labels on MQTT topics, against a real Mosquitto broker', () => {
  const broker = mosquittoForThisFile();
  const dir = mkdtempSync(join(tmpdir(), 'sg-mqtt-labels-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('features on one topic, labels later on another: joined by id, every other case counted and dead-lettered', async () => {
    const child = spawn(process.execPath, [
      BIN, 'train', '--mqtt', broker.url, '--topic', 'plant/features', '--labels-topic', 'plant/labels/+', '--id-field', 'id',
      '--features', 'a,b', '--targets', 'y', '--layers', '2,1:linear', '--lr', '0.05', '--samples', '191',
      '--dead-letter', 'dead.ndjson', '--log-json',
    ], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    killWhenTestEnds(child);
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // subscribed once it starts (the subscription is made before the start event)
    for (let waited = 0; !stdout.includes('"event":"start"'); waited += 20) {
      if (waited > 30_000 || child.exitCode !== null) throw new Error(`the trainer did not start:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const publisher = await connectAsync(broker.url);
    const send = (topic: string, value: unknown) => publisher.publishAsync(topic, JSON.stringify(value), { qos: 1 });
    const y = (i: number) => 0.5 * (i % 10) - 0.1 * (i % 3);
    // one publisher, QoS 1, each publish acknowledged before the next: the broker keeps the order
    await send('plant/labels/line-1', { id: 300, y: y(300) }); // before its features: held
    for (let i = 0; i < 200; i++) await send('plant/features', { id: i, a: (i % 10) / 10, b: (i % 3) / 3 });
    await send('plant/features', { id: 300, a: 0, b: 0 });
    await send('plant/features', { id: 0.5, a: 0, b: 0 }); // an id with a fraction: refused
    const order = Array.from({ length: 200 }, (_, i) => (i * 37) % 200).filter((i) => i % 20 !== 13); // 10 never labelled
    for (const [k, i] of order.entries()) {
      await send(`plant/labels/line-${k % 2}`, { id: i, y: y(i) });
      if (k === 20) await send('plant/labels/line-0', { id: order[3], y: 0 }); // a second label
      if (k === 40) await send('plant/labels/line-1', { id: 999, y: 0 }); // nobody's
      if (k === 60) await publisher.publishAsync('plant/labels/line-1', '{"id": 7, "y":', { qos: 1 }); // not JSON
      if (k === 80) await send('plant/labels/line-0', { id: 12.5, y: 0 }); // an id with a fraction: refused
    }
    await publisher.endAsync();
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000))]);
    if (code === 'timeout') child.kill('SIGKILL');
    expect(code, stderr).toBe(0);
    const done = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; labels?: Record<string, number> }).find((e) => e.event === 'done')!;
    expect(done.labels).toMatchObject({ features: 202, labels: 195, joined: 191, early: 1, expired: 10, duplicateLabels: 1, unknownLabels: 1, invalid: 3, unusableId: 2, unreadable: 1, waiting: 0, holding: 0 });
    expect(done.labels!.outOfOrder).toBeGreaterThan(20); // the labels come in a shuffled order
    const letters = readFileSync(join(dir, 'dead.ndjson'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as { code: string; topic?: string; messageId?: string });
    const byCode: Record<string, number> = {};
    for (const l of letters) byCode[l.code] = (byCode[l.code] ?? 0) + 1;
    expect(byCode).toEqual({ SG_ERR_DUPLICATE_ID: 1, SG_ERR_BAD_JSON: 1, SG_ERR_LABEL_TIMEOUT: 10, SG_ERR_UNKNOWN_ID: 1, SG_ERR_TYPE: 2 });
    expect(letters.filter((l) => l.code === 'SG_ERR_TYPE').map((l) => l.topic)).toEqual(['plant/features', 'plant/labels/line-0']);
    // each letter names the message it was: a label on its topic, expired features on theirs
    expect(letters.find((l) => l.code === 'SG_ERR_UNKNOWN_ID')).toMatchObject({ topic: 'plant/labels/line-1' });
    expect(letters.filter((l) => l.code === 'SG_ERR_LABEL_TIMEOUT').every((l) => l.topic === 'plant/features')).toBe(true);
    expect(stderr).toMatch(/streamgrad: labels: 202 features and 195 labels in; 191 joined/);
    expect(stderr).toMatch(/trained 191 samples/);
  }, 120_000);
});
