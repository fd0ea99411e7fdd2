// What a test file starts in beforeAll (sharedStart, forThisFile, reading): stopped once it
// is up even when the hook gave up on it, read through a handle that follows a restart.
// A real nats-server stands for any process a file starts.
import { describe, expect, it } from 'vitest';
import { forThisFile, reading, sharedStart } from './for-this-file.ts';
import { alive, listening } from './local-server.ts';
import { findNatsServer, natsServerForThisFile, sharedNatsServer } from './nats-server.ts';

describe('sharedStart', () => {
  it('a start cut short (a beforeAll past its timeout, the process still coming up) is stopped all the same once it is up', async () => {
    const stopped: number[] = [];
    const shared = sharedStart('a slow thing', () => new Promise<number>((resolve) => setTimeout(() => resolve(7), 50)), async (n) => { stopped.push(n); });
    const starting = shared.start(); // the hook gave up on it: afterAll runs at once
    const stopping = shared.stop();
    expect(stopped).toEqual([]); // not before it is up
    await stopping;
    await starting;
    expect(stopped).toEqual([7]);
  });

  it('stops nothing when the start failed or never ran, and names the thing read before it runs', async () => {
    const stopped: string[] = [];
    const never = sharedStart('a thing that never started', async () => 'up', async (s) => { stopped.push(s); });
    await never.stop();
    expect(() => never.current()).toThrow(/a thing that never started is not running/);
    const failing = sharedStart('a thing that fails', () => Promise.reject(new Error('no port')), async (s: string) => { stopped.push(s); });
    await expect(failing.start()).rejects.toThrow('no port');
    await failing.stop();
    expect(stopped).toEqual([]);
  });
});

describe('reading', () => {
  it('reads the thing running now, methods bound to it, and is not a promise', async () => {
    let current = { n: 1, get() { return this.n; } };
    const handle = reading(() => current);
    expect(handle.get()).toBe(1);
    current = { n: 2, get() { return this.n; } };
    expect(handle.n).toBe(2);
    expect(handle.get()).toBe(2);
    expect(await Promise.resolve(handle)).toBe(handle); // `then` is not read through
  });
});

describe.skipIf(findNatsServer() === null)('a nats-server started for a block', () => {
  let pid: number | undefined;
  let firstPid: number | undefined;

  describe('the block', () => {
    const server = natsServerForThisFile();
    const reached = forThisFile(sharedStart('a socket to it', () => listening(server.port), async () => undefined));

    it('is up for its tests, and its handle follows a restart', async () => {
      expect(reached()).toBe(true);
      firstPid = server.pid;
      await server.halt();
      expect(server.pid).toBeUndefined();
      await server.start();
      pid = server.pid;
      expect(pid).toBeTypeOf('number');
      expect(pid).not.toBe(firstPid);
    });
  });

  it('is stopped after the block, its processes gone', () => {
    const pids = [firstPid, pid];
    expect(pids.map((p) => p !== undefined && !alive(p))).toEqual([true, true]);
  });

  it('a start cut short is stopped once it is up: its process gone, its port closed', async () => {
    const shared = sharedNatsServer();
    const starting = shared.start();
    await shared.stop();
    await starting;
    try {
      expect(shared.server.pid).toBeUndefined();
      expect(await listening(shared.server.port)).toBe(false);
    } finally {
      await shared.server.stop(); // left running only if the test fails
    }
  });
});
