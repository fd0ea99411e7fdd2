import { type MqttFront, readVarint, startMqttFront, varint } from './mqtt-front.ts';

/** A TCP front that makes a real broker look like an MQTT 5 broker without Subscription Identifiers. */
export interface NoSubscriptionIdsFront extends MqttFront {
  /** MQTT 5 CONNACKs it rewrote (each a connection that was told there are no Subscription Identifiers). */
  readonly rewritten: number;
}

/**
 * Listens on a free loopback port in front of the broker on `port` and passes every
 * connection on, but adds to each MQTT 5 CONNACK the property Subscription Identifier
 * Available = 0 (0x29, MQTT 5 §3.2.2.3.12): what a broker that speaks MQTT 5 but does not
 * support Subscription Identifiers answers. Mosquitto 2 always
 * supports them and has no option to say otherwise; its CONNACK does not carry the property,
 * so adding it makes no duplicate. A 3.1.1 CONNACK (no properties) passes unchanged.
 *
 * @example
 * const front = await startNoSubscriptionIdsFront(broker.port);
 * await MqttSource.connect({ url: front.url, topics: ['a/#', 'a/+'] }); // SG_ERR_CONFIG at topics
 */
export async function startNoSubscriptionIdsFront(port: number): Promise<NoSubscriptionIdsFront> {
  let rewritten = 0;
  const front = await startMqttFront(port, {
    connack(packet) {
      const remaining = readVarint(packet, 1)!;
      if (remaining.value < 3) return packet; // MQTT 3.1.1: flags and return code, no properties
      const flagsAndReason = packet.subarray(remaining.next, remaining.next + 2);
      const properties = readVarint(packet, remaining.next + 2)!;
      const added = Buffer.concat([packet.subarray(properties.next), Buffer.from([0x29, 0x00])]);
      const body = Buffer.concat([flagsAndReason, varint(added.length), added]);
      rewritten++;
      return Buffer.concat([Buffer.from([packet[0]]), varint(body.length), body]);
    },
  });
  return {
    url: front.url,
    get rewritten() {
      return rewritten;
    },
    close: () => front.close(),
  };
}
