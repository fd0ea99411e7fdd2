import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect, sleep, startServer, testRun, W2 } from './helpers.ts';

const socketOf = (ws: unknown) => (ws as { _socket: Socket })._socket;

/** Steps per second of `run` over `ms`. */
async function stepRate(run: { trainer: { counters: { steps: number } } }, ms: number): Promise<number> {
  const s0 = run.trainer.counters.steps, t0 = performance.now();
  await sleep(ms);
  return ((run.trainer.counters.steps - s0) * 1000) / (performance.now() - t0);
}

describe('slow and silent clients (RELIABILITY 30, 33)', () => {
  it('a client that never reads: frames dropped and counted, memory bounded, training unaffected, terminated after slowClientTimeout', async () => {
    const run = testRun({ inputs: 16, layers: W2 });
    const cap = 256 * 1024;
    const server = await startServer({ maxBufferedBytes: cap, slowClientTimeoutMs: 2000, maxRateHz: 30 }, run);
    const healthy = await connect(server);
    const stuck = await connect(server);
    void run.start();
    healthy.send({ type: 'subscribe', run: 'a', channels: ['snapshots', 'metrics'], rateHz: 10, dtype: 'float64' });
    await healthy.frame();
    const baseline = await stepRate(run, 700);

    socketOf(stuck.ws).pause(); // stops reading: the server's send buffer to it fills up
    stuck.send({ type: 'subscribe', run: 'a', channels: ['snapshots', 'metrics'], rateHz: 30, dtype: 'float64' });
    const memoryBefore = process.memoryUsage();
    await healthy.until(() => server.stats.droppedFrames > 0, 'dropped frames', 10_000);
    const during = await stepRate(run, 700);
    const memoryAfter = process.memoryUsage();
    const growth = (memoryAfter.heapUsed + memoryAfter.arrayBuffers - memoryBefore.heapUsed - memoryBefore.arrayBuffers) / 2 ** 20;

    // the healthy client keeps getting frames meanwhile
    healthy.frames.length = 0;
    await healthy.until(() => healthy.frames.length >= 3, 'frames for the healthy client');
    await healthy.until(() => server.stats.slowTerminations === 1, 'the stuck client to be terminated', 10_000);
    await healthy.until(() => server.stats.clients === 1, 'the server to drop it');
    const droppedMetric = /streamgrad_dropped_frames_total (\d+)/.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1];
    console.log(`never-reading client: ${server.stats.droppedFrames} frames dropped, heap+arrayBuffers growth ${growth.toFixed(1)} MiB, steps/s ${baseline.toFixed(0)} before vs ${during.toFixed(0)} while stuck`);
    expect(Number(droppedMetric)).toBe(server.stats.droppedFrames);
    expect(growth).toBeLessThan(32); // at most the cap plus a frame is held for it, not a queue
    expect(during).toBeGreaterThan(baseline * 0.25); // loose: two test files (and the clients here) share two cores
  });

  it('a peer that stops answering pings is terminated within two heartbeat intervals; a live one stays', async () => {
    const server = await startServer({ heartbeatMs: 150 });
    const live = await connect(server);
    const silent = await connect(server, { autoPong: false });
    const started = performance.now();
    await silent.closed;
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(2 * 150 + 400);
    expect(server.stats.heartbeatTerminations).toBe(1);
    await sleep(400);
    expect(live.closeCode).toBeNull();
    expect(server.stats.clients).toBe(1);
  });
});
