import { describe, expect, it } from 'vitest';
import { StreamgradError } from '../../core/errors.ts';
import { paced } from '../../sources/paced.ts';

describe('paced: a pull source at a human pace', () => {
  it('lets samples through at about the given rate, in order, and ends with its source', async () => {
    const source = Array.from({ length: 60 }, (_, i) => i);
    const started = performance.now();
    const got: number[] = [];
    for await (const v of paced(source, { samplesPerSecond: 200 })) got.push(v);
    const seconds = (performance.now() - started) / 1000;
    expect(got).toEqual(source);
    // 60 samples at 200/s: 0.3 s (a loaded machine may be late, never much early)
    expect(seconds).toBeGreaterThan(0.25);
    expect(seconds).toBeLessThan(3);
  });

  it('after a stall (a paused consumer) releases at most maxBurst at once, then keeps the pace', async () => {
    const it = paced(Array.from({ length: 1000 }, (_, i) => i), { samplesPerSecond: 100, maxBurst: 10 })[Symbol.asyncIterator]();
    await it.next();
    await new Promise((resolve) => setTimeout(resolve, 500)); // 50 owed
    const t = performance.now();
    for (let i = 0; i < 10; i++) await it.next(); // the burst: at once
    const burst = performance.now() - t;
    for (let i = 0; i < 10; i++) await it.next(); // then 10 more at 100/s: about 0.1 s
    const paced10 = performance.now() - t - burst;
    expect(burst).toBeLessThan(80);
    expect(paced10).toBeGreaterThan(60);
    await it.return?.(undefined);
  });

  it('refuses a rate that is not a positive number', async () => {
    await expect(paced([1], { samplesPerSecond: 0 }).next()).rejects.toThrow(StreamgradError);
    await expect(paced([1], { samplesPerSecond: Number.NaN }).next()).rejects.toThrow(/samplesPerSecond/);
  });
});
