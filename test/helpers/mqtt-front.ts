import { createConnection, createServer, type Socket } from 'node:net';

/** A TCP front before a real broker that answers or rewrites the start of each MQTT connection. */
export interface MqttFront {
  readonly url: string;
  /** Stops listening and cuts every connection. */
  close(): Promise<void>;
}

/** What a front does with the first packet each way; everything after passes byte for byte. */
export interface MqttFrontRules {
  /**
   * Given the client's CONNECT (the whole packet): bytes to answer with in the broker's place
   * before the connection is closed, or null to pass it on to the broker (default: pass).
   */
  readonly answer?: (connect: Buffer) => Buffer | null;
  /** Given the broker's CONNACK (the whole packet): what the client gets instead (default: it). */
  readonly connack?: (connack: Buffer) => Buffer;
}

/**
 * Listens on a free loopback port in front of the broker on `port`. Of each connection it
 * holds the first packet the client sends (the CONNECT) until it is whole, and answers it
 * (`rules.answer`) or passes it on; of the broker's answer it holds the first packet (the
 * CONNACK) until it is whole and passes on what `rules.connack` makes of it. The rest flows
 * both ways untouched. A broker that cannot be configured to be another one (Mosquitto 2
 * always speaks MQTT 5, always has Subscription Identifiers) then looks like it in the one
 * place a client reads it.
 *
 * @example
 * const front = await startMqttFront(broker.port, { connack: (packet) => packet });
 * const client = await connectAsync(front.url); // the broker, through the front
 */
export async function startMqttFront(port: number, rules: MqttFrontRules): Promise<MqttFront> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    firstPacket(client, (connect, rest) => {
      const answer = rules.answer?.(connect) ?? null;
      if (answer !== null) {
        client.end(answer);
        return;
      }
      const broker = createConnection({ port, host: '127.0.0.1' });
      sockets.add(broker);
      broker.on('close', () => {
        sockets.delete(broker);
        client.destroy();
      });
      broker.on('error', () => broker.destroy());
      client.on('close', () => broker.destroy());
      broker.write(Buffer.concat([connect, rest]));
      client.pipe(broker);
      firstPacket(broker, (connack, after) => {
        client.write(Buffer.concat([rules.connack?.(connack) ?? connack, after]));
        broker.pipe(client);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/**
 * Reads `socket` until its first MQTT packet is whole, then calls `then` with that packet and
 * the bytes that came after it; `then` pipes the rest at once (before the next chunk comes).
 */
function firstPacket(socket: Socket, then: (packet: Buffer, rest: Buffer) => void): void {
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const length = packetLength(head);
    if (length === null) return;
    socket.off('data', onData);
    then(head.subarray(0, length), head.subarray(length));
  };
  socket.on('data', onData);
}

/** The length in bytes of the whole packet at the start of `bytes` (fixed header included), or null while it has not all come. */
function packetLength(bytes: Buffer): number | null {
  const remaining = readVarint(bytes, 1);
  if (remaining === null) return null;
  const total = remaining.next + remaining.value;
  return bytes.length >= total ? total : null;
}

/** An MQTT Variable Byte Integer at `at` (1 to 4 bytes, 7 bits each), and where what follows it starts; null while incomplete. */
export function readVarint(bytes: Buffer, at: number): { value: number; next: number } | null {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= bytes.length) return null;
    value += (bytes[at + i] & 0x7f) * 128 ** i;
    if ((bytes[at + i] & 0x80) === 0) return { value, next: at + i + 1 };
  }
  throw new Error('malformed MQTT Variable Byte Integer (more than 4 bytes)');
}

/** `value` as an MQTT Variable Byte Integer. */
export function varint(value: number): Buffer {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return Buffer.from(out);
}
