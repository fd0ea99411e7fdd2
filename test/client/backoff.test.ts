import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff } from '../../clients/node/backoff.ts';

describe('Backoff', () => {
  it('grows by the factor from initialMs up to maxMs, and starts over after reset()', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 });
    expect(Array.from({ length: 6 }, () => backoff.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoff.attempts).toBe(6);
    backoff.reset();
    expect(backoff.next()).toBe(100);
  });

  it('has the documented defaults: 250 ms, ×2, at most 10 s, 20% jitter', () => {
    const high = new Backoff({}, () => 0);
    expect(Array.from({ length: 8 }, () => high.next())).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    const low = new Backoff({}, () => 1);
    expect(low.next()).toBe(200);
  });

  it('jitter only shortens: every delay lies in [d·(1 − jitter), d] and never above maxMs', () => {
    fc.assert(fc.property(
      fc.double({ min: 0, max: 1000, noNaN: true }), fc.double({ min: 1, max: 5, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 30 }),
      (initialMs, factor, jitter, draws) => {
        const maxMs = initialMs * 20;
        let i = 0;
        const backoff = new Backoff({ initialMs, maxMs, factor, jitter }, () => draws[i++ % draws.length]);
        for (let n = 0; n < draws.length; n++) {
          const d = Math.min(maxMs, initialMs * factor ** n);
          const delay = backoff.next();
          expect(delay).toBeLessThanOrEqual(d);
          expect(delay).toBeGreaterThanOrEqual(d * (1 - jitter) - 1e-9);
        }
      },
    ));
  });

  it.each([
    [{ initialMs: -1 }, /backoff.initialMs: must be a finite number ≥ 0/],
    [{ initialMs: NaN }, /backoff.initialMs/],
    [{ initialMs: 500, maxMs: 100 }, /backoff.maxMs: must be a finite number ≥ backoff.initialMs \(500\)/],
    [{ factor: 0.5 }, /backoff.factor/],
    [{ jitter: 1.5 }, /backoff.jitter: must be a number from 0 to 1/],
    [{ maxMs: Infinity }, /backoff.maxMs/],
  ])('refuses %j', (options, message) => {
    expect(() => new Backoff(options)).toThrow(message);
  });
});
