import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as tcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { hostAllowed, ownHostnames } from '../../net/origin.ts';
import { serve } from '../../server/server.ts';
import { connect, handshakeStatus, onCleanup, sleep, startServer, testRun, TOKEN } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'streamgrad-static-'));
const dist = join(root, 'dist');
const SECRET = 'TOPSECRET-7f3a9c';
mkdirSync(join(dist, 'sub'), { recursive: true });
writeFileSync(join(dist, 'index.html'), '<!doctype html><title>streamgrad</title>');
writeFileSync(join(dist, 'app.js'), 'console.log(1);');
writeFileSync(join(dist, 'style.css'), 'body{}');
writeFileSync(join(dist, 'do..ts'), 'fine name');
writeFileSync(join(dist, 'sub', 'index.html'), '<p>sub</p>');
writeFileSync(join(dist, '.env'), `TOKEN=${SECRET}`);
writeFileSync(join(root, 'secret'), SECRET);
writeFileSync(join(root, 'package.json'), `{"secret":"${SECRET}"}`);
symlinkSync(join(root, 'secret'), join(dist, 'link.txt'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Sends `request` verbatim over TCP (no URL normalization) and returns the whole response. */
function raw(port: number, request: string): Promise<{ status: number; head: string; body: string; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = tcp(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head, ...rest] = text.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), head, body: rest.join('\r\n\r\n'), text });
    });
    socket.write(request);
  });
}
const get = (port: number, target: string, method = 'GET') => raw(port, `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);

describe('HTTP: static files, /healthz, /metrics, timeouts', () => {
  it('serves the dashboard files with their content types and the security headers', async () => {
    const server = await startServer({ staticDir: dist });
    const index = await get(server.port, '/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('<title>streamgrad</title>');
    expect(index.head).toMatch(/content-type: text\/html; charset=utf-8/i);
    expect(index.head).toMatch(/content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'/i);
    expect(index.head).toMatch(/x-content-type-options: nosniff/i);
    // WebAssembly may be compiled, JavaScript never evaluated from strings
    expect(index.head).not.toMatch(/'unsafe-eval'|'unsafe-inline'/);
    // no cross-origin isolation: the dashboard's WebAssembly memory is a plain one, which needs none
    expect(index.head).not.toMatch(/cross-origin-(opener|embedder)-policy/i);
    expect((await get(server.port, '/app.js')).head).toMatch(/content-type: text\/javascript/i);
    expect((await get(server.port, '/style.css?v=1')).head).toMatch(/content-type: text\/css/i);
    expect((await get(server.port, '/do..ts')).status).toBe(200);
    expect((await get(server.port, '/sub/')).body).toContain('<p>sub</p>');
    const head = await get(server.port, '/app.js', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const post = await get(server.port, '/app.js', 'POST');
    expect(post.status).toBe(405);
    expect(post.head).toMatch(/x-content-type-options: nosniff/i);
    expect((await get(server.port, '/missing.js')).status).toBe(404);
  });

  it('path traversal never leaks a byte from outside the served folder (RELIABILITY 38)', async () => {
    const server = await startServer({ staticDir: dist });
    const attacks: [string, number][] = [
      ['/../package.json', 403],
      ['/../secret', 403],
      ['/%2e%2e/%2e%2e/etc/passwd', 403],
      ['/%2E%2E/secret', 403],
      ['/..%2f..%2fsecret', 403],
      ['/..%2fpackage.json', 403],
      ['/sub/../../secret', 403],
      ['/%00', 400],
      ['/index.html%00.js', 400],
      ['/%zz', 400],
      ['/..\\x', 403],
      ['/..%5csecret', 403],
      ['/.env', 404],
      ['/%2eenv', 404],
      ['/link.txt', 404],
      ['//etc/passwd', 404],
      ['/%252e%252e/secret', 404],
      ['*', 400],
      ['http://127.0.0.1/../secret', 400],
    ];
    for (const [target, status] of attacks) {
      const response = await get(server.port, target);
      expect(response.status, target).toBe(status);
      expect(response.text, target).not.toContain(SECRET);
      expect(response.text, target).not.toContain('root:');
      expect(response.head, target).toMatch(/x-content-type-options: nosniff/i);
    }
  });

  it('a missing dashboard folder gives 404 for every file', async () => {
    const server = await startServer({ staticDir: join(root, 'not-built') });
    expect((await get(server.port, '/')).status).toBe(404);
    expect((await get(server.port, '/index.html')).status).toBe(404);
  });

  it('/healthz and /metrics answer with the runs, clients and counters', async () => {
    const run = testRun({ id: 'race-1' });
    const other = testRun({ id: 'race-2', paused: true });
    const server = await startServer({}, run, other);
    await connect(server);
    void run.start();
    await sleep(100);
    const health = await get(server.port, '/healthz');
    expect(health.status).toBe(200);
    expect(health.head).toMatch(/content-type: application\/json/i);
    expect(health.head).toMatch(/content-security-policy/i);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok', runs: 2, clients: 1, uptime: expect.any(Number) });
    const metrics = await get(server.port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.head).toMatch(/content-type: text\/plain; version=0\.0\.4/i);
    for (const name of ['streamgrad_steps_total', 'streamgrad_samples_total', 'streamgrad_rejected_samples_total', 'streamgrad_skipped_steps_total', 'streamgrad_loss', 'streamgrad_samples_per_second', 'streamgrad_clients', 'streamgrad_dropped_frames_total']) {
      expect(metrics.body, name).toContain(`# TYPE ${name} `);
    }
    const steps = Number(/streamgrad_steps_total\{run="race-1"\} (\d+)/.exec(metrics.body)?.[1]);
    expect(steps).toBeGreaterThan(0);
    expect(metrics.body).toMatch(/streamgrad_steps_total\{run="race-2"\} 0/);
    expect(metrics.body).toMatch(/streamgrad_clients 1/);
    expect(metrics.body).toMatch(/# TYPE streamgrad_steps_total counter/);
  });

  it('two servers in one process keep separate metrics', async () => {
    const a = await startServer({}, testRun({ id: 'only-a', paused: true }));
    const b = await startServer({}, testRun({ id: 'only-b', paused: true }));
    const ma = (await get(a.port, '/metrics')).body;
    const mb = (await get(b.port, '/metrics')).body;
    expect(ma).toContain('only-a');
    expect(ma).not.toContain('only-b');
    expect(mb).toContain('only-b');
  });

  it('on loopback it answers only to loopback host names: a rebound domain gets 403 for files, /metrics and /ws', async () => {
    const server = await startServer({}, testRun());
    const as = (host: string, target: string) => raw(server.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    for (const target of ['/', '/metrics', '/healthz']) {
      expect((await as(`evil.example:${server.port}`, target)).status, target).toBe(403);
      expect((await as(`127.0.0.1.evil.example`, target)).status, target).toBe(403);
      expect((await as(`localhost:${server.port}`, target)).status, target).not.toBe(403);
      expect((await as('127.0.0.1', target)).status, target).not.toBe(403);
      expect((await as(`[::1]:${server.port}`, target)).status, target).not.toBe(403);
    }
    const upgrade = (host: string) => raw(server.port, `GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://evil.example:${server.port}\r\n\r\n`);
    expect((await upgrade(`evil.example:${server.port}`)).status).toBe(403);
    expect(hostAllowed({ headers: {} } as IncomingMessage, ownHostnames('127.0.0.1'))).toBe(false); // no Host header at all
    expect(ownHostnames('0.0.0.0')).toBeNull(); // reached under names it cannot know
  });

  it('the WebSocket lives at /ws only; a plain GET there is 426', async () => {
    const server = await startServer();
    expect((await get(server.port, '/ws')).status).toBe(426);
    const wrongPath = await raw(server.port, `GET /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    expect(wrongPath.status).toBe(404);
  });

  it('over maxClients, handshakes get 503 and the clients already in are unaffected (RELIABILITY 34)', async () => {
    const server = await startServer({ maxClients: 3 }, testRun());
    const clients = await Promise.all([connect(server), connect(server), connect(server)]);
    expect(await handshakeStatus(server, { Origin: server.url })).toBe(503);
    clients[0].send({ type: 'subscribe', run: 'a', channels: ['snapshots'] });
    await clients[0].frame();
    clients[1].ws.close();
    await clients[1].closed;
    await clients[0].until(() => server.stats.clients === 2, 'the server to see the close');
    expect(await handshakeStatus(server, { Origin: server.url })).toBe(101);
  });

  it('slowloris: a client dribbling its headers gets 408 within headersTimeout while others are served (RELIABILITY 39)', async () => {
    const server = await startServer({ headersTimeoutMs: 1000 }, testRun());
    const socket = tcp(server.port, '127.0.0.1');
    onCleanup(() => socket.destroy());
    let received = '';
    socket.on('data', (d) => { received += d.toString('latin1'); });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const started = performance.now();
    const header = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ';
    let i = 0;
    const drip = setInterval(() => { if (!socket.destroyed) socket.write(header[i++ % header.length]); }, 100);
    onCleanup(() => clearInterval(drip));
    // meanwhile others are served
    await sleep(300);
    const t = performance.now();
    expect((await get(server.port, '/healthz')).status).toBe(200);
    expect(performance.now() - t).toBeLessThan(500);
    await Promise.race([closed, sleep(5000)]);
    clearInterval(drip);
    const elapsed = performance.now() - started;
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(elapsed).toBeLessThan(1000 + 1500); // headersTimeout + the check interval (250 ms) + slack
  });

  it('a port in use rejects serve() with EADDRINUSE and leaves no timer behind', async () => {
    const server = await startServer();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await expect(serve({ port: server.port, token: TOKEN })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(timers()).toBe(before);
  });
});
