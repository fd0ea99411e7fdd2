// Retained MQTT messages on a real Mosquitto broker: a subscriber takes each topic's
// retained message once. A restart that resumes its session (the same client id, as
// `train --checkpoint-dir … --resume` and `cluster publish --mqtt-client-id` do) does not
// take them again: they were trained on every restart before (5 readings became 15). Nor
// does one process whose session the broker lost: mqtt.js subscribes again, the broker sends
// each retained message again, and the source recognises the copies (`retainedCopies`).
import { connectAsync } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import type { SourceNotice } from '../../pipeline/run.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { type Broker, findMosquitto, startMosquitto } from '../helpers/mosquitto.ts';

const binary = findMosquitto();
if (binary === null && process.env.CI) throw new Error('mosquitto is not installed (.ci/run installs the Debian package)');

/** A reader of what `source` queues: each call gives the records queued within `ms` (a read still waiting then carries over to the next call). */
function collector(source: MqttSource): (ms: number) => Promise<IngestRecord[]> {
  const iterator = source.queue[Symbol.asyncIterator]();
  let waiting: Promise<IteratorResult<IngestRecord>> | null = null;
  return async (ms) => {
    const out: IngestRecord[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return out;
      waiting ??= iterator.next();
      const next = await Promise.race([waiting, new Promise<null>((r) => setTimeout(() => r(null), left))]);
      if (next === null) return out;
      waiting = null;
      if (next.done === true) return out;
      out.push(next.value);
    }
  };
}

describe.skipIf(binary === null)('retained MQTT messages', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startMosquitto(binary!);
  });
  afterAll(async () => {
    await broker?.stop();
  });

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

  it('a retained message sent again after the broker lost the session is counted in retainedCopies, not taken twice; new messages still come', async () => {
    const publisher = await connectAsync(broker.url);
    for (let i = 0; i < 3; i++) await publisher.publishAsync(`lost/s${i}`, JSON.stringify({ x: [i], y: [i] }), { qos: 1, retain: true });
    const source = await MqttSource.connect({ url: broker.url, topics: 'lost/#', clientId: 'sg-retained-lost' });
    const notices: SourceNotice[] = [];
    source.notices.subscribe((n) => notices.push(n));
    const collect = collector(source);
    try {
      expect((await collect(1500)).map((r) => r.origin.topic).sort()).toEqual(['lost/s0', 'lost/s1', 'lost/s2']);
      // the broker forgets the session while it keeps running (and keeps its retained messages):
      // a clean connection under the same client id takes the session over and ends it
      const usurper = await connectAsync(broker.url, { clientId: 'sg-retained-lost', clean: true, protocolVersion: 5 });
      await usurper.endAsync();
      // mqtt.js subscribes again, and with the new subscription the broker sends the 3 retained messages again
      for (const started = Date.now(); source.stats.received < 6 && Date.now() - started < 20_000;) await new Promise((r) => setTimeout(r, 20));
      expect(notices.map((n) => n.kind)).toEqual(['disconnected', 'session-lost']);
      await publisher.publishAsync('lost/s9', JSON.stringify({ x: [9], y: [9] }), { qos: 1 });
      // the copies came with the new subscription, before s9: only s9 is taken
      expect((await collect(1500)).map((r) => r.origin.topic)).toEqual(['lost/s9']);
      expect(source.stats).toMatchObject({ received: 7, retainedCopies: 3, duplicates: 0, sessionsLost: 1 });
    } finally {
      await source.close();
      await publisher.endAsync();
    }
  }, 30_000);
});
