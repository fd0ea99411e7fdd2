// Overlapping topic filters in one MQTT source, on a real Mosquitto broker. Mosquitto 2
// delivers a message once per subscription it matches, so with `lab/#` and `lab/+/temp` each
// reading on lab/a/temp came twice and was trained twice. Over MQTT 5 each filter is its own
// subscription with its own Subscription Identifier, and the source takes the copy of the
// first of its filters that matches the topic (also after mqtt.js subscribes again on a lost
// session); the others are acknowledged and counted in `overlapCopies`. MQTT
// 3.1.1 has no identifiers, and an MQTT 5 broker may say it has none: there, overlapping
// filters are refused at connect.
import { connectAsync } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { findMosquitto, mosquittoForThisFile } from '../helpers/mosquitto.ts';
import { startMqtt311Front } from '../helpers/mqtt311-front.ts';
import { startNoSubscriptionIdsFront } from '../helpers/no-subscription-ids-front.ts';
import { collector, loseSession, until } from '../helpers/mqtt-source.ts';

const binary = findMosquitto({ requiredInCi: true });

const topicsOf = (records: IngestRecord[]) => records.map((r) => r.origin.topic);

describe.skipIf(binary === null)('overlapping MQTT topic filters in one source', () => {
  const broker = mosquittoForThisFile();

  it('a message matching several filters is taken once, the copy of the first matching filter; the others are counted in overlapCopies, also after the broker lost the session', async () => {
    const publisher = await connectAsync(broker.url);
    // retained before the source connects; matches ovl/# (the second filter) and ovl/+/temp (the third)
    await publisher.publishAsync('ovl/r/temp', '{"x":[0],"y":[0]}', { qos: 1, retain: true });
    const source = await MqttSource.connect({ url: broker.url, topics: ['ovl/+/hum', 'ovl/#', 'ovl/+/temp'], clientId: 'sg-overlap' });
    const collect = collector(source);
    try {
      // the retained reading comes with each of the two subscriptions it matches
      await until(() => source.stats.received >= 2);
      await publisher.publishAsync('ovl/a/temp', '{"x":[1],"y":[1]}', { qos: 1 }); // ovl/# and ovl/+/temp
      await publisher.publishAsync('ovl/a/hum', '{"x":[2],"y":[2]}', { qos: 1 }); // ovl/+/hum and ovl/#
      await publisher.publishAsync('ovl/a', '{"x":[3],"y":[3]}', { qos: 1 }); // ovl/# only
      expect(topicsOf(await collect(1500))).toEqual(['ovl/r/temp', 'ovl/a/temp', 'ovl/a/hum', 'ovl/a']);
      expect(source.stats).toMatchObject({ received: 7, overlapCopies: 3, duplicates: 0, retainedCopies: 0 });

      // the broker forgets the session: mqtt.js subscribes again, filter by filter, each with its identifier
      await loseSession(broker.url, 'sg-overlap');
      await until(() => source.stats.received >= 9); // the retained reading again, twice
      await publisher.publishAsync('ovl/b/temp', '{"x":[4],"y":[4]}', { qos: 1 });
      expect(topicsOf(await collect(1500))).toEqual(['ovl/b/temp']);
      expect(source.stats).toMatchObject({ received: 11, overlapCopies: 5, retainedCopies: 1, sessionsLost: 1 });
    } finally {
      await source.close();
      await publisher.publishAsync('ovl/r/temp', '', { qos: 1, retain: true });
      await publisher.endAsync();
    }
  }, 30_000);

  // over MQTT 3.1.1 Mosquitto 2.0 sends one copy to a client whose filters overlap; a clean
  // session now speaks MQTT 5, which brings one copy per subscription
  it('a clean session (QoS 0) takes a message matching two filters once too; filters that do not overlap are unaffected', async () => {
    const publisher = await connectAsync(broker.url);
    const clean = await MqttSource.connect({ url: broker.url, topics: ['q0/#', 'q0/+'], qos: 0 });
    const apart = await MqttSource.connect({ url: broker.url, topics: ['na/#', 'nb/+'] });
    try {
      await publisher.publishAsync('q0/x', '{"x":[1],"y":[1]}', { qos: 0 });
      await publisher.publishAsync('na/x', '{"x":[2],"y":[2]}', { qos: 1 });
      await publisher.publishAsync('nb/x', '{"x":[3],"y":[3]}', { qos: 1 });
      expect(topicsOf(await collector(clean)(1000))).toEqual(['q0/x']);
      expect(clean.stats).toMatchObject({ received: 2, overlapCopies: 1 });
      expect(topicsOf(await collector(apart)(500))).toEqual(['na/x', 'nb/x']);
      expect(apart.stats).toMatchObject({ received: 2, overlapCopies: 0 });
    } finally {
      await clean.close();
      await apart.close();
      await publisher.endAsync();
    }
  }, 30_000);

  it('over MQTT 3.1.1 (asked for, or the fallback from a broker that refuses MQTT 5) overlapping filters are refused at connect with SG_ERR_CONFIG naming both', async () => {
    const refusal = { name: 'StreamgradError', code: 'SG_ERR_CONFIG', field: 'topics', message: expect.stringMatching(/"lab\/\+\/temp" overlaps "lab\/#".*MQTT 3\.1\.1/) };
    await expect(MqttSource.connect({ url: broker.url, topics: ['lab/#', 'lab/+/temp'], persistentSession: false, client: { protocolVersion: 4 } })).rejects.toMatchObject(refusal);
    const front = await startMqtt311Front(broker.port);
    try {
      await expect(MqttSource.connect({ url: front.url, topics: ['lab/#', 'lab/+/temp'], persistentSession: false })).rejects.toMatchObject(refusal);
      expect(front.refused).toBe(1);
      // filters that do not overlap connect over 3.1.1 as before
      const apart = await MqttSource.connect({ url: front.url, topics: ['lab/+/temp', 'lab/+/hum'], persistentSession: false });
      await apart.close();
    } finally {
      await front.close();
    }
  }, 30_000);

  it('a broker that speaks MQTT 5 without Subscription Identifiers (CONNACK Subscription Identifier Available 0): overlapping filters are refused at connect with SG_ERR_CONFIG naming both; filters that do not overlap connect over MQTT 5 and take each message once', async () => {
    const front = await startNoSubscriptionIdsFront(broker.port);
    const publisher = await connectAsync(broker.url);
    try {
      await expect(MqttSource.connect({ url: front.url, topics: ['nsi/#', 'nsi/+/temp'] })).rejects.toMatchObject({
        name: 'StreamgradError', code: 'SG_ERR_CONFIG', field: 'topics',
        message: expect.stringMatching(/"nsi\/\+\/temp" overlaps "nsi\/#".*the broker has no Subscription Identifiers/),
      });
      expect(front.rewritten).toBe(1); // it did connect over MQTT 5, and was told so
      const apart = await MqttSource.connect({ url: front.url, topics: ['nsi/+/temp', 'nsi/+/hum'] });
      try {
        expect(front.rewritten).toBe(2);
        expect(apart.client.options.protocolVersion).toBe(5);
        await publisher.publishAsync('nsi/a/temp', '{"x":[1],"y":[1]}', { qos: 1 });
        await publisher.publishAsync('nsi/a/hum', '{"x":[2],"y":[2]}', { qos: 1 });
        expect(topicsOf(await collector(apart)(1000))).toEqual(['nsi/a/temp', 'nsi/a/hum']);
        expect(apart.stats).toMatchObject({ received: 2, overlapCopies: 0, unsubscribedMessages: 0 });
      } finally {
        await apart.close();
      }
    } finally {
      await publisher.endAsync();
      await front.close();
    }
  }, 30_000);
});
