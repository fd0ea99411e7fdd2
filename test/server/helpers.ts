import { once } from 'node:events';
import { request } from 'node:http';
import { afterEach } from 'vitest';
import WebSocket from 'ws';
import type { Activation } from '../../core/activations.ts';
import { Rng } from '../../core/rng.ts';
import { TrainingRun, type RunOptions } from '../../pipeline/run.ts';
import { createTrainer, type Trainer } from '../../core/trainer.ts';
import type { ServerMessage } from '../../server/protocol.ts';
import { serve, type ServeOptions, type StreamgradServer } from '../../server/server.ts';
import { serveInThread } from '../../server/threaded-server.ts';
import { seededModel } from '../helpers/streams.ts';

/**
 * Shared pieces of the server tests: runs on endless generated streams, servers on
 * port 0, and WebSocket clients that queue what they receive. Everything made here is
 * closed after each test.
 */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
/** Registers something to undo after the current test (last in, first out). */
export const onCleanup = (cleanup: () => unknown) => cleanups.push(cleanup);

export const TOKEN = 'test-token-0123456789';

/** An endless stream of regression samples for `inputs` → `outputs` (or `limit` of them). */
export function* samples(inputs = 3, outputs = 1, seed = 7, limit = Infinity): Generator<{ x: number[]; y: number[] }> {
  const rng = new Rng(seed);
  for (let i = 0; i < limit; i++) {
    const x = Array.from({ length: inputs }, () => rng.uniform(-1, 1));
    const y = Array.from({ length: outputs }, (_, k) => Math.sin(x[0] + k) + 0.5 * x[inputs - 1]);
    yield { x, y };
  }
}

export interface TestRunOptions extends Partial<Omit<RunOptions, 'trainer'>> {
  readonly inputs?: number;
  readonly layers?: readonly (readonly [number, Activation])[];
  readonly seed?: number;
  readonly trainer?: Trainer;
}

/** A TrainingRun (not started) on an endless generated stream; stopped after the test. */
export function testRun(o: TestRunOptions = {}): TrainingRun {
  const inputs = o.inputs ?? 3;
  const layers = o.layers ?? [[8, 'tanh'], [1, 'linear']];
  const trainer = o.trainer ?? createTrainer({ model: seededModel(inputs, layers, o.seed ?? 1), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
  const run = new TrainingRun({ id: o.id ?? 'a', trainer, source: o.source ?? samples(inputs, layers[layers.length - 1][0]), ...o });
  onCleanup(() => run.dispose());
  return run;
}

/** The W2 bench model: 16 → 64 relu → 64 relu → 4 linear. */
export const W2: readonly (readonly [number, Activation])[] = [[64, 'relu'], [64, 'relu'], [4, 'linear']];

/**
 * Starts a server on port 0 (closed after the test). With STREAMGRAD_TEST_SERVER=thread
 * it is the command line's server, `serveInThread` (runs of this thread served from a
 * worker thread), wherever the options allow (not with `ingest`). Four tests read what
 * only the in-thread server shows at once: `stats` read synchronously (the threaded
 * server's arrive a few times a second: control "handshakes", load "disconnect storm",
 * slow-clients "peer that stops answering pings"), and weights changed outside a step
 * (snapshots "never sends non-finite parameters": the thread sees them at the next
 * publish, up to 500 ms later); the rest pass in both modes.
 */
export async function startServer(options: ServeOptions = {}, ...runs: TrainingRun[]): Promise<StreamgradServer> {
  const all = { port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', ...options };
  const threaded = process.env.STREAMGRAD_TEST_SERVER === 'thread' && options.ingest === undefined;
  // the threaded server's stats arrive a few times a second instead of being read in place
  const { ingest: _ingest, ...crossing } = all;
  const server = threaded ? await serveInThread(crossing) as unknown as StreamgradServer : await serve(all);
  onCleanup(() => server.close());
  for (const run of runs) server.addRun(run);
  return server;
}

/** A WebSocket client that keeps every message it gets, for `next` to pick from. */
export class TestClient {
  readonly messages: ServerMessage[] = [];
  readonly frames: Buffer[] = [];
  closeCode: number | null = null;
  private waiters: (() => void)[] = [];
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => {
      if (isBinary) this.frames.push(data as Buffer);
      else this.messages.push(JSON.parse((data as Buffer).toString('utf8')) as ServerMessage);
      this.notify();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code) => {
      this.closeCode = code;
      this.notify();
      resolve(code);
    }));
  }

  private notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits (event-driven, up to `timeoutMs`) until `ready()` holds. */
  async until(ready: () => boolean, what = 'condition', timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(100, Math.max(1, deadline - Date.now())));
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** The first message (not consumed before) matching `match`; waits for it. */
  async next<T extends ServerMessage['type']>(type: T, match: (m: Extract<ServerMessage, { type: T }>) => boolean = () => true, timeoutMs = 10_000): Promise<Extract<ServerMessage, { type: T }>> {
    let found: Extract<ServerMessage, { type: T }> | undefined;
    await this.until(() => {
      const i = this.messages.findIndex((m) => m.type === type && match(m as Extract<ServerMessage, { type: T }>));
      if (i === -1) return false;
      found = this.messages.splice(i, 1)[0] as Extract<ServerMessage, { type: T }>;
      return true;
    }, `a ${type} message`, timeoutMs);
    return found!;
  }

  /** Waits for the next binary frame. */
  async frame(timeoutMs = 10_000): Promise<Buffer> {
    await this.until(() => this.frames.length > 0, 'a binary frame', timeoutMs);
    return this.frames.shift()!;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Sends a command and waits for its ack or error. */
  async command(message: { type: string; id: string; [k: string]: unknown }): Promise<ServerMessage> {
    this.send(message);
    let answer: ServerMessage | undefined;
    await this.until(() => {
      const i = this.messages.findIndex((m) => (m.type === 'ack' || m.type === 'error') && m.id === message.id);
      if (i === -1) return false;
      answer = this.messages.splice(i, 1)[0];
      return true;
    }, `the answer to ${message.id}`);
    return answer!;
  }
}

export interface ConnectOptions {
  /** Send `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** The Origin header; default the server's own URL; null sends none. */
  readonly origin?: string | null;
  readonly autoPong?: boolean;
}

/** Opens a client and waits for its hello (rejects when the handshake is refused). */
export async function connect(server: Pick<StreamgradServer, 'url' | 'wsUrl'>, o: ConnectOptions = {}): Promise<TestClient> {
  const ws = new WebSocket(server.wsUrl, {
    headers: o.token !== undefined ? { Authorization: `Bearer ${o.token}` } : {},
    ...(o.origin === null ? {} : { origin: o.origin ?? server.url }),
    autoPong: o.autoPong ?? true,
  });
  const client = new TestClient(ws);
  onCleanup(() => ws.terminate());
  await Promise.race([once(ws, 'open'), once(ws, 'unexpected-response').then(([, res]) => {
    throw new Error(`handshake refused: ${(res as { statusCode: number }).statusCode}`);
  })]);
  return client;
}

/** The HTTP status a refused handshake got (or 101 when it was accepted). */
export function handshakeStatus(server: StreamgradServer, headers: Record<string, string>, path = '/ws'): Promise<number> {
  return handshakeAt(server.wsUrl.replace(/\/ws$/, path), headers);
}

/** The HTTP status a refused handshake at `url` got (or 101 when it was accepted). */
export async function handshakeAt(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  ws.on('error', () => undefined);
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
  });
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A masked client frame, built by hand (fin bit, opcode, payload under 64 KiB). */
export function rawFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const head = payload.length < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]) : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([head, mask, body]);
}

/**
 * A WebSocket spoken by hand over a raw TCP socket (no library between the test and the
 * wire): completes the handshake, then collects what the server sends. `closeCode()`
 * resolves with the code of the server's close frame (or null if the socket just ends).
 */
export async function rawWebSocket(server: StreamgradServer, headers: Record<string, string> = { Origin: server.url }): Promise<{ socket: import('node:net').Socket; received: () => Buffer; closeCode: () => Promise<number | null> }> {
  const { connect: tcp } = await import('node:net');
  const socket = tcp(server.port, '127.0.0.1');
  onCleanup(() => socket.destroy());
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
  let buffer = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => { buffer = Buffer.concat([buffer, d]); });
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const deadline = Date.now() + 5000;
  while (!buffer.includes('\r\n\r\n')) {
    if (Date.now() > deadline) throw new Error('no handshake response');
    await sleep(5);
  }
  const end = buffer.indexOf('\r\n\r\n') + 4;
  if (!buffer.subarray(0, end).toString().startsWith('HTTP/1.1 101')) throw new Error(`handshake refused: ${buffer.subarray(0, end).toString().split('\r\n')[0]}`);
  buffer = buffer.subarray(end);
  return {
    socket,
    received: () => buffer,
    async closeCode() {
      await Promise.race([ended, sleep(10_000)]);
      // walk the server's (unmasked) frames to the close frame
      let at = 0;
      while (at + 2 <= buffer.length) {
        const opcode = buffer[at] & 0x0f;
        let length = buffer[at + 1] & 0x7f;
        let start = at + 2;
        if (length === 126) { length = buffer.readUInt16BE(at + 2); start = at + 4; } else if (length === 127) { length = Number(buffer.readBigUInt64BE(at + 2)); start = at + 10; }
        if (opcode === 0x8) return length >= 2 ? buffer.readUInt16BE(start) : 1005;
        at = start + length;
      }
      return null;
    },
  };
}

/**
 * An NDJSON request to `path` kept open (chunked), with its answer's lines as they come:
 * `write` more of the body, `lines(n)` resolves once `n` answer lines are in (the version
 * line included), `end` sends the rest and resolves when the answer has ended.
 */
export function streamedNdjson(server: Pick<StreamgradServer, 'port'>, path: string): { received: string[]; write: (text: string) => void; lines: (n: number) => Promise<void>; end: (text?: string) => Promise<void> } {
  const received: string[] = [];
  let buffered = '', wake: () => void = () => undefined;
  const req = request({ host: '127.0.0.1', port: server.port, path, method: 'POST', headers: { 'Content-Type': 'application/x-ndjson', 'Transfer-Encoding': 'chunked' }, agent: false });
  const ended = new Promise<void>((resolve, reject) => {
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        buffered += text;
        for (let i = buffered.indexOf('\n'); i !== -1; i = buffered.indexOf('\n')) {
          received.push(buffered.slice(0, i));
          buffered = buffered.slice(i + 1);
        }
        wake();
      });
      res.on('end', resolve);
    });
    req.on('error', reject);
  });
  req.flushHeaders();
  return {
    received,
    write: (text) => void req.write(text),
    lines: (n) => new Promise<void>((resolve) => {
      wake = () => { if (received.length >= n) resolve(); };
      wake();
    }),
    end: (text) => {
      req.end(text);
      return ended;
    },
  };
}
