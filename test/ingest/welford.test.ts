import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RunningStats } from '../../core/welford.ts';

/** Two-pass mean and population variance, in float64 with compensated sums for a trustworthy reference. */
function twoPass(values: readonly number[]): { mean: number; variance: number } {
  let sum = 0, c = 0;
  for (const v of values) { const y = v - c; const t = sum + y; c = t - sum - y; sum = t; }
  const mean = sum / values.length;
  let sq = 0; c = 0;
  for (const v of values) { const d = (v - mean) * (v - mean); const y = d - c; const t = sq + y; c = t - sq - y; sq = t; }
  return { mean, variance: sq / values.length };
}

const close = (a: number, b: number, rel = 1e-12) => Math.abs(a - b) <= rel * Math.max(Math.abs(b), 1e-300) || a === b;

describe('RunningStats (Welford)', () => {
  it('matches a two-pass mean and variance to 1e-12 (relative) on any scale, offset up to 10 sd', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 500 }),
        fc.constantFrom(0, 1, -3, 10),
        fc.constantFrom(1e-6, 1e-3, 1, 1e3, 1e6),
        (unit, offset, scale) => {
          const values = unit.map((u) => scale * (offset + u));
          const ref = twoPass(values);
          fc.pre(ref.variance > 1e-4 * scale * scale); // not a (near-)constant stream: see the zero-variance test
          const stats = new RunningStats(1);
          for (const v of values) stats.push([v]);
          expect(stats.count).toBe(values.length);
          expect(Math.abs(stats.mean[0] - ref.mean)).toBeLessThanOrEqual(1e-12 * Math.max(Math.abs(ref.mean), Math.sqrt(ref.variance)));
          expect(Math.abs(stats.variance(0) - ref.variance)).toBeLessThanOrEqual(1e-12 * ref.variance);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('matches two-pass to 1e-12 on well-scaled data of many dimensions', () => {
    const stats = new RunningStats(3);
    const cols: number[][] = [[], [], []];
    let s = 12345;
    const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 10_000; i++) {
      const row = [rand() * 10, 100 + rand(), -3 + rand() * rand()];
      stats.push(row);
      row.forEach((v, k) => cols[k].push(v));
    }
    cols.forEach((col, k) => {
      const ref = twoPass(col);
      expect(close(stats.mean[k], ref.mean)).toBe(true);
      expect(close(stats.variance(k), ref.variance)).toBe(true);
    });
  });

  it('merges exactly as if one had seen both streams (Chan et al.)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 0, maxLength: 200 }), fc.nat(200), (values, cut) => {
        const k = Math.min(cut, values.length);
        const a = new RunningStats(1), b = new RunningStats(1), all = new RunningStats(1);
        values.slice(0, k).forEach((v) => a.push([v]));
        values.slice(k).forEach((v) => b.push([v]));
        values.forEach((v) => all.push([v]));
        a.merge(b);
        expect(a.count).toBe(all.count);
        expect(Math.abs(a.mean[0] - all.mean[0])).toBeLessThanOrEqual(1e-9);
        expect(Math.abs(a.variance(0) - all.variance(0))).toBeLessThanOrEqual(1e-7 * Math.max(1, all.variance(0)));
      }),
    );
  });

  it('is zero-variance safe: a constant (or single) value has scale 1, never 0', () => {
    const stats = new RunningStats(2);
    expect(stats.scale(0)).toBe(1);
    stats.push([5, 1]);
    expect(stats.scale(0)).toBe(1);
    stats.push([5, 3]);
    stats.push([5, 5]);
    expect(stats.variance(0)).toBe(0);
    expect(stats.scale(0)).toBe(1);
    expect(stats.scale(1)).toBeCloseTo(Math.sqrt(8 / 3), 12);
  });

  it('state() is plain numbers and restore() round-trips it, refusing bad states by field', () => {
    const stats = new RunningStats(2);
    [[1, 2], [3, 5], [4, -1]].forEach((r) => stats.push(r));
    const state = JSON.parse(JSON.stringify(stats.state()));
    const copy = new RunningStats(2);
    copy.restore(state);
    expect(Array.from(copy.mean)).toEqual(Array.from(stats.mean));
    expect(Array.from(copy.m2)).toEqual(Array.from(stats.m2));
    expect(copy.count).toBe(3);
    expect(() => copy.restore({ ...state, mean: [1] })).toThrow(/stats\.mean: must be an array of 2/);
    expect(() => copy.restore({ ...state, m2: [1, -1] })).toThrow(/stats\.m2\[1\]/);
    expect(() => copy.restore({ ...state, count: 1.5 })).toThrow(/stats\.count/);
    expect(copy.count).toBe(3); // a refused state changes nothing
  });
});
