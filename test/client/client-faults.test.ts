import { createServer, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { ConnectionState } from '../../clients/node/client.ts';
import type { ClientMessage, HelloMessage, RunInfo } from '../../server/protocol.ts';
import { encodeFrame } from '../../server/snapshot-frame.ts';
import { first, firstN, liveClient, onCleanup, sleep, until, watchCli } from './live.ts';

/**
 * What the client does with a server that misbehaves or refuses: a stand-in server (raw
 * `ws`, no streamgrad logic) sends exactly the bytes and close codes each case needs.
 */

const run: RunInfo = {
  id: 'a', state: 'running', topology: { inputSize: 2, layers: [{ units: 1, activation: 'linear' }] }, loss: 'mse',
  optimizer: { type: 'sgd', learningRate: 0.1 }, parameters: 3, step: 0,
};
const hello = (o: Partial<HelloMessage> = {}): string => JSON.stringify({
  type: 'hello', protocol: 1, server: 'stand-in', access: 'read-only', runs: [run], limits: { maxPayload: 65536, maxRateHz: 30, commandsPerMinute: 100 }, ...o,
});

interface Peer {
  readonly ws: WebSocket;
  readonly request: IncomingMessage;
  /** The client messages this connection got so far. */
  readonly received: ClientMessage[];
}

interface StandIn {
  readonly url: string;
  readonly peers: Peer[];
  /** Handshakes seen, refused ones included. */
  handshakes: number;
}

/**
 * A stand-in server on loopback port 0. `refuse(n)` may answer the n-th handshake (0-based)
 * with an HTTP status instead; `onPeer` runs for each accepted connection (default: send the hello).
 */
async function standIn(o: { refuse?: (n: number) => number | null; onPeer?: (peer: Peer, n: number) => void } = {}): Promise<StandIn> {
  const http = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const state: StandIn = { url: '', peers: [], handshakes: 0 };
  http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const n = state.handshakes++;
    const status = o.refuse?.(n) ?? null;
    if (status !== null) {
      socket.end(`HTTP/1.1 ${status} Nope\r\nConnection: close\r\nContent-Length: 10\r\n\r\nstand-in\x1b!`);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const peer: Peer = { ws, request, received: [] };
      ws.on('message', (data) => peer.received.push(JSON.parse(String(data)) as ClientMessage));
      ws.on('error', () => undefined);
      state.peers.push(peer);
      (o.onPeer ?? ((p) => p.ws.send(hello())))(peer, state.peers.length - 1);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  (state as { url: string }).url = `ws://127.0.0.1:${port}/ws`;
  onCleanup(() => new Promise<void>((resolve) => {
    for (const p of state.peers) p.ws.terminate();
    wss.close();
    http.closeAllConnections();
    http.close(() => resolve());
  }));
  return state;
}

/** `streamgrad watch ARGS` as a child process, interrupted (SIGINT) once `stop(stdout)` holds; killed after 50 s (a loaded machine starts it slowly). */

const frame = () => encodeFrame('parameters', 'float64', 'a', 5, { inputSize: 2, units: [1] }, new Float64Array([1, 2, 3]));

describe('a misbehaving server', () => {
  it('malformed frames and messages are counted and skipped, never thrown; good ones still arrive', async () => {
    const server = await standIn({
      onPeer: ({ ws }) => {
        ws.send(hello());
        ws.send(Buffer.from('garbage'), { binary: true });
        ws.send(frame().subarray(0, 30), { binary: true }); // truncated
        const bad = frame();
        bad[4] = 9; // unknown kind
        ws.send(bad, { binary: true });
        ws.send('{"type":');
        ws.send('{"type":"rm -rf"}');
        ws.send('{"type":"metrics"}'); // no run
        ws.send('[1,2]');
        ws.send(frame(), { binary: true });
      },
    });
    const client = liveClient(server.url);
    const snapshot = await first(client.snapshots$('a'));
    expect(Array.from(snapshot.values)).toEqual([1, 2, 3]);
    expect(client.stats).toMatchObject({ badFrames: 3, frames: 1, badMessages: 4, messages: 1 });
  });

  it('messages of a known type with fields of the wrong type are dropped and counted before any code reads them (issue #17 item 10)', async () => {
    const good = { type: 'metrics', run: 'a', step: 3, size: 1, loss: 0.5, gradNorm: 1, learningRate: 0.1, updated: true, metrics: { window: 10, count: 3, loss: 0.5, mae: 0.4 }, samplesPerSecond: 100, counters: { steps: 3 }, state: 'running' };
    const bad = [
      { ...good, metrics: null },
      { ...good, metrics: { window: 10, count: 3, loss: 'low', mae: 0.4 } },
      { ...good, counters: null },
      { ...good, step: -1 },
      { ...good, state: 'exploded' },
      { type: 'run', run: { ...run, topology: null } },
      { type: 'run', run: { ...run, optimizer: { type: 'sgd' } } },
      { type: 'event', run: 'a', event: 'started', step: 1, time: 0, detail: 'x' },
      { type: 'ack', id: 'x', command: 'pause' },
    ];
    const server = await standIn({
      onPeer: ({ ws }) => {
        ws.send(hello({ runs: [run, { ...run, id: 'b', topology: { inputSize: 2, layers: null } }] as unknown as RunInfo[] }));
        ws.send(hello());
        for (const m of bad) ws.send(JSON.stringify(m));
        ws.send(JSON.stringify(good));
      },
    });
    const client = liveClient(server.url);
    const metrics = await first(client.metrics$('a'));
    expect(metrics.metrics.loss).toBe(0.5);
    expect(client.stats).toMatchObject({ badMessages: bad.length + 1, messages: 2 });
    expect((await first(client.runs$)).map((r) => r.id)).toEqual(['a']);
  });

  it('streamgrad watch stays up on a metrics message whose metrics is null, and prints the next good one (issue #17 item 10)', { timeout: 90_000 }, async () => {
    const good = { type: 'metrics', run: 'a', step: 7, size: 1, loss: 0.5, gradNorm: 1, learningRate: 0.1, updated: true, metrics: { window: 10, count: 7, loss: 0.25, mae: 0.4 }, samplesPerSecond: 100, counters: {}, state: 'running' };
    const server = await standIn({
      onPeer: ({ ws }) => {
        ws.send(hello());
        ws.on('message', (data) => {
          const m = JSON.parse(String(data)) as { type: string; id: string };
          if (m.type !== 'subscribe') return;
          ws.send(JSON.stringify({ type: 'ack', id: m.id, command: 'subscribe', duplicate: false, result: { run: '*', channels: ['metrics', 'events'], rateHz: 10, dtype: 'float32' } }));
          ws.send(JSON.stringify({ ...good, step: 6, metrics: null }));
          ws.send(JSON.stringify({ ...good, step: 6, metrics: { window: 10 } }));
          setTimeout(() => ws.send(JSON.stringify(good)), 100);
        });
      },
    });
    const runs = await Promise.all([false, true].map((json) => watchCli([server.url, ...(json ? ['--json'] : [])], (out) => out.includes(json ? '"step":7' : 'step 7'))));
    for (const [i, { code, stdout, stderr }] of runs.entries()) {
      expect(stderr).not.toMatch(/TypeError|internal error/);
      expect(code).toBe(0);
      expect(stdout).not.toMatch(/step 6|"step":6/);
      expect(stdout).toMatch(i === 1 ? /"step":7/ : /^a {2}running {2}step 7 {2}mse 0\.25, mae 0\.4/m);
    }
  });

  it('a hello of another protocol version ends the client with SG_ERR_PROTOCOL, without reconnecting', async () => {
    const server = await standIn({ onPeer: ({ ws }) => ws.send(hello({ protocol: 2 as 1 })) });
    const client = liveClient(server.url);
    const error = await new Promise((resolve) => client.state$.subscribe({ error: resolve }));
    expect(error).toMatchObject({ name: 'ConnectionError', code: 'SG_ERR_PROTOCOL' });
    await sleep(100);
    expect(server.handshakes).toBe(1);
  });

  it('a close for a policy violation (1008) is final; a 1013 (try again later) or 1001 is retried', async () => {
    const closes = [1013, 1001, 1008];
    const server = await standIn({ onPeer: ({ ws }, n) => { ws.send(hello()); ws.close(closes[n], n === 2 ? 'too many \x1b[2Jmessages' : ''); } });
    const client = liveClient(server.url);
    const states: ConnectionState[] = [];
    const error = await new Promise((resolve) => client.state$.subscribe({ next: (s) => states.push(s), error: resolve }));
    expect(error).toMatchObject({ name: 'ConnectionError', code: 'SG_ERR_REFUSED', details: { closeCode: 1008 } });
    expect((error as Error).message).toMatch(/closed the connection: 1008 policy violation \(too many +\[2Jmessages\)$/);
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'open', 'reconnecting', 'open', 'closed']);
    expect(server.handshakes).toBe(3);
    expect(client.stats.reconnects).toBe(2);
  });

  it('a 503 or 429 at the handshake is retried with backoff; a 4xx such as 404 is final, with a clean message', async () => {
    const busy = await standIn({ refuse: (n) => [503, 429][n] ?? null });
    const patient = liveClient(busy.url);
    expect((await first(patient.hello$)).server).toBe('stand-in');
    expect(busy.handshakes).toBe(3);

    const missing = await standIn({ refuse: () => 404 });
    const client = liveClient(missing.url);
    const error = await new Promise((resolve) => client.runs$.subscribe({ error: resolve }));
    expect(error).toMatchObject({ name: 'ConnectionError', code: 'SG_ERR_REFUSED', details: { status: 404 } });
    expect((error as Error).message).toMatch(/refused the connection: 404 Nope \(the server refused the handshake\): stand-in !$/);
    await sleep(100);
    expect(missing.handshakes).toBe(1);
  });

  it('sends the token once, as a Bearer header at the handshake, and the page origin of the URL; never in a message', async () => {
    const server = await standIn({ onPeer: ({ ws }) => { ws.send(hello({ access: 'control' })); } });
    const client = liveClient(server.url, { token: 's3cret' });
    await first(client.hello$);
    void client.command('a', 'pause').catch(() => undefined);
    await until(() => server.peers[0].received.length === 1);
    const { headers } = server.peers[0].request;
    expect(headers.authorization).toBe('Bearer s3cret');
    expect(headers.origin).toBe(server.url.replace('ws://', 'http://').replace('/ws', ''));
    expect(JSON.stringify(server.peers[0].received)).not.toContain('s3cret');
  });
});

describe('subscriptions across connections', () => {
  it('are re-sent after a reconnect under fresh ids, the latest per run, minus the unsubscribed', async () => {
    const server = await standIn({
      onPeer: (peer) => {
        peer.ws.send(hello());
        peer.ws.on('message', (data) => {
          const m = JSON.parse(String(data)) as ClientMessage;
          if ('id' in m && m.id !== undefined) peer.ws.send(JSON.stringify({ type: 'ack', id: m.id, command: m.type, duplicate: false }));
        });
      },
    });
    const client = liveClient(server.url);
    await client.subscribe('a', ['metrics']);
    await client.subscribe('a', ['metrics', 'snapshots'], { rateHz: 2, dtype: 'float64' }); // replaces the first
    await client.subscribe('b', ['events']);
    await client.subscribe('c', ['events']);
    await client.unsubscribe('c');
    const before = server.peers[0].received.filter((m) => m.type === 'subscribe');

    server.peers[0].ws.terminate();
    await until(() => server.peers.length === 2 && server.peers[1].received.length === 2, 5000, 're-subscriptions');
    const again = server.peers[1].received;
    expect(again.map((m) => ({ ...m, id: undefined }))).toEqual([
      { type: 'subscribe', run: 'a', channels: ['metrics', 'snapshots'], rateHz: 2, dtype: 'float64', id: undefined },
      { type: 'subscribe', run: 'b', channels: ['events'], id: undefined },
    ]);
    const ids = new Set([...before, ...again].map((m) => (m as { id?: string }).id));
    expect(ids.size).toBe(before.length + again.length); // fresh ids: a server that de-duplicates ids cannot swallow them

    // while disconnected, unsubscribe resolves at once: the next connection starts without it
    server.peers[1].ws.terminate();
    await first(client.state$, (s) => s === 'reconnecting');
    await client.unsubscribe('b');
    await until(() => server.peers.length === 3 && server.peers[2].received.length >= 1, 5000, 'third connection');
    await sleep(50);
    expect(server.peers[2].received.map((m) => m.type === 'subscribe' && m.run)).toEqual(['a']);
  });

  it('a subscribe made before the connection opens goes out once it does; run-removed forgets the subscription', async () => {
    const server = await standIn({
      onPeer: (peer) => {
        setTimeout(() => peer.ws.send(hello()), 50);
        peer.ws.on('message', (data) => {
          const m = JSON.parse(String(data)) as ClientMessage & { id: string };
          peer.ws.send(JSON.stringify({ type: 'ack', id: m.id, command: m.type, duplicate: false }));
          setTimeout(() => peer.ws.send(JSON.stringify({ type: 'run-removed', run: 'a' })), 10);
        });
      },
    });
    const client = liveClient(server.url);
    const runLists = firstN(client.runs$, 2);
    await client.subscribe('a', ['metrics']);
    expect((await runLists).map((runs) => runs.map((r) => r.id))).toEqual([['a'], []]);
    server.peers[0].ws.terminate();
    await until(() => server.peers.length === 2, 5000, 'reconnect');
    await sleep(100);
    expect(server.peers[1].received).toEqual([]); // nothing to re-send
  });
});
