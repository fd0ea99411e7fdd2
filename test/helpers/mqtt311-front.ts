import { type MqttFront, readVarint, startMqttFront } from './mqtt-front.ts';

/** A TCP front that makes a real broker look like one that speaks MQTT 3.1.1 only. */
export interface Mqtt311Front extends MqttFront {
  /** CONNECTs it refused (protocol level 5), and those it passed to the broker. */
  readonly refused: number;
  readonly passed: number;
}

/**
 * Listens on a free loopback port in front of the broker on `port` and reads each
 * connection's first packet, the CONNECT: one asking for MQTT 5 (protocol level 5) is
 * answered as a broker that only speaks 3.1.1 must answer it — a 3.1.1 CONNACK with return
 * code 1, "unacceptable protocol version" ([MQTT-3.1.2-2]), and the connection closed —
 * and any other is passed on, byte for byte, both ways. Mosquitto 2 has no option to
 * refuse MQTT 5, and an old 3.1.1-only broker is not installed: this is that broker, minus
 * the one thing it does differently.
 *
 * @example
 * const front = await startMqtt311Front(broker.port);
 * await MqttSource.connect({ url: front.url, topics: 'a/#', persistentSession: false }); // falls back to 3.1.1
 */
export async function startMqtt311Front(port: number): Promise<Mqtt311Front> {
  let refused = 0, passed = 0;
  const front = await startMqttFront(port, {
    answer(connect) {
      if (protocolLevel(connect) !== 5) {
        passed++;
        return null;
      }
      refused++;
      return Buffer.from([0x20, 0x02, 0x00, 0x01]);
    },
  });
  return {
    url: front.url,
    get refused() {
      return refused;
    },
    get passed() {
      return passed;
    },
    close: () => front.close(),
  };
}

/** The protocol level of a CONNECT packet: the byte after the protocol name. */
function protocolLevel(connect: Buffer): number {
  const at = readVarint(connect, 1)!.next; // after the fixed header's first byte and the remaining length
  return connect[at + 2 + connect.readUInt16BE(at)];
}
