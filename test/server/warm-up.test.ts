import { describe, expect, it } from 'vitest';
import { serve, type ServeOptions } from '../../server/server.ts';
import { WARM_UP_HEADER } from '../../server/warm-up.ts';
import { connect, handshakeAt, onCleanup, testRun } from './helpers.ts';

/** serve() itself, in this thread (stats read in place), with its log kept. */
async function startServer(options: ServeOptions) {
  const lines: string[] = [];
  const server = await serve({ port: 0, staticDir: '/nonexistent-streamgrad-dist', log: (line) => lines.push(line), ...options });
  onCleanup(() => server.close());
  return { server, lines };
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const clientsGauge = async (url: string) => Number(/^streamgrad_clients (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);

/**
 * Issue 17 item 6: `warmUpHandshakes` — the server makes handshakes to itself as it starts
 * (server/warm-up.ts), through the same path as a client's, so that a first burst of
 * connections meets compiled code. What a client or an operator sees must not change.
 */
describe('warm-up handshakes', () => {
  it('are made in the background and counted, logged and listed nowhere but stats.warmUpHandshakes', async () => {
    const { server, lines } = await startServer({ warmUpHandshakes: 150 });
    server.addRun(testRun({ id: 'a' }));
    await until(() => server.stats.warmUpHandshakes === 150, '150 warm-up handshakes');
    expect(server.stats).toMatchObject({ clients: 0, refusedHandshakes: 0, droppedFrames: 0 });
    expect(await clientsGauge(server.url)).toBe(0);
    // no client line: the listening line and one line saying it warmed up
    await until(() => lines.some((line) => line.startsWith('warmed up')), 'the warm-up line');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^listening on /);
    expect(lines[1]).toMatch(/^warmed up: 150 handshakes to itself in \d+ ms$/);

    // a client afterwards is served and counted as always
    const client = await connect(server);
    const hello = await client.next('hello');
    expect(hello).toMatchObject({ type: 'hello', access: 'read-only', runs: [{ id: 'a' }] });
    expect(server.stats.clients).toBe(1);
    expect(await clientsGauge(server.url)).toBe(1);
    expect(lines.some((line) => / connected, read-only$/.test(line))).toBe(true);
  });

  it('a client that connects while the server warms up gets its hello, and is the only client counted', async () => {
    const { server } = await startServer({ warmUpHandshakes: 3000 });
    const client = await connect(server);
    expect(await client.next('hello')).toMatchObject({ type: 'hello', access: 'read-only' });
    expect(server.stats.clients).toBe(1);
    // it was served during the warm-up, not after it (3000 take far longer than one handshake)
    expect(server.stats.warmUpHandshakes).toBeLessThan(3000);
    await until(() => server.stats.warmUpHandshakes === 3000, '3000 warm-up handshakes', 120_000);
    expect(server.stats.clients).toBe(1);
  }, 180_000);

  it('the warm-up header is no way in: with a wrong secret, or after the warm-up, a handshake is checked as any other', async () => {
    const { server } = await startServer({ warmUpHandshakes: 3000 });
    // during the warm-up, with no Origin and no token: refused, whatever the header says
    expect(await handshakeAt(server.wsUrl, { [WARM_UP_HEADER]: '0'.repeat(32) })).toBe(403);
    expect(await handshakeAt(server.wsUrl, { [WARM_UP_HEADER]: '' })).toBe(403);
    await until(() => server.stats.warmUpHandshakes === 3000, '3000 warm-up handshakes', 120_000);
    expect(await handshakeAt(server.wsUrl, { [WARM_UP_HEADER]: '0'.repeat(32) })).toBe(403);
    expect(server.stats.refusedHandshakes).toBe(3);
    expect(server.stats.clients).toBe(0);
  }, 180_000);

  it('is off by default, and a bad count is refused naming the option', async () => {
    const { server } = await startServer({});
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.stats.warmUpHandshakes).toBe(0);
    await expect(serve({ port: 0, warmUpHandshakes: -1 })).rejects.toThrow(/warmUpHandshakes must be an integer in \[0, 100000\], got -1/);
    await expect(serve({ port: 0, warmUpHandshakes: 1.5 })).rejects.toThrow(/warmUpHandshakes/);
  });
});
