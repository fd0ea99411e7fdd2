import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { pipe, tap } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import { FeatureMap } from '../../core/features.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { createIngestCounters, ingestStats } from '../../core/record.ts';
import { type RunEvent, type SourceNotice, TrainingRun } from '../../pipeline/run.ts';
import type { Sample } from '../../core/sample.ts';
import { createTrainer } from '../../core/trainer.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { runCli } from '../helpers/cli.ts';
import { type Broker, findMosquitto, startMosquitto } from '../helpers/mosquitto.ts';
import { seededModel } from '../helpers/streams.ts';

const binary = findMosquitto({ requiredInCi: true });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Message i: a named reading `{id, s, t, y}`, or (every 50th) one that validation rejects. */
const payload = (i: number) => (i % 50 === 7 ? `{"id":${i},"s":"bad","t":0.5,"y":1}` : JSON.stringify({ id: i, s: i / 100_000, t: 0.5, y: Math.sin(i) }));

/** A publisher that loses nothing itself: QoS 1, its own persistent session, mqtt.js keeps what it could not send yet and sends it on reconnection. */
async function publisher(url: string): Promise<MqttClient> {
  const client = await connectAsync(url, { clientId: 'sg-test-publisher', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 }, reconnectPeriod: 100 });
  client.on('error', () => undefined);
  cleanups.push(() => client.endAsync(true));
  return client;
}

/**
 * Publishes messages 0..n-1 at `perSecond`; once half are out, halts the broker for
 * `downMs` while publishing goes on (mqtt.js holds what it cannot send and sends it on
 * reconnection). Resolves when the broker acknowledged every publish.
 *
 * Before the halt it waits for the acks of what it has published: a publisher whose
 * PUBACK is lost in the shutdown publishes again, and the broker delivers that as a
 * second, new message (QoS 1 is at least once from the publisher too, README "MQTT
 * delivery"). That is the publisher's duplicate; this test is about the subscriber's side.
 */
async function publishThroughRestart(broker: Broker, client: MqttClient, n: number, perSecond: number, downMs: number): Promise<void> {
  const acks: Promise<unknown>[] = [];
  let phase: 'up' | 'down' | 'back' = 'up', downAt = 0, restarted: Promise<void> = Promise.resolve();
  const tick = 10, perTick = Math.max(1, Math.round((perSecond * tick) / 1000));
  for (let i = 0; i < n;) {
    const started = performance.now();
    for (let k = 0; k < perTick && i < n; k++, i++) acks.push(client.publishAsync(`lab/s${i % 4}/x`, payload(i), { qos: 1 }));
    if (phase === 'up' && i >= n / 2) {
      await Promise.all(acks);
      await broker.halt();
      phase = 'down';
      downAt = performance.now();
    } else if (phase === 'down' && performance.now() - downAt >= downMs) {
      phase = 'back';
      restarted = broker.start();
    }
    await sleep(Math.max(0, tick - (performance.now() - started)));
  }
  if (phase === 'down') restarted = sleep(downMs).then(() => broker.start());
  await restarted;
  await Promise.all(acks);
}

describe.skipIf(binary === null)('MQTT source across a broker restart (issue 17, case 3)', () => {
  it('4,000 numbered messages at 1,000/s, the broker down for 2 s mid-way: each is trained or rejected exactly once (redelivered copies counted as duplicates), and the outage is reported', async () => {
    const broker = await startMosquitto(binary!, { persistence: true, maxQueued: 0 });
    cleanups.push(() => broker.stop());
    const N = 4000;
    const source = await MqttSource.connect({ url: broker.url, topics: 'lab/+/x', clientId: 'sg-test-trainer', queue: { capacity: 64, policy: 'block' }, client: { reconnectPeriod: 100 } });
    cleanups.push(() => source.close());
    const trainer = createTrainer({ model: seededModel(2, [[4, 'tanh'], [1, 'linear']], 3), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
    const features = new FeatureMap({ features: ['s', 't'], targets: ['y'] });
    const deadLetters = new MemoryDeadLetters();
    const counters = createIngestCounters();
    const trained = new Map<number, number>();
    const run = new TrainingRun({
      id: 'mqtt', trainer, source, notices: source.notices,
      prepare: pipe(ingest({ trainer, features, deadLetters, counters }), tap((s: Sample) => {
        // ~0.8 ms a sample: training is slower than the publisher, so the broker holds a backlog when it goes down
        for (const until = performance.now() + 0.8; performance.now() < until;);
        const id = Math.round(s.x[0] * 100_000);
        trained.set(id, (trained.get(id) ?? 0) + 1);
      })),
      ingest: ingestStats(counters, () => source.queue.dropped),
    });
    const events: RunEvent[] = [];
    run.events.subscribe((e) => events.push(e));
    const done = run.start();

    await publishThroughRestart(broker, await publisher(broker.url), N, 1000, 2000);
    const started = Date.now();
    while (counters.read < N && Date.now() - started < 60_000) await sleep(20);
    await sleep(200); // a late copy would show up here
    await source.close();
    await done;

    const rejected = new Map<number, number>();
    for (const letter of deadLetters.letters) {
      const id = (JSON.parse(letter.raw!) as { id: number }).id;
      rejected.set(id, (rejected.get(id) ?? 0) + 1);
    }
    const missing: number[] = [], twice: number[] = [];
    for (let i = 0; i < N; i++) {
      const times = (trained.get(i) ?? 0) + (rejected.get(i) ?? 0);
      if (times === 0) missing.push(i);
      if (times > 1) twice.push(i);
    }
    expect(missing, `${missing.length} lost`).toEqual([]);
    expect(twice, `${twice.length} taken twice`).toEqual([]);
    expect(counters.read).toBe(N);
    expect(rejected.size).toBe(Array.from({ length: N }, (_, i) => i).filter((i) => i % 50 === 7).length);
    expect(trainer.counters.samples).toBe(N - rejected.size);
    const stats = source.stats;
    expect(stats.received).toBe(N + stats.duplicates);
    expect(stats).toMatchObject({ dropped: 0, disconnects: 1, reconnects: 1, sessionsLost: 0 });
    // the outage is reported: a source event when the broker went and one when it came back
    const notices = events.filter((e) => e.type === 'source').map((e) => e.detail as { kind: string; message: string });
    expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'reconnected']);
    expect(notices[0].message).toMatch(/^mqtt mqtt:\/\/127\.0\.0\.1:\d+: disconnected \(.+\); reconnecting$/);
    expect(notices[1].message).toMatch(/reconnected after \d+ ms, session resumed/);
    console.log(`mqtt restart: ${N} published, ${stats.received} received, ${stats.duplicates} duplicates, queue high-water ${stats.highWater}`);
  }, 120_000);

  it('streamgrad train --mqtt: the outage is a line and a source event; a trainer restarted on the same --checkpoint-dir resumes its session and trains what was published while it was down', async () => {
    const broker = await startMosquitto(binary!, { persistence: true });
    cleanups.push(() => broker.stop());
    const work = mkdtempSync(join(tmpdir(), 'sg-mqtt-cli-'));
    cleanups.push(async () => rmSync(work, { recursive: true, force: true }));
    const client = await publisher(broker.url);
    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++) await client.publishAsync('lab/a', JSON.stringify({ a: i / 1000, b: 1, y: i / 500 }), { qos: 1 });
    };
    const args = ['train', '--mqtt', broker.url, '--topic', 'lab/#', '--features', 'a,b', '--targets', 'y', '--layers', '2,1:linear',
      '--overflow', 'block', '--checkpoint-dir', 'ck', '--log-json', '--status-interval', '0.1'];
    const events = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const trained = (stdout: string) => Math.max(0, ...events(stdout).filter((e) => e.event === 'progress').map((e) => e.samples as number));
    /** Runs the trainer; `script` acts once it has started and returns when the trainer may be stopped (SIGINT). */
    const trainer = (extra: string[], script: (stdout: () => string) => Promise<void>) => {
      let begun = false, out = '';
      return runCli(work, [...args, ...extra], {
        onStdout: (stdout, child) => {
          out = stdout;
          if (begun || !stdout.includes('"event":"start"')) return;
          begun = true;
          void script(() => out).finally(() => child.kill('SIGINT'));
        },
      });
    };
    const until = async (what: () => boolean, ms = 30_000) => {
      for (const started = Date.now(); !what() && Date.now() - started < ms;) await sleep(20);
    };

    const first = await trainer([], async (stdout) => {
      await publish(0, 100);
      await until(() => trained(stdout()) >= 100);
      await broker.halt();
      await sleep(1000);
      await broker.start();
      await publish(100, 200);
      await until(() => trained(stdout()) >= 200);
    });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/streamgrad: mqtt mqtt:\/\/127\.0\.0\.1:\d+: disconnected \(.*\); reconnecting\n/);
    expect(first.stderr).toMatch(/streamgrad: mqtt mqtt:\/\/127\.0\.0\.1:\d+: reconnected after \d+ ms, session resumed\n/);
    const sourceEvents = events(first.stdout).filter((e) => e.event === 'source');
    expect(sourceEvents.map((e) => [e.model, e.kind])).toEqual([['train', 'disconnected'], ['train', 'reconnected']]);
    const done = events(first.stdout).find((e) => e.event === 'done') as { models: { samples: number }[]; mqtt: Record<string, unknown> };
    expect(done.models[0].samples).toBe(200);
    expect(done.mqtt).toMatchObject({ clientId: expect.stringMatching(/^sg-[0-9a-f]{20}$/), disconnects: 1, reconnects: 1, sessionsLost: 0, dropped: 0 });

    // the trainer is down: the broker keeps what is published for its session
    await publish(200, 250);
    const second = await trainer(['--resume'], async (stdout) => {
      await until(() => trained(stdout()) >= 250);
    });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resumed session sg-[0-9a-f]{20}: messages the broker kept for it follow/);
    const resumed = events(second.stdout).find((e) => e.event === 'done') as { models: { samples: number }[]; mqtt: Record<string, unknown> };
    expect(resumed.models[0].samples).toBe(250);
    expect(resumed.mqtt).toMatchObject({ clientId: done.mqtt.clientId, received: 50, duplicates: 0 });
  }, 120_000);

  it('a broker that lost the session (restarted without persistence) is reported: session-lost with loss: true, counted, and the subscription is made again', async () => {
    const broker = await startMosquitto(binary!, { persistence: false });
    cleanups.push(() => broker.stop());
    const source = await MqttSource.connect({ url: broker.url, topics: 'lab/#', clientId: 'sg-test-forgotten', client: { reconnectPeriod: 100 } });
    cleanups.push(() => source.close());
    const notices: SourceNotice[] = [];
    source.notices.subscribe((n) => notices.push(n));
    await broker.halt();
    await broker.start();
    for (const started = Date.now(); notices.length < 2 && Date.now() - started < 20_000;) await sleep(20);
    expect(notices.map((n) => [n.kind, n.loss])).toEqual([['disconnected', undefined], ['session-lost', true]]);
    expect(notices[1].message).toMatch(/no longer had session sg-test-forgotten: messages published meanwhile are lost/);
    expect(source.stats).toMatchObject({ disconnects: 1, reconnects: 1, sessionsLost: 1 });
    // mqtt.js subscribed again: what is published now arrives
    const client = await publisher(broker.url);
    const it = source[Symbol.asyncIterator]();
    for (const started = Date.now(); source.received === 0 && Date.now() - started < 20_000;) {
      await client.publishAsync('lab/a', '{"x":[1],"y":[2]}', { qos: 1 });
      await sleep(50);
    }
    expect((await it.next()).value).toMatchObject({ value: { x: [1], y: [2] }, origin: { topic: 'lab/a' } });
  }, 60_000);
});

