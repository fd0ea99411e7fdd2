// Retained MQTT messages on a real Mosquitto broker: a subscriber takes each topic's
// retained message once. A restart that resumes its session (the same client id, as
// `train --checkpoint-dir … --resume` and `cluster publish --mqtt-client-id` do) does not
// take them again: they were trained on every restart before (5 readings became 15). Nor
// does one process whose session the broker lost: mqtt.js subscribes again, the broker sends
// each retained message again, and the source recognises the copies (`retainedCopies`) — also of
// one that came live, published with retain while the source was subscribed, which MQTT forwards
// without the retain flag unless the subscription asks for Retain As Published. A payload retained
// again on purpose is a new reading, taken each time. A clean session is a new subscription
// on every connection: it connects with MQTT 5 too, so a reading that came live is known by
// its copy after a reconnection; with a broker that speaks 3.1.1 only it falls back, and says
// what it cannot do there.
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import type { SourceNotice } from '../../pipeline/run.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { findMosquitto, mosquittoForThisFile } from '../helpers/mosquitto.ts';
import { startMqtt311Front } from '../helpers/mqtt311-front.ts';
import { collector, loseSession, until } from '../helpers/mqtt-source.ts';

const binary = findMosquitto({ requiredInCi: true });

interface Subscriber {
  readonly publisher: MqttClient;
  readonly source: MqttSource;
  /** The source's notices so far. */
  readonly notices: SourceNotice[];
  readonly collect: (ms: number) => Promise<IngestRecord[]>;
}

/**
 * Runs `body` with a publisher and a source subscribed to `topics` under `clientId`, then closes
 * both; `before` publishes before the source connects.
 */
async function withSubscriber(url: string, topics: string, clientId: string, options: { client?: IClientOptions; persistentSession?: boolean; before?: (publisher: MqttClient) => Promise<void> }, body: (s: Subscriber) => Promise<void>): Promise<void> {
  const publisher = await connectAsync(url);
  try {
    await options.before?.(publisher);
    const { client, persistentSession } = options;
    const source = await MqttSource.connect({ url, topics, clientId, ...(client !== undefined && { client }), ...(persistentSession !== undefined && { persistentSession }) });
    try {
      const notices: SourceNotice[] = [];
      source.notices.subscribe((n) => notices.push(n));
      await body({ publisher, source, notices, collect: collector(source) });
    } finally {
      await source.close();
    }
  } finally {
    await publisher.endAsync();
  }
}

describe.skipIf(binary === null)('retained MQTT messages', () => {
  const broker = mosquittoForThisFile();

  it('are taken once: a resumed session (same client id) does not take them again, and new messages still come', async () => {
    const publisher = await connectAsync(broker.url);
    for (let i = 0; i < 5; i++) await publisher.publishAsync(`ret/s${i}`, JSON.stringify({ x: [i], y: [i] }), { qos: 1, retain: true });
    const first = await MqttSource.connect({ url: broker.url, topics: 'ret/#', clientId: 'sg-retained-test' });
    const taken = await collector(first)(1500);
    expect(taken.map((r) => r.origin.topic).sort()).toEqual(['ret/s0', 'ret/s1', 'ret/s2', 'ret/s3', 'ret/s4']);
    await first.close();
    // the restart: the same session, resumed
    const again = await MqttSource.connect({ url: broker.url, topics: 'ret/#', clientId: 'sg-retained-test' });
    try {
      await publisher.publishAsync('ret/s9', JSON.stringify({ x: [9], y: [9] }), { qos: 1 });
      const second = await collector(again)(1500);
      expect(second.map((r) => r.origin.topic)).toEqual(['ret/s9']);
      expect(again.stats.received).toBe(1);
    } finally {
      await again.close();
      await publisher.endAsync();
    }
  }, 30_000);

  it('a retained message sent again after the broker lost the session is counted in retainedCopies, not taken twice; new messages still come', () => {
    const retain3 = async (publisher: MqttClient) => {
      for (let i = 0; i < 3; i++) await publisher.publishAsync(`lost/s${i}`, JSON.stringify({ x: [i], y: [i] }), { qos: 1, retain: true });
    };
    return withSubscriber(broker.url, 'lost/#', 'sg-retained-lost', { before: retain3 }, async ({ publisher, source, notices, collect }) => {
      expect((await collect(1500)).map((r) => r.origin.topic).sort()).toEqual(['lost/s0', 'lost/s1', 'lost/s2']);
      await loseSession(broker.url, 'sg-retained-lost');
      // mqtt.js subscribes again, and with the new subscription the broker sends the 3 retained messages again
      await until(() => source.stats.received >= 6);
      expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'session-lost']);
      await publisher.publishAsync('lost/s9', JSON.stringify({ x: [9], y: [9] }), { qos: 1 });
      // the copies came with the new subscription, before s9: only s9 is taken
      expect((await collect(1500)).map((r) => r.origin.topic)).toEqual(['lost/s9']);
      expect(source.stats).toMatchObject({ received: 7, retainedCopies: 3, duplicates: 0, sessionsLost: 1 });
    });
  }, 30_000);

  it('a reading retained while the source was subscribed (forwarded live) is taken once: its copy after a lost session is counted in retainedCopies', () =>
    withSubscriber(broker.url, 'live/#', 'sg-retained-live', {}, async ({ publisher, source, notices, collect }) => {
      // published with retain while we are subscribed: forwarded at once (without the retain flag, unless
      // the subscription asked for Retain As Published), and kept by the broker as the topic's retained message
      await publisher.publishAsync('live/s0', JSON.stringify({ x: [0], y: [0] }), { qos: 1, retain: true });
      const taken = await collect(1000);
      expect(taken.map((r) => r.origin.topic)).toEqual(['live/s0']);
      await loseSession(broker.url, 'sg-retained-live');
      // mqtt.js subscribes again; with the new subscription the broker sends live/s0 again, now flagged retained
      await until(() => source.stats.received >= 2);
      expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'session-lost']);
      await publisher.publishAsync('live/s9', JSON.stringify({ x: [9], y: [9] }), { qos: 1 });
      taken.push(...(await collect(1500)));
      expect(taken.map((r) => r.origin.topic)).toEqual(['live/s0', 'live/s9']);
      expect(source.stats).toMatchObject({ received: 3, retainedCopies: 1, duplicates: 0, sessionsLost: 1 });
    }), 30_000);

  it('a payload retained again on purpose is a new message: taken each time it is published, and after a lost session only the copy of the retained message last taken is skipped', () =>
    withSubscriber(broker.url, 'same/#', 'sg-retained-same', { client: { reconnectPeriod: 1000 } }, async ({ publisher, source, notices, collect }) => {
      const read = (records: IngestRecord[]) => records.map((r) => `${r.origin.topic} ${r.origin.raw}`);
      const P = '{"x":[1],"y":[1]}';
      await publisher.publishAsync('same/a', P, { qos: 1, retain: true });
      await publisher.publishAsync('same/a', P, { qos: 1, retain: true }); // the same value retained twice: two readings
      await publisher.publishAsync('same/b', '{"x":[2],"y":[2]}', { qos: 1, retain: true });
      await publisher.publishAsync('same/b', '{"x":[3],"y":[3]}', { qos: 1 }); // not retained: the broker keeps x=2
      await publisher.publishAsync('same/c', '{"x":[4],"y":[4]}', { qos: 1, retain: true });
      expect(read(await collect(1000))).toEqual([`same/a ${P}`, `same/a ${P}`, 'same/b {"x":[2],"y":[2]}', 'same/b {"x":[3],"y":[3]}', 'same/c {"x":[4],"y":[4]}']);
      // the session is taken over; while it is lost, same/c gets a new retained value, which must be taken
      const usurper = await connectAsync(broker.url, { clientId: 'sg-retained-same', clean: true, protocolVersion: 5 });
      await publisher.publishAsync('same/c', '{"x":[5],"y":[5]}', { qos: 1, retain: true });
      await usurper.endAsync();
      await until(() => source.stats.received >= 8);
      expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'session-lost']);
      // the copies of same/a (x=1) and same/b (x=2) are skipped, same/c's new value is taken
      expect(read(await collect(1000))).toEqual(['same/c {"x":[5],"y":[5]}']);
      expect(source.stats).toMatchObject({ received: 8, retainedCopies: 2 });
      // retained again after the new subscription, with the payload of the copy just skipped: a new reading
      await publisher.publishAsync('same/a', P, { qos: 1, retain: true });
      expect(read(await collect(1000))).toEqual([`same/a ${P}`]);
      expect(source.stats).toMatchObject({ received: 9, retainedCopies: 2, duplicates: 0, sessionsLost: 1 });
    }), 30_000);

  it('a retained message queued for a resumed session is taken, even with the payload of the one taken before (no new subscription: no copy)', () =>
    withSubscriber(broker.url, 'kept/#', 'sg-retained-kept', { client: { reconnectPeriod: 1000 } }, async ({ publisher, source, notices, collect }) => {
      const P = '{"x":[1],"y":[1]}';
      await publisher.publishAsync('kept/a', P, { qos: 1, retain: true });
      expect((await collect(1000)).map((r) => r.origin.raw)).toEqual([P]);
      // the connection drops; the broker keeps the session and queues what is published meanwhile
      source.client.stream.destroy();
      await until(() => notices.length >= 1);
      await publisher.publishAsync('kept/a', P, { qos: 1, retain: true });
      await until(() => notices.length >= 2);
      expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'reconnected']);
      expect((await collect(1500)).map((r) => r.origin.raw)).toEqual([P]);
      expect(source.stats).toMatchObject({ received: 2, retainedCopies: 0, duplicates: 0, sessionsLost: 0 });
    }), 30_000);

  it('a clean session (persistentSession: false) takes a reading retained while it was subscribed once: its copy on the new subscription after a reconnection is counted in retainedCopies', () =>
    withSubscriber(broker.url, 'clean/#', 'sg-retained-clean', { persistentSession: false }, async ({ publisher, source, notices, collect }) => {
      // MQTT 5, Clean Start on: Retain As Published keeps the retain flag of this live forward
      await publisher.publishAsync('clean/s0', JSON.stringify({ x: [0], y: [0] }), { qos: 1, retain: true });
      const taken = await collect(1000);
      expect(taken.map((r) => r.origin.topic)).toEqual(['clean/s0']);
      // the connection drops; a clean session comes back without a session, mqtt.js subscribes
      // again, and the new subscription brings clean/s0 again, flagged retained
      source.client.stream.destroy();
      await until(() => source.stats.received >= 2);
      expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'reconnected']);
      await publisher.publishAsync('clean/s9', JSON.stringify({ x: [9], y: [9] }), { qos: 1 });
      taken.push(...(await collect(1500)));
      // before: MQTT 3.1.1 cleared the flag of the live forward, and clean/s0 was trained twice
      expect(taken.map((r) => r.origin.topic)).toEqual(['clean/s0', 'clean/s9']);
      expect(source.stats).toMatchObject({ received: 3, retainedCopies: 1, duplicates: 0, reconnects: 1, sessionsLost: 0 });
    }), 30_000);

  it('a broker that speaks MQTT 3.1.1 only: a clean session falls back to 3.1.1 and says what that costs (a retained reading that came live is taken again after a reconnection); a persistent session, or an explicit protocolVersion 5, is refused', async () => {
    const front = await startMqtt311Front(broker.port);
    const publisher = await connectAsync(broker.url);
    try {
      const source = await MqttSource.connect({ url: front.url, topics: 'old/#', clientId: 'sg-retained-old', persistentSession: false });
      try {
        const notices: SourceNotice[] = [];
        source.notices.subscribe((n) => notices.push(n));
        expect(front).toMatchObject({ refused: 1, passed: 1 });
        expect(source.client.options.protocolVersion).toBe(4);
        expect(notices).toEqual([expect.objectContaining({ kind: 'protocol-fallback', message: expect.stringMatching(/refused MQTT 5.*3\.1\.1.*taken again/) })]);
        const collect = collector(source);
        await publisher.publishAsync('old/s0', JSON.stringify({ x: [0], y: [0] }), { qos: 1, retain: true });
        expect((await collect(1000)).map((r) => r.origin.topic)).toEqual(['old/s0']);
        source.client.stream.destroy();
        await until(() => source.stats.received >= 2);
        // the documented limitation of 3.1.1: no Retain As Published, so the copy is not known
        expect((await collect(1000)).map((r) => r.origin.topic)).toEqual(['old/s0']);
        expect(source.stats).toMatchObject({ received: 2, retainedCopies: 0, reconnects: 1 });
        expect(front.refused).toBe(1); // reconnections go straight to 3.1.1
      } finally {
        await source.close();
      }
      await expect(MqttSource.connect({ url: front.url, topics: 'old/#' })).rejects.toThrow(/persistent session needs MQTT 5/);
      await expect(MqttSource.connect({ url: front.url, topics: 'old/#', persistentSession: false, client: { protocolVersion: 5 } })).rejects.toThrow(/Unacceptable protocol version/);
    } finally {
      await publisher.publishAsync('old/s0', '', { qos: 1, retain: true });
      await publisher.endAsync();
      await front.close();
    }
  }, 30_000);
});
