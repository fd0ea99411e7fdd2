import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { pipe, tap } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDeadLetters } from '../../pipeline/dead-letter-file.ts';
import type { DeadLetter } from '../../core/dead-letter.ts';
import { FeatureMap } from '../../core/features.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { createIngestCounters, ingestStats } from '../../core/record.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import type { Sample } from '../../core/sample.ts';
import { createTrainer } from '../../core/trainer.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { findMosquitto, mosquittoForThisFile } from '../helpers/mosquitto.ts';
import { seededModel } from '../helpers/streams.ts';

const binary = findMosquitto({ requiredInCi: true });

/** Message i: a valid named sample, or (every 7th, in turn) one of the ways a sensor message goes wrong. */
function message(i: number): { payload: Buffer; bad?: string } {
  const good = { id: i, s: i / 10_000, t: 0.5, y: Math.sin(i) };
  if (i % 7 !== 3) return { payload: Buffer.from(JSON.stringify(good)) };
  const kinds: [string, string | Buffer][] = [
    ['SG_ERR_BAD_JSON', `{"id":${i},"s":`],
    ['SG_ERR_NONFINITE_INPUT', `{"id":${i},"s":1e309,"t":0.5,"y":1}`],
    ['SG_ERR_TYPE', JSON.stringify({ ...good, t: '0.5' })],
    ['SG_ERR_MISSING', JSON.stringify({ id: i, s: good.s, y: 1 })],
    ['SG_ERR_MISSING', `{"id":${i},"__proto__":{"t":1},"s":0.1,"y":1}`],
    ['SG_ERR_TYPE', JSON.stringify([good.s, good.t, good.y])],
    ['SG_ERR_BAD_JSON', Buffer.from([0x7b, 0xc3, 0x28, 0x7d])],
  ];
  const [code, payload] = kinds[Math.floor(i / 7) % kinds.length];
  return { payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), bad: code };
}

describe.skipIf(binary === null)('MQTT source against a real Mosquitto broker', () => {
  const broker = mosquittoForThisFile();
  const dir = mkdtempSync(join(tmpdir(), 'sg-mqtt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('10,000 QoS 1 messages, some malformed: every valid sample is trained on exactly once, every bad one is a dead letter with its reason', async () => {
    const N = 10_000;
    const source = await MqttSource.connect({ url: broker.url, topics: 'lab/+/kinetics', qos: 1, queue: { capacity: 256, policy: 'block' } });
    const trainer = createTrainer({ model: seededModel(2, [[8, 'tanh'], [1, 'linear']], 3), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
    const features = new FeatureMap({ features: ['s', 't'], targets: ['y'] });
    const deadPath = join(dir, 'dead.ndjson');
    const deadLetters = FileDeadLetters.open(deadPath);
    const counters = createIngestCounters();
    const trained = new Map<number, number>();
    const run = new TrainingRun({
      id: 'mqtt',
      trainer,
      source,
      prepare: pipe(ingest({ trainer, features, deadLetters, counters }), tap((s: Sample) => {
        const id = Math.round(s.x[0] * 10_000);
        trained.set(id, (trained.get(id) ?? 0) + 1);
      })),
      ingest: ingestStats(counters, () => source.queue.dropped),
    });
    const done = run.start();

    const publisher = await connectAsync(broker.url);
    const expectedBad = new Map<string, string>();
    const valid = new Set<number>();
    for (let start = 0; start < N; start += 500) {
      const sends: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(N, start + 500); i++) {
        const { payload, bad } = message(i);
        if (bad === undefined) valid.add(i);
        else expectedBad.set(bad === 'SG_ERR_BAD_JSON' && payload[1] === 0xc3 ? payload.toString('base64') : payload.toString('utf8'), bad);
        sends.push(publisher.publishAsync(`lab/s${i % 4}/kinetics`, payload, { qos: 1 }));
      }
      await Promise.all(sends);
    }
    await publisher.endAsync();
    const started = Date.now();
    while (counters.read < N && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 10));
    await source.close();
    await done;
    await deadLetters.close();

    expect(source.received).toBe(N);
    expect(counters.read).toBe(N);
    expect(run.ingest).toMatchObject({ read: N, accepted: valid.size, rejected: N - valid.size, dropped: 0 });
    // every valid sample trained exactly once
    expect(trainer.counters.samples).toBe(valid.size);
    expect(trained.size).toBe(valid.size);
    for (const id of valid) expect(trained.get(id)).toBe(1);
    // every bad one in the dead-letter file with its reason, topic and message id
    const letters = readFileSync(deadPath, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as DeadLetter);
    expect(letters).toHaveLength(N - valid.size);
    const seen = new Map(letters.map((l) => [l.raw!, l]));
    for (const [raw, code] of expectedBad) {
      const letter = seen.get(raw);
      expect(letter, raw).toBeDefined();
      expect(letter!.code).toBe(code);
      expect(letter!.topic).toMatch(/^lab\/s[0-3]\/kinetics$/);
      expect(letter!.messageId).toMatch(/^lab\/s[0-3]\/kinetics#\d+$/);
    }
    expect(new Set(letters.map((l) => l.messageId)).size).toBe(letters.length);
    expect(features.unknownNames).toEqual(new Set(['id']));
    expect(Array.from(trainer.model.params).every(Number.isFinite)).toBe(true);
  });

  it('drop-oldest on a burst bigger than the queue: drops are counted, never silent', async () => {
    const source = await MqttSource.connect({ url: broker.url, topics: 'burst', qos: 1, queue: { capacity: 10, policy: 'drop-oldest' } });
    const publisher = await connectAsync(broker.url);
    await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publishAsync('burst', JSON.stringify({ x: [i], y: [i] }), { qos: 1 })));
    await publisher.endAsync();
    const started = Date.now();
    while (source.received < 200 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 10));
    expect(source.stats).toMatchObject({ received: 200, size: 10, dropped: 190 });
    await source.close();
    const left: unknown[] = [];
    for await (const record of source) left.push(record.value);
    expect(left).toEqual(Array.from({ length: 10 }, (_, k) => ({ x: [190 + k], y: [190 + k] })));
  });

  it('fails with SG_ERR_SOURCE when the broker cannot be reached', async () => {
    await expect(MqttSource.connect({ url: 'mqtt://127.0.0.1:1', topics: 'x', client: { connectTimeout: 500, reconnectPeriod: 0 } })).rejects.toMatchObject({ code: 'SG_ERR_SOURCE' });
  });

  it('fails with SG_ERR_SOURCE, not a connect that never settles, when the broker closes the connection before its CONNACK or never answers', async () => {
    // before: on a hang-up mqtt.js reconnected every reconnectPeriod for ever, and connect() never settled
    const peers = new Set<Socket>();
    const server = createServer((socket) => {
      peers.add(socket);
      socket.on('error', () => undefined);
      socket.once('data', () => (closeAtOnce ? socket.destroy() : undefined)); // the CONNECT: hang up, or say nothing
    });
    let closeAtOnce = true;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const close of [true, false]) {
        closeAtOnce = close;
        const started = Date.now();
        await expect(MqttSource.connect({ url, topics: 'x', persistentSession: false, client: { connectTimeout: 1000, reconnectPeriod: 100 } })).rejects.toMatchObject({ code: 'SG_ERR_SOURCE', message: expect.stringMatching(close ? /closed before the broker answered CONNECT/ : /connack timeout/) });
        expect(Date.now() - started).toBeLessThan(5000);
      }
    } finally {
      for (const socket of peers) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
