import { firstValueFrom, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { blobs, blobsSamples } from '../../sources/blobs.ts';
import { conceptChangeSamples } from '../../sources/concept-change.ts';
import { michaelisMentenSamples } from '../../sources/michaelis-menten.ts';
import { separable, separableSamples } from '../../sources/separable.ts';
import { sine, sineSamples } from '../../sources/sine.ts';
import { spiralsSamples } from '../../sources/spirals.ts';
import { xorSamples } from '../../sources/xor.ts';
import type { Sample } from '../../core/sample.ts';

const take = (it: Iterable<Sample>, n: number) => {
  const out: Sample[] = [];
  for (const s of it) { out.push(s); if (out.length === n) break; }
  return out;
};
const ys = (s: Sample) => Array.from(s.y as ArrayLike<number>);

describe('simulated sensors', () => {
  it('are seeded: same seed, same samples (pull and Observable alike); another seed differs', async () => {
    const a = take(sineSamples({ seed: 5 }), 300);
    expect(await firstValueFrom(sine({ seed: 5, limit: 300, chunkSize: 7 }).pipe(toArray()))).toEqual(a);
    expect(take(sineSamples({ seed: 6 }), 300)).not.toEqual(a);
    expect(take(blobsSamples({ seed: 1 }), 50)).toEqual(await firstValueFrom(blobs({ seed: 1, limit: 50 }).pipe(toArray())));
  });

  it('noisy sine: y ≈ A·sin(ωt + φ) with the stated noise', () => {
    const samples = take(sineSamples({ seed: 1, amplitude: 2, frequency: 3, phase: 0.5, noise: 0.1 }), 20_000);
    const residuals = samples.map(({ x, y }) => ys({ x, y })[0] - 2 * Math.sin(3 * x[0] + 0.5));
    const sd = Math.sqrt(residuals.reduce((s, r) => s + r * r, 0) / residuals.length);
    expect(sd).toBeCloseTo(0.1, 2);
    expect(Math.min(...samples.map((s) => s.x[0]))).toBeGreaterThanOrEqual(-Math.PI);
  });

  it('XOR: label 1 exactly when the signs differ; balanced; one-hot on request', () => {
    const samples = take(xorSamples({ seed: 2 }), 4000);
    for (const { x, y } of samples) expect(ys({ x, y })).toEqual([(x[0] < 0) !== (x[1] < 0) ? 1 : 0]);
    const ones = samples.filter((s) => ys(s)[0] === 1).length;
    expect(ones / samples.length).toBeGreaterThan(0.45);
    expect(ones / samples.length).toBeLessThan(0.55);
    expect(ys(take(xorSamples({ seed: 2, encoding: 'one-hot' }), 1)[0]).reduce((a, b) => a + b)).toBe(1);
  });

  it('separable points: ±1 labels on the sides of one hyperplane, none within the margin; a perceptron-style check finds the plane consistent', async () => {
    const samples = take(separableSamples({ seed: 4, inputs: 3, margin: 0.15 }), 3000);
    // the same seed draws the same plane and points, pull and Observable alike
    expect(await firstValueFrom(separable({ seed: 4, inputs: 3, margin: 0.15, limit: 3000 }).pipe(toArray()))).toEqual(samples);
    const labels = samples.map((s) => ys(s)[0]);
    expect(new Set(labels)).toEqual(new Set([-1, 1]));
    // separable for real: the perceptron rule (bias as a constant input) reaches a pass without mistakes
    const w = [0, 0, 0, 0];
    let mistakes = Infinity;
    for (let pass = 0; pass < 200 && mistakes > 0; pass++) {
      mistakes = 0;
      for (const s of samples) {
        const x = [...Array.from(s.x), 1];
        const y = ys(s)[0];
        if (y * x.reduce((z, v, i) => z + v * w[i], 0) <= 0) {
          mistakes++;
          for (let i = 0; i < 4; i++) w[i] += y * x[i];
        }
      }
    }
    expect(mistakes).toBe(0);
    const positives = samples.filter((s) => ys(s)[0] === 1).length;
    expect(positives / samples.length).toBeGreaterThan(0.2);
    expect(positives / samples.length).toBeLessThan(0.8);
    for (const s of samples) for (const v of Array.from(s.x)) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    expect(() => separableSamples({ margin: 0.5 })).toThrow(/margin/);
    expect(() => separableSamples({ inputs: 0 })).toThrow(/inputs/);
  });

  it('two spirals: two classes of points within radius ~1, interleaved (point and its opposite differ in class)', () => {
    const samples = take(spiralsSamples({ seed: 3, noise: 0 }), 2000);
    for (const s of samples) {
      expect(Math.hypot(s.x[0], s.x[1])).toBeLessThanOrEqual(1 + 1e-12);
      expect(ys(s).reduce((a, b) => a + b)).toBe(1);
    }
    const counts = [0, 1].map((k) => samples.filter((s) => ys(s)[k] === 1).length);
    expect(Math.min(...counts)).toBeGreaterThan(900);
  });

  it('gaussian blobs: k classes around their centres', () => {
    const samples = take(blobsSamples({ seed: 4, classes: 4, spread: 0.1, radius: 3 }), 2000);
    for (const s of samples) {
      const k = ys(s).indexOf(1);
      const angle = (2 * Math.PI * k) / 4;
      expect(Math.hypot(s.x[0] - 3 * Math.cos(angle), s.x[1] - 3 * Math.sin(angle))).toBeLessThan(0.8);
    }
  });

  it('concept change: the linear concept holds within a segment and changes abruptly at every boundary', () => {
    const samples = take(conceptChangeSamples({ seed: 9, every: 100, noise: 0, inputs: 2 }), 300);
    const fit = (seg: Sample[]) => {
      // solve y = w0 x0 + w1 x1 + b from three samples, then check the rest
      const [p, q, r] = seg;
      const m = [[p.x[0], p.x[1], 1], [q.x[0], q.x[1], 1], [r.x[0], r.x[1], 1]];
      const v = [ys(p)[0], ys(q)[0], ys(r)[0]];
      const det = (a: number[][]) => a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
      const d = det(m);
      return [0, 1, 2].map((c) => det(m.map((row, i) => row.map((e, j) => (j === c ? v[i] : e)))) / d);
    };
    const concepts = [0, 1, 2].map((k) => fit(samples.slice(k * 100, k * 100 + 100)));
    for (let k = 0; k < 3; k++) {
      for (const s of samples.slice(k * 100, k * 100 + 100)) {
        const [w0, w1, b] = concepts[k];
        expect(w0 * s.x[0] + w1 * s.x[1] + b).toBeCloseTo(ys(s)[0], 9);
      }
    }
    expect(Math.abs(concepts[0][0] - concepts[1][0]) + Math.abs(concepts[1][0] - concepts[2][0])).toBeGreaterThan(0.1);
  });

  it('Michaelis–Menten K drift: the true Km moves per sample while x reports the nominal one; no drift keeps the old stream', () => {
    const plain = take(michaelisMentenSamples({ seed: 1, noise: 0 }), 50);
    const drift = take(michaelisMentenSamples({ seed: 1, noise: 0, kmDrift: 0.01 }), 50);
    drift.forEach((s, n) => {
      const [v, sub, k] = Array.from(s.x);
      expect(s.x).toEqual(plain[n].x);
      expect(ys(s)[0]).toBeCloseTo((v * sub) / (k + 0.01 * n + sub), 12);
    });
    expect(() => michaelisMentenSamples({ kmDrift: NaN })).toThrow(/kmDrift/);
  });

  it('Michaelis–Menten K shift: from sample `at` on the true Km is Km + by (an abrupt change), while x reports the nominal one', () => {
    const plain = take(michaelisMentenSamples({ seed: 1, noise: 0 }), 50);
    const shifted = take(michaelisMentenSamples({ seed: 1, noise: 0, kmShift: { at: 20, by: 2 } }), 50);
    shifted.forEach((s, n) => {
      const [v, sub, k] = Array.from(s.x);
      expect(s.x).toEqual(plain[n].x);
      if (n < 20) expect(s.y).toEqual(plain[n].y);
      else expect(ys(s)[0]).toBeCloseTo((v * sub) / (k + 2 + sub), 12);
    });
    expect(() => michaelisMentenSamples({ kmShift: { at: -1, by: 1 } })).toThrow(/kmShift\.at/);
    expect(() => michaelisMentenSamples({ kmShift: { at: 1, by: Infinity } })).toThrow(/kmShift\.by/);
  });

  it('refuse bad options at construction', () => {
    expect(() => blobsSamples({ classes: 1 })).toThrow(/classes: must be an integer ≥ 2/);
    expect(() => sineSamples({ noise: -1 })).toThrow(/noise/);
    expect(() => conceptChangeSamples({ every: 0 })).toThrow(/every/);
    expect(() => spiralsSamples({ turns: 0 })).toThrow(/turns/);
    expect(() => xorSamples({ seed: 1.5 })).toThrow(/seed/);
  });
});
