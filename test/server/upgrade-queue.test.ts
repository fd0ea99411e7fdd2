import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MAX_EARLY_BYTES, UpgradeQueue } from '../../server/upgrade-queue.ts';
import { serve, type ServeOptions } from '../../server/server.ts';
import { onCleanup } from './helpers.ts';

/** serve() itself, in this thread (the onActivity hook counts accepted connections; serveInThread runs the same serve()). */
async function startServer(options: ServeOptions) {
  const server = await serve({ port: 0, staticDir: '/nonexistent-streamgrad-dist', ...options });
  onCleanup(() => server.close());
  return server;
}

/**
 * Issue 17 item 6: WebSocket upgrades are completed from a bounded FIFO queue a few ms at
 * a time, so that requests arriving during a burst are answered in between. Real sockets
 * throughout; the requests are written in one synchronous loop once the server has
 * accepted every connection, so that the server reads them all in one poll phase (the
 * situation of a burst) whatever the machine's speed.
 */

const upgradeRequest = (port: number, origin: string, path = '/ws') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
  + `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nOrigin: ${origin}\r\n\r\n`;

/** A connected TCP socket that keeps what it receives. */
interface Raw {
  readonly socket: Socket;
  received(): string;
  /** Resolves once the text received contains `text`. */
  waitFor(text: string): Promise<void>;
}

async function rawSockets(port: number, n: number): Promise<Raw[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<Raw>((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    onCleanup(() => socket.destroy());
    let text = '';
    const waiting: { text: string; resolve: () => void }[] = [];
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      for (const w of waiting.splice(0)) if (text.includes(w.text)) w.resolve(); else waiting.push(w);
    });
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({
      socket,
      received: () => text,
      waitFor: (t) => (text.includes(t) ? Promise.resolve() : new Promise((r) => waiting.push({ text: t, resolve: r }))),
    }));
    socket.once('error', reject);
  })));
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in /metrics`);
  return Number(line.split(' ')[1]);
}

/**
 * An http server whose upgrades go through an UpgradeQueue with an expensive completion
 * (3 ms of CPU, then a bare 101), each upgrade numbered by its path (`/7` is 7); with 41
 * connected raw sockets once the server has accepted every one.
 */
async function queuedServer(onRequest: (queued: number) => void) {
  const completed: number[] = [];
  const queue = new UpgradeQueue<{ socket: Duplex; head: Buffer; n: number }>((u) => {
    completed.push(u.n);
    const until = performance.now() + 3; // an expensive completion: 3 ms of CPU
    while (performance.now() < until) { /* busy */ }
    u.socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  }, { capacity: 100, sliceMs: 2, maxHoldMs: 50 });
  let accepted = 0;
  const http = createServer((_req, res) => {
    onRequest(queue.length);
    res.end('ok');
  });
  http.on('connection', () => accepted++);
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    queue.push({ socket, head, n: Number(req.url?.slice(1)) });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  onCleanup(() => new Promise<void>((r) => { http.close(() => r()); http.closeAllConnections(); }));
  const port = (http.address() as AddressInfo).port;
  const sockets = await rawSockets(port, 41);
  await until(() => accepted === 41, 'the server to accept every connection');
  return { queue, completed, port, sockets };
}

describe('the upgrade queue (issue 17 item 6)', () => {
  it('completes queued upgrades in arrival order, a slice at a time, answering other requests between slices', async () => {
    const answeredWhileQueued: number[] = [];
    const { queue, completed: order, port, sockets } = await queuedServer((queued) => answeredWhileQueued.push(queued));
    for (let i = 0; i < 40; i++) sockets[i].socket.write(upgradeRequest(port, 'x', `/${i}`));
    sockets[40].socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    await sockets[40].waitFor('\r\n\r\nok');
    await Promise.all(sockets.slice(0, 40).map((s) => s.waitFor(' 101 ')));
    expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // 40 × 3 ms could not be done in one slice: the plain request was answered in between
    expect(answeredWhileQueued).toHaveLength(1);
    expect(answeredWhileQueued[0]).toBeGreaterThan(0);
    expect(queue.completed).toBe(40);
  });

  it('a waiting socket that sends more than MAX_EARLY_BYTES before its 101 is destroyed and counted, never completed', async () => {
    const { queue, completed, port, sockets } = await queuedServer(() => undefined);
    for (let i = 0; i < 40; i++) sockets[i].socket.write(upgradeRequest(port, 'x', `/${i}`));
    // last in line, behind 120 ms of completions: its request and then 1 MiB
    sockets[40].socket.write(upgradeRequest(port, 'x', '/40'));
    sockets[40].socket.write(Buffer.alloc(MAX_EARLY_BYTES * 16));
    await Promise.all(sockets.slice(0, 40).map((s) => s.waitFor(' 101 ')));
    await until(() => queue.length === 0 && queue.abandoned === 1, 'the flooding socket to be dropped');
    expect(completed).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(sockets[40].received()).toBe('');
  });

  it('serve(): a /healthz written after 300 handshakes is answered before they are all completed', async () => {
    let accepted = 0;
    const server = await startServer({ maxClients: 1000, onActivity: () => accepted++ });
    const sockets = await rawSockets(server.port, 301);
    await until(() => accepted >= 301, 'the server to accept every connection');
    for (let i = 0; i < 300; i++) sockets[i].socket.write(upgradeRequest(server.port, server.url));
    sockets[300].socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n\r\n`);
    await sockets[300].waitFor('"status":"ok"');
    const health = JSON.parse(sockets[300].received().split('\r\n\r\n')[1]) as { clients: number };
    // before the queue, the 300 completions ran in the poll phase that read them, ahead of the /healthz
    expect(health.clients).toBeLessThan(300);
    await Promise.all(sockets.slice(0, 300).map((s) => s.waitFor('"type":"hello"')));
    expect(sockets.slice(0, 300).every((s) => s.received().startsWith('HTTP/1.1 101 '))).toBe(true);
    await until(() => server.stats.clients === 300, '300 clients');
    expect(await metric(server.url, 'streamgrad_queued_handshakes')).toBe(0);
  });

  it('over maxQueuedUpgrades waiting, a handshake is answered 503 naming the limit, and counted', async () => {
    let accepted = 0;
    const server = await startServer({ maxQueuedUpgrades: 5, onActivity: () => accepted++ });
    const sockets = await rawSockets(server.port, 30);
    await until(() => accepted >= 30, 'the server to accept every connection');
    for (const s of sockets) s.socket.write(upgradeRequest(server.port, server.url));
    await Promise.all(sockets.map((s) => s.waitFor('\r\n\r\n')));
    const refused = sockets.filter((s) => s.received().startsWith('HTTP/1.1 503 '));
    const opened = sockets.filter((s) => s.received().startsWith('HTTP/1.1 101 '));
    expect(refused.length + opened.length).toBe(30);
    expect(opened.length).toBeGreaterThanOrEqual(5);
    expect(refused.length).toBeGreaterThan(0);
    for (const s of refused) expect(s.received()).toContain('maxQueuedUpgrades');
    expect(await metric(server.url, 'streamgrad_handshakes_queue_full_total')).toBe(refused.length);
    expect(server.stats.refusedHandshakes).toBe(refused.length);
  });

  it('a socket closed while its handshake waits is dropped from the queue, never completed, and counted', async () => {
    let accepted = 0;
    const server = await startServer({ maxClients: 1000, onActivity: () => accepted++ });
    const sockets = await rawSockets(server.port, 300);
    await until(() => accepted >= 300, 'the server to accept every connection');
    for (const s of sockets) s.socket.write(upgradeRequest(server.port, server.url));
    // the last 200 reset their connection right after asking: most of them are still queued
    for (const s of sockets.slice(100)) s.socket.resetAndDestroy();
    await Promise.all(sockets.slice(0, 100).map((s) => s.waitFor('"type":"hello"')));
    await until(async () => await metric(server.url, 'streamgrad_queued_handshakes') === 0, 'the queue to empty');
    const abandoned = await metric(server.url, 'streamgrad_handshakes_abandoned_total');
    expect(abandoned).toBeGreaterThan(0);
    expect(abandoned).toBeLessThanOrEqual(200);
    // the ones completed before their reset was seen close like any client: only the 100 stay
    await until(() => server.stats.clients === 100, 'the 100 live clients to remain');
  });
  it('completions hold back while connections are accepted, in order once a turn accepts none, and for at most maxHoldMs', async () => {
    const turn = () => new Promise<void>((r) => setImmediate(r));
    const completed: number[] = [];
    let slow = false;
    const queue = new UpgradeQueue<{ socket: Duplex; head: Buffer; n: number }>((u) => {
      completed.push(u.n);
      for (const until = performance.now() + (slow ? 3 : 0); performance.now() < until;) { /* busy */ }
    }, { capacity: 10, sliceMs: 2, maxHoldMs: 30 });
    for (let n = 0; n < 3; n++) queue.push({ socket: new PassThrough(), head: Buffer.alloc(0), n });
    // a connection accepted every turn, for 10 turns: nothing completes
    for (let i = 0; i < 10; i++) {
      queue.accepted();
      await turn();
    }
    expect(completed).toEqual([]);
    expect(queue.held).toBeGreaterThanOrEqual(9);
    // a turn with no accept: all three, in order
    await turn();
    await turn();
    expect(completed).toEqual([0, 1, 2]);

    // accepts that never stop: completions still start within maxHoldMs
    for (let n = 3; n < 6; n++) queue.push({ socket: new PassThrough(), head: Buffer.alloc(0), n });
    const start = performance.now();
    while (completed.length < 6 && performance.now() - start < 1000) {
      queue.accepted();
      await turn();
    }
    expect(completed).toEqual([0, 1, 2, 3, 4, 5]);
    expect(performance.now() - start).toBeLessThan(500);
    expect(performance.now() - start).toBeGreaterThanOrEqual(25);

    // while accepts never stop: a slice every maxHoldMs (completions of 3 ms each, so a
    // 2 ms slice completes one), holding in between
    slow = true;
    for (let n = 6; n < 12; n++) queue.push({ socket: new PassThrough(), head: Buffer.alloc(0), n });
    const flood = performance.now();
    while (completed.length < 12 && performance.now() - flood < 5000) {
      queue.accepted();
      await turn();
    }
    const took = performance.now() - flood;
    expect(completed).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // six slices, each after a hold of 30 ms
    expect(took).toBeGreaterThanOrEqual(5 * 30);
    expect(took).toBeLessThan(4000);
  });

  it('without maxHoldMs, accepts never hold completions back', async () => {
    const completed: number[] = [];
    const queue = new UpgradeQueue<{ socket: Duplex; head: Buffer; n: number }>((u) => completed.push(u.n), { capacity: 10, sliceMs: 2 });
    queue.push({ socket: new PassThrough(), head: Buffer.alloc(0), n: 0 });
    queue.accepted();
    await new Promise<void>((r) => setImmediate(r));
    expect(completed).toEqual([0]);
    expect(queue.held).toBe(0);
  });

  it('serve(): a /healthz that connects behind 300 handshakes still in the accept queue is answered before they are completed', async () => {
    // libuv accepts one connection a turn: the 300 wait in the kernel's accept queue with
    // their requests written, the /healthz behind them. A worker thread makes them while
    // this thread (the server's) is held busy, so that the server meets them all at once.
    const server = await startServer({ maxClients: 1000 });
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(`
      const { workerData, parentPort } = require('node:worker_threads');
      const net = require('node:net');
      const { randomBytes } = require('node:crypto');
      const { port, origin, flag } = workerData;
      const sockets = [];
      let written = 0, hellos = 0;
      for (let i = 0; i < 300; i++) {
        const s = net.connect(port, '127.0.0.1');
        let text = '';
        s.on('error', () => undefined);
        s.on('data', (d) => { text += d.toString('latin1'); if (text.includes('"type":"hello"') && !s.hello) { s.hello = true; if (++hellos === 300) parentPort.postMessage({ hellos }); } });
        s.once('connect', () => {
          s.write('GET /ws HTTP/1.1\\r\\nHost: 127.0.0.1:' + port + '\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: ' + randomBytes(16).toString('base64') + '\\r\\nSec-WebSocket-Version: 13\\r\\nOrigin: ' + origin + '\\r\\n\\r\\n');
          if (++written < 300) return;
          const h = net.connect(port, '127.0.0.1');
          let body = '';
          h.once('connect', () => {
            h.write('GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1:' + port + '\\r\\nConnection: close\\r\\n\\r\\n');
            Atomics.store(flag, 0, 1); // everything is in the accept queue: let the server go
          });
          h.on('data', (d) => { body += d.toString('latin1'); });
          h.on('end', () => parentPort.postMessage({ health: JSON.parse(body.split('\\r\\n\\r\\n')[1]) }));
        });
        sockets.push(s);
      }
      parentPort.on('message', () => { for (const s of sockets) s.destroy(); parentPort.close(); });
    `, { eval: true, workerData: { port: server.port, origin: server.url, flag } });
    onCleanup(() => worker.terminate());
    const messages: { health?: { clients: number }; hellos?: number }[] = [];
    worker.on('message', (m) => messages.push(m));
    // the server's thread is busy (as with a burst it has not reached yet) until the worker is done
    const deadline = Date.now() + 20_000;
    while (Atomics.load(flag, 0) === 0 && Date.now() < deadline) { /* busy */ }
    expect(Atomics.load(flag, 0)).toBe(1);
    await until(() => messages.some((m) => m.health !== undefined) && messages.some((m) => m.hellos !== undefined), 'the /healthz answer and 300 hellos');
    const health = messages.find((m) => m.health !== undefined)!.health!;
    // completing as it accepted (one a turn), the server answered it with all 300 connected
    expect(health.clients).toBeLessThan(150);
    expect(messages.find((m) => m.hellos !== undefined)!.hellos).toBe(300);
    await until(() => server.stats.clients === 300, '300 clients');
    worker.postMessage('close');
  });
});
