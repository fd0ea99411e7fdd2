import { firstValueFrom, share, take, toArray, zip } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type KineticsSample, michaelisMenten } from '../sources/michaelis-menten.ts';

const collect = (count: number, seed = 0, chunkSize?: number) =>
  firstValueFrom(michaelisMenten({ seed, chunkSize }).pipe(take(count), toArray()));

describe('michaelisMenten', () => {
  it('is deterministic for a seed: the same samples bit for bit, whatever the chunk size', async () => {
    const a = await collect(1000, 42);
    const b = await collect(1000, 42, 7);
    expect(b).toEqual(a);
    const c = await collect(1000, 43);
    expect(c).not.toEqual(a);
  });

  it('draws x = [Vmax, S, Km] from their ranges and y = [Vmax·S/(Km+S) + small noise]', async () => {
    const samples = await collect(5000, 1);
    const lo = [Infinity, Infinity, Infinity];
    const hi = [-Infinity, -Infinity, -Infinity];
    let sumResidual = 0;
    let sumSquares = 0;
    for (const { x, y } of samples) {
      x.forEach((v, i) => { lo[i] = Math.min(lo[i], v); hi[i] = Math.max(hi[i], v); });
      expect(y.length).toBe(1);
      const [v, s, k] = x;
      const residual = y[0] - (v * s) / (k + s);
      sumResidual += residual;
      sumSquares += residual * residual;
    }
    expect(lo[0]).toBeGreaterThanOrEqual(0.5);
    expect(hi[0]).toBeLessThan(2);
    expect(lo[1]).toBeGreaterThanOrEqual(0);
    expect(hi[1]).toBeLessThan(10);
    expect(lo[2]).toBeGreaterThanOrEqual(0.5);
    expect(hi[2]).toBeLessThan(5);
    // the draws cover their ranges
    expect(hi[1] - lo[1]).toBeGreaterThan(9.9);
    expect(Number.isFinite(sumSquares)).toBe(true);
    // gaussian noise, sd 0.01 by default: mean ≈ 0, sd ≈ 0.01
    expect(Math.abs(sumResidual / samples.length)).toBeLessThan(0.001);
    expect(Math.sqrt(sumSquares / samples.length)).toBeCloseTo(0.01, 3);
  });

  it('without noise gives the exact Michaelis–Menten rate', async () => {
    const samples = await firstValueFrom(michaelisMenten({ seed: 3, noise: 0, limit: 100 }).pipe(toArray()));
    expect(samples).toHaveLength(100);
    for (const { x: [v, s, k], y: [rate] } of samples) expect(rate).toBe((v * s) / (k + s));
  });

  it('completes after `limit` samples', async () => {
    const samples = await firstValueFrom(michaelisMenten({ limit: 600, chunkSize: 256 }).pipe(toArray()));
    expect(samples).toHaveLength(600);
  });

  it('yields to the event loop between chunks: a setTimeout(0) fires while it streams', async () => {
    let timerSet = false;
    let timerFired = false;
    let afterTimer = 0;
    await new Promise<void>((resolve, reject) => {
      michaelisMenten({ chunkSize: 64, limit: 200_000 }).subscribe({
        next() {
          if (!timerSet) {
            timerSet = true;
            setTimeout(() => { timerFired = true; }, 0);
          }
          if (timerFired) afterTimer++;
        },
        error: reject,
        complete: resolve,
      });
    });
    expect(timerFired).toBe(true);
    expect(afterTimer).toBeGreaterThan(0); // the timer ran before the stream was over
  });

  it('emits nothing synchronously, and unsubscribing cancels the pending chunk', async () => {
    const seen: KineticsSample[] = [];
    const subscription = michaelisMenten().subscribe((s) => seen.push(s));
    expect(seen).toHaveLength(0);
    subscription.unsubscribe();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toHaveLength(0);
  });

  it('feeds several consumers the same samples through share()', async () => {
    const shared = michaelisMenten({ seed: 5, limit: 500 }).pipe(share());
    const pairs = await firstValueFrom(zip(shared, shared).pipe(toArray()));
    expect(pairs).toHaveLength(500);
    for (const [a, b] of pairs) expect(a).toBe(b);
  });

  it('rejects bad settings with a config error naming the field', () => {
    expect(() => michaelisMenten({ noise: -1 })).toThrow(/noise/);
    expect(() => michaelisMenten({ chunkSize: 0 })).toThrow(/chunkSize/);
    expect(() => michaelisMenten({ seed: 0.5 })).toThrow(/seed/);
    expect(() => michaelisMenten({ km: [3, 1] })).toThrow(/km/);
  });
});
