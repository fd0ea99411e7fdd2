// A subscription left in a persistent session, on a real Mosquitto broker. The broker keeps a
// session's subscriptions, and MQTT has no request that lists or replaces them: a trainer
// restarted under the same client id with other topic filters (first `st/+/temp`, then
// `st/+/hum` only) still got the messages of the old filter, and trained them, silently. Now a
// message whose topic none of this run's filters match, or (MQTT 5) that came only by a
// subscription with none of this run's Subscription Identifiers, is acknowledged, not queued,
// counted in `unsubscribedMessages`, and the first one on each topic is a `stale-subscription`
// notice that says what to do.
import { connectAsync } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import type { SourceNotice } from '../../pipeline/run.ts';
import { mqttSummary } from '../../runtime/ingestion.ts';
import { MqttSource } from '../../sources/mqtt.ts';
import { type Broker, findMosquitto, mosquittoForThisFile } from '../helpers/mosquitto.ts';
import { collector, until } from '../helpers/mqtt-source.ts';

const binary = findMosquitto({ requiredInCi: true });

const topicsOf = (records: IngestRecord[]) => records.map((r) => r.origin.topic);

/**
 * A run under `clientId` subscribed to `first` and closed (its session kept, a client id was
 * given), then a source under the same id with `then`: the restarted trainer, its notices, a
 * reader of what it queues, and a publisher.
 */
async function restarted(broker: Broker, clientId: string, first: string, then: string) {
  const before = await MqttSource.connect({ url: broker.url, topics: first, clientId });
  await before.close();
  const source = await MqttSource.connect({ url: broker.url, topics: then, clientId });
  const notices: SourceNotice[] = [];
  source.notices.subscribe((n) => notices.push(n));
  return { source, notices, collect: collector(source), publisher: await connectAsync(broker.url) };
}

describe.skipIf(binary === null)('a subscription the persistent session kept from an earlier run', () => {
  const broker = mosquittoForThisFile();

  it('a restart under the same client id with other topic filters: messages of the old filter are acknowledged, counted in unsubscribedMessages and noticed once per topic, never queued', async () => {
    const clientId = 'sg-stale';
    const { source, notices, collect, publisher } = await restarted(broker, clientId, 'st/+/temp', 'st/+/hum');
    try {
      await publisher.publishAsync('st/1/temp', '{"x":[1],"y":[1]}', { qos: 1 });
      await publisher.publishAsync('st/1/hum', '{"x":[2],"y":[2]}', { qos: 1 });
      await publisher.publishAsync('st/1/temp', '{"x":[3],"y":[3]}', { qos: 1 });
      await publisher.publishAsync('st/2/temp', '{"x":[4],"y":[4]}', { qos: 1 });
      await until(() => source.stats.received >= 4);
      expect(topicsOf(await collect(500))).toEqual(['st/1/hum']);
      expect(source.stats).toMatchObject({ received: 4, unsubscribedMessages: 3, duplicates: 0, overlapCopies: 0 });
      // `resumed` first (the session was there), then one notice per topic, not per message
      const stale = notices.filter((n) => n.kind === 'stale-subscription');
      expect(notices.map((n) => n.kind)).toEqual(['resumed', 'stale-subscription', 'stale-subscription']);
      expect(stale.map((n) => n.topic)).toEqual(['st/1/temp', 'st/2/temp']);
      expect(stale[0]).toMatchObject({ clientId, filters: ['st/+/hum'] });
      expect(stale[0].loss).toBeUndefined();
      expect(stale[0].message).toMatch(/session sg-stale still holds a subscription this run did not ask for: a message on st\/1\/temp, which none of its filters \("st\/\+\/hum"\) match, is skipped.*another client id.*persistentSession: false.*unsubscribe/);
      expect(mqttSummary(source)).toMatch(/, 3 messages on topics no filter of this run matches skipped/);

      // the topics named are bounded: the first 100, the last of them saying so; the rest only counted
      for (let i = 3; i <= 102; i++) await publisher.publishAsync(`st/${i}/temp`, '{"x":[5],"y":[5]}', { qos: 1 });
      await publisher.publishAsync('st/2/hum', '{"x":[6],"y":[6]}', { qos: 1 });
      await until(() => source.stats.received >= 105);
      expect(topicsOf(await collect(500))).toEqual(['st/2/hum']);
      expect(source.stats).toMatchObject({ received: 105, unsubscribedMessages: 103 });
      const named = notices.filter((n) => n.kind === 'stale-subscription');
      expect(named.map((n) => n.topic)).toEqual(['st/1/temp', ...Array.from({ length: 99 }, (_, i) => `st/${i + 2}/temp`)]);
      expect(named[99].message).toMatch(/the first 100 topics are named, more are only counted/);
    } finally {
      await source.close();
      await publisher.endAsync();
    }
  }, 30_000);

  it('an old filter that overlaps the new one: its copy of a message the new filter also brings is skipped (it carries none of this run\'s Subscription Identifiers), and the new filter\'s copy is taken once', async () => {
    // before: both copies matched a filter of this run by topic, and the message was trained twice
    const { source, notices, collect, publisher } = await restarted(broker, 'sg-stale-overlap', 'so/#', 'so/+/hum');
    try {
      await publisher.publishAsync('so/1/hum', '{"x":[1],"y":[1]}', { qos: 1 }); // so/# (kept) and so/+/hum (this run)
      await publisher.publishAsync('so/1/temp', '{"x":[2],"y":[2]}', { qos: 1 }); // so/# only
      await publisher.publishAsync('so/2/hum', '{"x":[3],"y":[3]}', { qos: 1 });
      await until(() => source.stats.received >= 5);
      expect(topicsOf(await collect(500))).toEqual(['so/1/hum', 'so/2/hum']);
      expect(source.stats).toMatchObject({ received: 5, unsubscribedMessages: 3, overlapCopies: 0, duplicates: 0 });
      const stale = notices.filter((n) => n.kind === 'stale-subscription');
      expect(stale.map((n) => n.topic)).toEqual(['so/1/hum', 'so/1/temp', 'so/2/hum']);
      expect(stale[0].message).toMatch(/a message on so\/1\/hum, which came by that subscription \(its copy by this run's filters is taken\), is skipped/);
      expect(stale[1].message).toMatch(/a message on so\/1\/temp, which none of its filters \("so\/\+\/hum"\) match, is skipped/);
    } finally {
      await source.close();
      await publisher.endAsync();
    }
  }, 30_000);

  it('with filters that match everything it receives, nothing is skipped and there is no notice', async () => {
    const source = await MqttSource.connect({ url: broker.url, topics: ['fr/+/hum', '$share/g/fr/+/temp'], clientId: 'sg-stale-fresh' });
    const notices: SourceNotice[] = [];
    source.notices.subscribe((n) => notices.push(n));
    const publisher = await connectAsync(broker.url);
    try {
      await publisher.publishAsync('fr/1/hum', '{"x":[1],"y":[1]}', { qos: 1 });
      await publisher.publishAsync('fr/1/temp', '{"x":[2],"y":[2]}', { qos: 1 });
      expect(topicsOf(await collector(source)(1000))).toEqual(['fr/1/hum', 'fr/1/temp']);
      expect(source.stats).toMatchObject({ received: 2, unsubscribedMessages: 0 });
      expect(notices).toEqual([]);
      expect(mqttSummary(source)).not.toMatch(/no filter of this run/);
    } finally {
      await source.close();
      await publisher.endAsync();
    }
  }, 30_000);
});
