/**
 * The large-error signal (core/drift/large-error.ts): a regression's losses as 0/1
 * indicators against a quantile of a reference window, frozen between drifts, estimated
 * afresh every `refresh` values; scale-free; its state continues bit for bit.
 */
import { describe, expect, it } from 'vitest';
import { HddmA } from '../../core/drift/hddm-a.ts';
import { LargeErrorSignal } from '../../core/drift/large-error.ts';
import { Rng } from '../../core/rng.ts';

/** Squared gaussian residuals: sd 0.1 before `change`, sd 0.3 after (a model that no longer fits). */
function losses(n: number, change: number, scale = 1): number[] {
  const rng = new Rng(3);
  return Array.from({ length: n }, (_, i) => scale * (rng.normal() * (i < change ? 0.1 : 0.3)) ** 2);
}

describe('LargeErrorSignal', () => {
  it('says null while the reference is collected, then 1 above its quantile (NumPy linear interpolation) and 0 at or below', () => {
    const signal = new LargeErrorSignal({ quantile: 0.9, reference: 10, refresh: 0 });
    const reference = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10];
    expect(reference.map((x) => signal.update(x))).toEqual(Array(10).fill(null));
    // numpy.quantile([1..10], 0.9) = 9.1
    expect(signal.current).toBeCloseTo(9.1, 12);
    expect([9.1, 9.2, 0, 100].map((x) => signal.update(x))).toEqual([0, 1, 0, 1]);
    // non-finite losses are not errors the detector should count
    expect(signal.update(NaN)).toBeNull();
  });

  it('settle skips values after a start and after rearm; rearm forgets the threshold', () => {
    const signal = new LargeErrorSignal({ reference: 10, settle: 3, refresh: 0 });
    const out = Array.from({ length: 14 }, (_, i) => signal.update(i));
    expect(out.slice(0, 13)).toEqual(Array(13).fill(null));
    // the reference was 3..12: the 0.9 quantile is 11.1
    expect(signal.current).toBeCloseTo(11.1, 12);
    expect(out[13]).toBe(1);
    signal.rearm();
    expect(signal.current).toBeNull();
    expect(Array.from({ length: 13 }, () => signal.update(1))).toEqual(Array(13).fill(null));
    expect(signal.current).toBe(1);
  });

  it('refresh: the threshold follows the latest reference every `refresh` values, and says renewed on that value only', () => {
    const signal = new LargeErrorSignal({ reference: 10, refresh: 20 });
    for (let i = 0; i < 10; i++) signal.update(100);
    expect(signal.current).toBe(100);
    const renewed: number[] = [];
    for (let i = 0; i < 40; i++) {
      signal.update(1);
      if (signal.renewed) renewed.push(i);
    }
    expect(renewed).toEqual([19, 39]);
    expect(signal.current).toBe(1);
  });

  it('is scale-free: losses ×1000 give the same indicators', () => {
    const a = new LargeErrorSignal(), b = new LargeErrorSignal();
    const small = losses(3000, 1500), large = losses(3000, 1500, 1000);
    expect(large.map((x) => b.update(x))).toEqual(small.map((x) => a.update(x)));
  });

  it('fed to HDDM_A: no drift on the stationary part, a drift within tens of samples of the change', () => {
    const signal = new LargeErrorSignal();
    const hddm = new HddmA();
    const drifts: number[] = [];
    for (const [i, x] of losses(6000, 4000).entries()) {
      const bit = signal.update(x);
      if (bit !== null && hddm.update(bit) === 'drift') drifts.push(i);
      if (signal.renewed) hddm.reset();
    }
    expect(drifts.length).toBeGreaterThan(0);
    expect(drifts[0]).toBeGreaterThanOrEqual(4000);
    expect(drifts[0] - 4000).toBeLessThan(60);
  });

  it('state() restored into a new signal continues bit for bit, in every phase', () => {
    const values = losses(4000, 2500);
    const whole = new LargeErrorSignal({ reference: 300, settle: 20, refresh: 700 });
    const expected = values.map((x, i) => {
      if (i === 3000) whole.rearm();
      return [whole.update(x), whole.renewed];
    });
    for (const cut of [5, 150, 320, 1000, 3010, 3200]) {
      const first = new LargeErrorSignal({ reference: 300, settle: 20, refresh: 700 });
      const got: unknown[] = [];
      for (let i = 0; i < cut; i++) {
        if (i === 3000) first.rearm();
        got.push([first.update(values[i]), first.renewed]);
      }
      const second = new LargeErrorSignal({ reference: 300, settle: 20, refresh: 700 });
      second.restore(JSON.parse(JSON.stringify(first.state())));
      for (let i = cut; i < values.length; i++) {
        if (i === 3000) second.rearm();
        got.push([second.update(values[i]), second.renewed]);
      }
      expect(got, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('names a bad parameter, and refuses the state of something else', () => {
    expect(() => new LargeErrorSignal({ quantile: 1 })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'quantile' }));
    expect(() => new LargeErrorSignal({ reference: 5 })).toThrow(/reference must be an integer in \[10, 100000\], got 5/);
    expect(() => new LargeErrorSignal({ settle: -1 })).toThrow(/settle must be an integer ≥ 0/);
    expect(() => new LargeErrorSignal({ reference: 500, refresh: 100 })).toThrow(/refresh must be 0 or an integer ≥ reference/);
    expect(() => new LargeErrorSignal().restore({ kind: 'adwin' } as never)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT' }));
  });
});
