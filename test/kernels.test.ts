/**
 * The plain-JavaScript kernels (core/kernels-js.ts) against naive loops written from
 * the definitions (test/helpers/math.ts). The shapes sweep every combination of
 * rows 1..7 and n, m 1..9, which walks every unrolled block and every remainder path of
 * the register-blocked products (pairs of rows × 4 neurons forward, 4 batch rows per pass
 * for gW, 4 non-zero deltas per pass for dx).
 */
import { describe, expect, it } from 'vitest';
import { type Activation, ACTIVATIONS } from '../core/activations.ts';
import { jsKernels as K } from '../core/kernels-js.ts';
import { Rng } from '../core/rng.ts';
import {
  expectAllClose, naiveActivate, naiveActivationBackward, naiveDenseBackward, naiveDenseForward, randArray, randInt,
} from './helpers/math.ts';

const TOL = 1e-12;
const SENTINEL = 12345.678; // written into the slack past `rows`; kernels must leave it alone

/** A buffer of `used` random values followed by `slack` sentinels. */
function withSlack(rng: Rng, used: number, slack: number): Float64Array {
  const a = new Float64Array(used + slack).fill(SENTINEL);
  a.set(randArray(rng, used, -2, 2));
  return a;
}

function expectSlackUntouched(a: Float64Array, used: number, what: string): void {
  for (let q = used; q < a.length; q++) expect(a[q], `${what}[${q}] past the rows was written`).toBe(SENTINEL);
}

/** Random deltas with many exact zeros: single entries, whole rows, and whole neurons across a 4-row block. */
function sparseDeltas(rng: Rng, rows: number, m: number): Float64Array {
  const d = randArray(rng, rows * m, -2, 2);
  for (let q = 0; q < d.length; q++) if (rng.next() < 0.3) d[q] = 0;
  if (rows > 1 && rng.next() < 0.5) d.fill(0, (rows - 1) * m, rows * m); // a dead row
  const j = randInt(rng, 0, m - 1);
  if (rng.next() < 0.5) for (let r = 0; r < Math.min(rows, 4); r++) d[r * m + j] = 0; // a neuron dead across a block
  return d;
}

describe('jsKernels.denseForward', () => {
  it('z = x·Wᵀ + b for every rows 1..7 × n 1..9 × m 1..9, to 1e-12, writing nothing past the rows', () => {
    const rng = new Rng(101);
    let cases = 0;
    for (let rows = 1; rows <= 7; rows++) {
      for (let n = 1; n <= 9; n++) {
        for (let m = 1; m <= 9; m++) {
          const x = withSlack(rng, rows * n, n), W = randArray(rng, m * n), b = randArray(rng, m);
          const z = new Float64Array(rows * m + m).fill(SENTINEL);
          K.denseForward(x, W, b, z, rows, n, m);
          const at = `rows=${rows} n=${n} m=${m}`;
          expectAllClose(z.subarray(0, rows * m), naiveDenseForward(x, W, b, rows, n, m), TOL, `z ${at}`);
          expectSlackUntouched(z, rows * m, `z ${at}`);
          cases++;
        }
      }
    }
    expect(cases).toBe(7 * 9 * 9);
  });

  it('is bitwise reproducible and does not depend on what z held before', () => {
    const rng = new Rng(102);
    const rows = 5, n = 7, m = 6;
    const x = randArray(rng, rows * n), W = randArray(rng, m * n), b = randArray(rng, m);
    const z1 = new Float64Array(rows * m), z2 = randArray(rng, rows * m, -1e9, 1e9);
    K.denseForward(x, W, b, z1, rows, n, m);
    K.denseForward(x, W, b, z2, rows, n, m);
    expect(Array.from(z2)).toEqual(Array.from(z1));
  });
});

describe('jsKernels.denseBackward', () => {
  it('gW += δᵀx, gb += Σδ (accumulating), dx = δ·W (overwritten), with exact-zero deltas, for every shape', () => {
    const rng = new Rng(201);
    for (let rows = 1; rows <= 7; rows++) {
      for (let n = 1; n <= 9; n++) {
        for (let m = 1; m <= 9; m++) {
          const at = `rows=${rows} n=${n} m=${m}`;
          const x = withSlack(rng, rows * n, n), W = randArray(rng, m * n);
          const d = sparseDeltas(rng, rows, m);
          const gW0 = randArray(rng, m * n), gb0 = randArray(rng, m); // earlier contributions
          const gW = gW0.slice(), gb = gb0.slice();
          const dx = new Float64Array(rows * n + n).fill(SENTINEL);
          for (let q = 0; q < rows * n; q++) dx[q] = 1e6 + q; // stale values that must be overwritten
          K.denseBackward(x, d, W, gW, gb, dx, rows, n, m);
          const ref = naiveDenseBackward(x, d, W, rows, n, m);
          expectAllClose(gW, ref.gW.map((v, q) => v + gW0[q]), TOL, `gW ${at}`);
          expectAllClose(gb, ref.gb.map((v, q) => v + gb0[q]), TOL, `gb ${at}`);
          expectAllClose(dx.subarray(0, rows * n), ref.dx, TOL, `dx ${at}`);
          expectSlackUntouched(dx, rows * n, `dx ${at}`);

          // without dx (the first layer): the same parameter gradients, nothing else written
          const gW2 = new Float64Array(m * n), gb2 = new Float64Array(m);
          K.denseBackward(x, d, W, gW2, gb2, null, rows, n, m);
          expectAllClose(gW2, ref.gW, TOL, `gW (dx null) ${at}`);
          expectAllClose(gb2, ref.gb, TOL, `gb (dx null) ${at}`);
        }
      }
    }
  });

  it('an all-zero delta adds nothing and zeroes dx', () => {
    const rng = new Rng(202);
    const rows = 6, n = 5, m = 7;
    const x = randArray(rng, rows * n), W = randArray(rng, m * n), d = new Float64Array(rows * m);
    const gW = randArray(rng, m * n), gb = randArray(rng, m), dx = randArray(rng, rows * n);
    const gWBefore = gW.slice(), gbBefore = gb.slice();
    K.denseBackward(x, d, W, gW, gb, dx, rows, n, m);
    expect(Array.from(gW)).toEqual(Array.from(gWBefore));
    expect(Array.from(gb)).toEqual(Array.from(gbBefore));
    expect(Array.from(dx)).toEqual(new Array(rows * n).fill(0));
  });

  it('layers wider than its 64-entry scratch list of non-zero deltas (m = 65, 200), after a narrow one', () => {
    const rng = new Rng(203);
    for (const [rows, n, m] of [[3, 4, 5], [5, 3, 65], [2, 7, 200], [3, 2, 9]] as const) {
      const x = randArray(rng, rows * n), W = randArray(rng, m * n), d = sparseDeltas(rng, rows, m);
      const gW = new Float64Array(m * n), gb = new Float64Array(m), dx = new Float64Array(rows * n);
      K.denseBackward(x, d, W, gW, gb, dx, rows, n, m);
      const ref = naiveDenseBackward(x, d, W, rows, n, m);
      const at = `rows=${rows} n=${n} m=${m}`;
      expectAllClose(gW, ref.gW, TOL, `gW ${at}`);
      expectAllClose(gb, ref.gb, TOL, `gb ${at}`);
      expectAllClose(dx, ref.dx, TOL, `dx ${at}`);
    }
  });
});

describe('jsKernels.activate and activationBackward', () => {
  /** z in [-4, 4) with some exact zeros (the kinks of relu and leaky_relu, sign's 0). */
  const drawZ = (rng: Rng, len: number) => {
    const z = randArray(rng, len, -4, 4);
    for (let q = 0; q < len; q++) if (rng.next() < 0.15) z[q] = 0;
    return z;
  };

  for (const kind of ACTIVATIONS) {
    it(`${kind}: forward and backward (Jᵀδ with the full Jacobian) match the definitions for every rows 1..7 × m 1..9`, () => {
      const rng = new Rng(300 + ACTIVATIONS.indexOf(kind));
      for (let rows = 1; rows <= 7; rows++) {
        for (let m = 1; m <= 9; m++) {
          const at = `${kind} rows=${rows} m=${m}`;
          const z = drawZ(rng, rows * m);
          const a = new Float64Array(rows * m + m).fill(SENTINEL);
          K.activate(kind, z, a, rows, m);
          expectAllClose(a.subarray(0, rows * m), naiveActivate(kind, z, rows, m), TOL, `a ${at}`);
          expectSlackUntouched(a, rows * m, `a ${at}`);

          const d = randArray(rng, rows * m + m, -2, 2);
          for (let q = 0; q < rows * m; q++) if (rng.next() < 0.2) d[q] = 0;
          const tail = d.slice(rows * m);
          const expected = naiveActivationBackward(kind, z, d, rows, m);
          K.activationBackward(kind, z, a, d, rows, m);
          expectAllClose(d.subarray(0, rows * m), expected, TOL, `δ ${at}`);
          expect(Array.from(d.subarray(rows * m)), `δ past the rows ${at}`).toEqual(Array.from(tail));
        }
      }
    });
  }

  it('relu passes no gradient at z = 0 and leaky_relu passes 0.01 there; sign passes none anywhere', () => {
    const z = Float64Array.from([0, -0, 1e-300, -1e-300]);
    const fwd = (kind: Activation) => { const a = new Float64Array(4); K.activate(kind, z, a, 1, 4); return a; };
    const back = (kind: Activation) => { const d = Float64Array.from([1, 1, 1, 1]); K.activationBackward(kind, z, fwd(kind), d, 1, 4); return Array.from(d); };
    expect(back('relu')).toEqual([0, 0, 1, 0]);
    expect(back('leaky_relu')).toEqual([0.01, 0.01, 1, 0.01]);
    expect(back('sign')).toEqual([0, 0, 0, 0]);
    expect(Array.from(fwd('sign'))).toEqual([0, -0, 1, -1]);
  });

  it('softmax rows sum to 1 and stay finite and exact for logits near ±1000', () => {
    const rows = 4, m = 3;
    const z = Float64Array.from([1000, 1000, 1000, 1000, 999, 998, -1000, -1001, -1002, 1000, -1000, 0]);
    const a = new Float64Array(rows * m);
    K.activate('softmax', z, a, rows, m);
    expect(a.every(Number.isFinite)).toBe(true);
    for (let r = 0; r < rows; r++) {
      const s = a[r * m] + a[r * m + 1] + a[r * m + 2];
      expect(Math.abs(s - 1)).toBeLessThanOrEqual(1e-15);
    }
    // e^0, e^-1, e^-2 normalised, whatever the common offset
    const e = [1, Math.exp(-1), Math.exp(-2)], t = e[0] + e[1] + e[2];
    for (const r of [1, 2]) expectAllClose(a.subarray(r * m, r * m + m), e.map((v) => v / t), 1e-15, `softmax row ${r}`, 0);
    expectAllClose(a.subarray(0, 3), [1 / 3, 1 / 3, 1 / 3], 1e-15, 'softmax of equal logits', 0);
    expect(Array.from(a.subarray(9, 12))).toEqual([1, 0, 0]);
    // the backward pass through those rows is finite and sums to zero per row (Jᵀ·1 = 0 direction)
    const d = Float64Array.from([0.3, -0.2, 0.5, 1, 2, 3, -1, 0.5, 0.25, 1, 1, 1]);
    K.activationBackward('softmax', z, a, d, rows, m);
    expect(d.every(Number.isFinite)).toBe(true);
    for (let r = 0; r < rows; r++) expect(Math.abs(d[r * m] + d[r * m + 1] + d[r * m + 2])).toBeLessThanOrEqual(1e-15);
  });

  it('random softmax rows sum to 1 within 1e-15 (m 1..9)', () => {
    const rng = new Rng(320);
    for (let m = 1; m <= 9; m++) {
      const rows = 7, z = randArray(rng, rows * m, -30, 30), a = new Float64Array(rows * m);
      K.activate('softmax', z, a, rows, m);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let k = 0; k < m; k++) { s += a[r * m + k]; expect(a[r * m + k]).toBeGreaterThanOrEqual(0); }
        expect(Math.abs(s - 1), `m=${m} row ${r}`).toBeLessThanOrEqual(1e-15 * m);
      }
    }
  });
});

describe('jsKernels.sumOfSquares and scale', () => {
  it('sumOfSquares equals Σg² for every length 0..20 and for long vectors, to 1e-12', () => {
    const rng = new Rng(401);
    for (const len of [...Array.from({ length: 21 }, (_, i) => i), 257, 1000, 4099]) {
      const g = randArray(rng, len, -3, 3);
      let ref = 0;
      for (let q = 0; q < len; q++) ref += g[q] * g[q];
      const got = K.sumOfSquares(g);
      if (len === 0) expect(got).toBe(0);
      else expect(Math.abs(got - ref) / ref, `len ${len}`).toBeLessThanOrEqual(TOL);
    }
    expect(K.sumOfSquares(Float64Array.from([3, 4]))).toBe(25);
  });

  it('scale multiplies every element exactly (bitwise g[q]·s) and only inside the given view', () => {
    const rng = new Rng(402);
    for (const len of [0, 1, 3, 4, 5, 17]) {
      const buffer = randArray(rng, len + 2, -5, 5);
      const before = buffer.slice();
      const s = rng.uniform(-3, 3);
      K.scale(buffer.subarray(1, 1 + len), s);
      expect(buffer[0]).toBe(before[0]);
      expect(buffer[len + 1]).toBe(before[len + 1]);
      for (let q = 1; q <= len; q++) expect(buffer[q]).toBe(before[q] * s);
    }
  });
});
