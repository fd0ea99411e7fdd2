import { createConnection, createServer, type Socket } from 'node:net';

/** A TCP front that makes a real broker look like one that speaks MQTT 3.1.1 only. */
export interface Mqtt311Front {
  readonly url: string;
  /** CONNECTs it refused (protocol level 5), and those it passed to the broker. */
  readonly refused: number;
  readonly passed: number;
  /** Stops listening and cuts every connection. */
  close(): Promise<void>;
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
  const sockets = new Set<Socket>();
  let refused = 0, passed = 0;
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const level = protocolLevel(head);
      if (level === null) return; // the CONNECT's variable header has not all come yet
      client.off('data', onData);
      if (level === 5) {
        refused++;
        client.end(Buffer.from([0x20, 0x02, 0x00, 0x01]));
        return;
      }
      passed++;
      const broker = createConnection({ port, host: '127.0.0.1' });
      sockets.add(broker);
      broker.on('close', () => {
        sockets.delete(broker);
        client.destroy();
      });
      broker.on('error', () => broker.destroy());
      client.on('close', () => broker.destroy());
      broker.write(head);
      client.pipe(broker);
      broker.pipe(client);
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    get refused() {
      return refused;
    },
    get passed() {
      return passed;
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The protocol level of the CONNECT at the start of `bytes` (the byte after the protocol name), or null while incomplete. */
function protocolLevel(bytes: Buffer): number | null {
  let at = 1; // the fixed header's first byte, then the remaining length (1 to 4 bytes, 7 bits each)
  while (at < bytes.length && at < 5 && (bytes[at] & 0x80) !== 0) at++;
  at++;
  if (bytes.length < at + 2) return null;
  const nameLength = bytes.readUInt16BE(at);
  const levelAt = at + 2 + nameLength;
  return bytes.length > levelAt ? bytes[levelAt] : null;
}
