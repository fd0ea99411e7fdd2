// Retained MQTT messages on a real Mosquitto broker: a subscriber takes each topic's
// retained message once. A restart that resumes its session (the same client id, as
// `train --checkpoint-dir … --resume` and `cluster publish --mqtt-client-id` do) does not
// take them again: they were trained on every restart before (5 readings became 15).
import { connectAsync } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { type Broker, findMosquitto, startMosquitto } from '../helpers/mosquitto.ts';

const binary = findMosquitto();
if (binary === null && process.env.CI) throw new Error('mosquitto is not installed (.ci/run installs the Debian package)');

/** The records `source` queues within `ms`. */
async function collect(source: MqttSource, ms: number): Promise<IngestRecord[]> {
  const out: IngestRecord[] = [];
  const iterator = source.queue[Symbol.asyncIterator]();
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return out;
    const next = await Promise.race([iterator.next(), new Promise<null>((r) => setTimeout(() => r(null), left))]);
    if (next === null || next.done === true) return out;
    out.push(next.value);
  }
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
    const taken = await collect(first, 1500);
    expect(taken.map((r) => r.origin.topic).sort()).toEqual(['ret/s0', 'ret/s1', 'ret/s2', 'ret/s3', 'ret/s4']);
    await first.close();
    // the restart: the same session, resumed
    const again = await MqttSource.connect({ url: broker.url, topics: 'ret/#', clientId: 'sg-retained-test' });
    try {
      await publisher.publishAsync('ret/s9', JSON.stringify({ x: [9], y: [9] }), { qos: 1 });
      const second = await collect(again, 1500);
      expect(second.map((r) => r.origin.topic)).toEqual(['ret/s9']);
      expect(again.stats.received).toBe(1);
    } finally {
      await again.close();
      await publisher.endAsync();
    }
  }, 30_000);
});
