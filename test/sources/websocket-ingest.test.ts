import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { createIngestCounters, ingestStats } from '../../core/record.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import { createTrainer } from '../../core/trainer.ts';
import { serve, type StreamgradServer } from '../../server/server.ts';
import { WebSocketIngest, type WebSocketIngestOptions } from '../../sources/websocket-ingest.ts';
import { seededModel } from '../helpers/streams.ts';

const TOKEN = 'ingest-token-0123456789';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(options: Partial<WebSocketIngestOptions> = {}): Promise<{ server: StreamgradServer; ingest: WebSocketIngest; url: string }> {
  const ingestion = new WebSocketIngest({ token: TOKEN, ...options });
  const server = await serve({ port: 0, staticDir: '/nonexistent', ingest: ingestion });
  cleanups.push(() => server.close());
  return { server, ingest: ingestion, url: server.wsUrl.replace(/\/ws$/, '/ingest') };
}

/** A client that collects what it is sent. */
async function connect(url: string, headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }) {
  const ws = new WebSocket(url, { headers });
  cleanups.push(() => ws.terminate());
  const inbox: Record<string, unknown>[] = [];
  ws.on('message', (data) => inbox.push(JSON.parse(String(data)) as Record<string, unknown>));
  const closed = once(ws, 'close').then(([code]) => code as number);
  await once(ws, 'open');
  const until = async (n: number) => {
    const started = Date.now();
    while (inbox.length < n) {
      if (Date.now() - started > 5000) throw new Error(`waited for ${n} messages, got ${inbox.length}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return { ws, inbox, closed, until };
}

describe('WebSocket ingest at /ingest', () => {
  it('takes samples and arrays of samples, acks with counts, and training pulls them; bad ones are dead letters with message ids', async () => {
    const { ingest: source, url, server } = await setup();
    const trainer = createTrainer({ model: seededModel(2, [[4, 'tanh'], [1, 'linear']], 1), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
    const deadLetters = new MemoryDeadLetters();
    const counters = createIngestCounters();
    const run = new TrainingRun({ id: 'ws', trainer, source, prepare: ingest({ trainer, deadLetters, counters }), ingest: ingestStats(counters, () => source.queue.dropped) });
    server.addRun(run);
    const done = run.start();
    const client = await connect(url);
    client.ws.send(JSON.stringify({ x: [1, 2], y: [3] }));
    client.ws.send(JSON.stringify([{ x: [1, 2], y: [3] }, { x: [1], y: [3] }, { x: [0, 0], y: [1] }]));
    client.ws.send('{"x": [1,');
    await client.until(3);
    expect(client.inbox).toEqual([
      { type: 'ack', message: 1, received: 1, queued: 1, dropped: 0, rejected: 0 },
      { type: 'ack', message: 2, received: 3, queued: 3, dropped: 0, rejected: 0 },
      { type: 'ack', message: 3, received: 1, queued: 1, dropped: 0, rejected: 1 },
    ]);
    await source.close();
    await done;
    expect(trainer.counters.samples).toBe(3);
    expect(deadLetters.letters.map((l) => [l.messageId, l.code])).toEqual([['c1:2.1', 'SG_ERR_ARITY'], ['c1:3', 'SG_ERR_BAD_JSON']]);
    expect(run.ingest).toMatchObject({ read: 5, accepted: 3, rejected: 2, dropped: 0 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('streamgrad_dropped_samples_total{run="ws"} 0');
    expect(metrics).toContain('streamgrad_rejected_samples_total{run="ws"} 2');
  });

  it('requires the token: a wrong Bearer token is refused with 401; without a header the first message must authenticate', async () => {
    const { url } = await setup({ authTimeoutMs: 200 });
    const refused = new WebSocket(url, { headers: { Authorization: 'Bearer wrong' } });
    refused.on('error', () => undefined);
    cleanups.push(() => refused.terminate());
    const [, response] = await once(refused, 'unexpected-response');
    expect(response.statusCode).toBe(401);

    const late = await connect(url, {});
    late.ws.send(JSON.stringify({ x: [1, 2], y: [3] })); // not an auth message
    expect(await late.closed).toBe(1008);

    const silent = await connect(url, {});
    expect(await silent.closed).toBe(1008); // auth timeout

    const good = await connect(url, {});
    good.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
    good.ws.send(JSON.stringify({ x: [1, 2], y: [3] }));
    await good.until(2);
    expect(good.inbox[0]).toEqual({ type: 'auth-ok' });
    expect(good.inbox[1]).toMatchObject({ type: 'ack', queued: 1 });
  });

  it('closes 1003 on binary frames; a server without ingest answers /ingest with 404', async () => {
    const { url } = await setup();
    const client = await connect(url);
    client.ws.send(Buffer.from([1, 2, 3]));
    expect(await client.closed).toBe(1003);
    const bare = await serve({ port: 0, staticDir: '/nonexistent' });
    cleanups.push(() => bare.close());
    const ws = new WebSocket(bare.wsUrl.replace(/\/ws$/, '/ingest'), { headers: { Authorization: `Bearer ${TOKEN}` } });
    ws.on('error', () => undefined);
    cleanups.push(() => ws.terminate());
    const [, response] = await once(ws, 'unexpected-response');
    expect(response.statusCode).toBe(404);
  });

  it('a full drop-oldest queue drops and counts (acks say so); block pauses the sender until training makes room', async () => {
    const { ingest: dropping, url } = await setup({ queue: { capacity: 2, policy: 'drop-oldest' } });
    const client = await connect(url);
    client.ws.send(JSON.stringify(Array.from({ length: 5 }, () => ({ x: [1, 2], y: [3] }))));
    await client.until(1);
    expect(client.inbox[0]).toMatchObject({ received: 5, queued: 5, dropped: 3 });
    expect(dropping.queue.stats).toMatchObject({ size: 2, dropped: 3 });

    const { ingest: blocking, url: url2 } = await setup({ queue: { capacity: 2, policy: 'block' } });
    const sender = await connect(url2);
    for (let i = 0; i < 5; i++) sender.ws.send(JSON.stringify({ x: [i, 0], y: [0] }));
    await new Promise((r) => setTimeout(r, 50));
    expect(blocking.queue.size).toBe(2); // the third waits in the socket
    expect(sender.inbox).toHaveLength(2);
    const it = blocking[Symbol.asyncIterator]();
    const taken: unknown[] = [];
    for (let i = 0; i < 5; i++) taken.push(((await it.next()).value as { value: { x: number[] } }).value.x[0]);
    expect(taken).toEqual([0, 1, 2, 3, 4]); // nothing lost, order kept
    await sender.until(5);
    expect(blocking.queue.dropped).toBe(0);
  });

  /** The HTTP status of an /ingest handshake with `headers` (101 when it opened; the socket is then closed). */
  async function status(url: string, headers: Record<string, string>): Promise<number> {
    const ws = new WebSocket(url, { headers });
    ws.on('error', () => undefined);
    const opened = once(ws, 'open').then(() => 101);
    const refused = once(ws, 'unexpected-response').then(([, response]) => (response as { statusCode: number }).statusCode);
    const code = await Promise.race([opened, refused]);
    ws.terminate();
    return code;
  }

  it('checks the Origin as /ws does: a page of another site is refused 403 (token or not); the server\'s own page may authenticate by message (issue 17, case 7)', async () => {
    const { url, server } = await setup();
    expect(await status(url, { Origin: 'http://evil.example' })).toBe(403);
    expect(await status(url, { Origin: 'http://evil.example', Authorization: `Bearer ${TOKEN}` })).toBe(403);
    expect(await status(url, { Origin: 'null' })).toBe(403);
    const page = await connect(url, { Origin: server.url });
    page.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
    page.ws.send(JSON.stringify({ x: [1, 2], y: [3] }));
    await page.until(2);
    expect(page.inbox).toEqual([{ type: 'auth-ok' }, expect.objectContaining({ type: 'ack', queued: 1 })]);
    expect(await status(url, { Authorization: `Bearer ${TOKEN}` })).toBe(101); // a sensor: no Origin, the token
  });

  it('sockets that never authenticate cannot take the sensors\' slots: 100 idle ones get at most 10 places, a sensor with the token still connects (issue 17, case 7)', async () => {
    const { url, ingest: source } = await setup();
    const idle: WebSocket[] = [];
    const statuses = await Promise.all(Array.from({ length: 100 }, async () => {
      const ws = new WebSocket(url); // no Origin, no token: a non-browser that would authenticate by message
      ws.on('error', () => undefined);
      idle.push(ws);
      cleanups.push(() => ws.terminate());
      return Promise.race([once(ws, 'open').then(() => 101), once(ws, 'unexpected-response').then(([, r]) => (r as { statusCode: number }).statusCode)]);
    }));
    expect(statuses.filter((s) => s === 101)).toHaveLength(10);
    expect(statuses.filter((s) => s === 503)).toHaveLength(90);
    expect(source.stats).toMatchObject({ connections: 10, unauthenticated: 10 });
    const sensor = await connect(url);
    sensor.ws.send(JSON.stringify({ x: [1, 2], y: [3] }));
    await sensor.until(1);
    expect(sensor.inbox[0]).toMatchObject({ type: 'ack', queued: 1 });
    expect(source.stats).toMatchObject({ connections: 11, unauthenticated: 10 });
  });

  it('an auth message that finds every authenticated slot taken closes 1013 (try again later); the waiting pool is bounded separately', async () => {
    const { url } = await setup({ maxConnections: 1, maxUnauthenticated: 1 });
    const sensor = await connect(url);
    expect(await status(url, { Authorization: `Bearer ${TOKEN}` })).toBe(503);
    const late = await connect(url, {});
    expect(await status(url, {})).toBe(503); // the one waiting place is taken
    late.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
    expect(await late.closed).toBe(1013);
    sensor.ws.close();
    await sensor.closed;
    const again = await connect(url, {});
    again.ws.send(JSON.stringify({ type: 'auth', token: TOKEN }));
    await again.until(1);
    expect(again.inbox[0]).toEqual({ type: 'auth-ok' });
  });
});

