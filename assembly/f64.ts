// The float64 kernels of the WebAssembly backend (AssemblyScript, compiled with SIMD).
//
// Every kernel here computes each output element with exactly the operations, in exactly
// the order, of the plain-JavaScript backend (core/kernels-js.ts), so the two
// backends agree bitwise: SIMD lanes only ever hold *independent* elements (two batch
// rows, or two neighbouring k), never partial sums of one element. WebAssembly has no
// fused multiply-add and IEEE add, mul, div and sqrt are correctly rounded, so
// `s + x * w` is the same number in a lane as in JavaScript.
//
// Pointers are byte offsets into the one linear memory; the JavaScript side
// (core/kernels-wasm.ts) passes the typed arrays' byteOffsets and checks the sizes.

// Activation codes, shared with core/kernels-wasm.ts.
export const ACT_LINEAR: i32 = 0;
export const ACT_RELU: i32 = 1;
export const ACT_LEAKY_RELU: i32 = 2;
export const ACT_SIGN: i32 = 3;
export const ACT_SIGMOID: i32 = 4;
export const ACT_TANH: i32 = 5;
export const ACT_SOFTMAX: i32 = 6;
/** denseForward: write z only, leave `a` to the caller. */
export const ACT_NONE: i32 = 7;

// core/activations.ts LEAKY_RELU_SLOPE
const LEAKY: f64 = 0.01;

/** Start of the memory the JavaScript allocator may hand out (after the static data). */
export function heapBase(): usize {
  return __heap_base;
}

/**
 * Zeroes `bytes` (a multiple of 8) at p. Inline stores: `memory.fill` is a call into the
 * engine, which costs more than the stores for the short rows it would clear here.
 */
// @ts-ignore: decorator
@inline export function clear(p: usize, bytes: usize): void {
  const z = f64x2.splat(0), end = p + (bytes & ~15);
  while (p < end) { v128.store(p, z); p += 16; }
  if (bytes & 8) store<f64>(p, 0);
}

/** f(v) for the activations computed in WebAssembly (the others are exp-based and run in JavaScript). */
// @ts-ignore: decorator
@inline function act1(kind: i32, v: f64): f64 {
  if (kind == ACT_RELU) return v > 0 ? v : 0;
  if (kind == ACT_LEAKY_RELU) return v > 0 ? v : LEAKY * v;
  if (kind == ACT_SIGN) return v > 0 ? 1.0 : v < 0 ? -1.0 : v; // Math.sign: ±0 and NaN pass through
  return v;
}

// @ts-ignore: decorator
@inline function emit(z: usize, a: usize, act: i32, v: f64): void {
  store<f64>(z, v);
  if (act != ACT_NONE) store<f64>(a, act1(act, v));
}

/** Both lanes of `v` (rows r and r+1 of one neuron) to z, and f(z) to a; lane 1 only when `two`. */
// @ts-ignore: decorator
@inline function emitPair(z: usize, a: usize, mb: usize, act: i32, v: v128, two: bool): void {
  emit(z, a, act, f64x2.extract_lane(v, 0));
  if (two) emit(z + mb, a + mb, act, f64x2.extract_lane(v, 1));
}

/**
 * Interleaves `rc` (≤ 4) rows of x into xp, k-major: xp[4k + r] = x[r][k]; missing rows are 0.
 * Lanes (r0, r1) and (r2, r3) of one k are then one v128 load each.
 */
// @ts-ignore: decorator
@inline function pack4(x: usize, xp: usize, n: i32, rc: i32, nb: usize): void {
  if (rc < 4) clear(xp, <usize>n << 5);
  for (let r = 0; r < rc; r++) {
    const xr = x + <usize>r * nb, pr = xp + (<usize>r << 3);
    for (let k = 0; k < n; k++) store<f64>(pr + (<usize>k << 5), load<f64>(xr + (<usize>k << 3)));
  }
}

/** As pack4 for `rc` ≤ 2 rows: xp[2k + r] = x[r][k]. */
// @ts-ignore: decorator
@inline function pack2(x: usize, xp: usize, n: i32, rc: i32, nb: usize): void {
  if (rc < 2) clear(xp, <usize>n << 4);
  for (let r = 0; r < rc; r++) {
    const xr = x + <usize>r * nb, pr = xp + (<usize>r << 3);
    for (let k = 0; k < n; k++) store<f64>(pr + (<usize>k << 4), load<f64>(xr + (<usize>k << 3)));
  }
}

/**
 * z[rows×m] = x[rows×n]·Wᵀ + b and, unless act is ACT_NONE, a = f(z) in the same pass
 * (linear copies, relu, leaky_relu, sign). Register-blocked: a 4-row × 4-neuron tile
 * keeps 8 f64x2 accumulators, each lane one (row, neuron) sum; per k it loads two
 * interleaved x pairs and splats four weights. Each sum starts at b[j] and adds
 * x[i][k]·W[j][k] for k = 0, 1, … n−1, as the JavaScript backend does.
 * `xp`: scratch of 4n float64.
 */
export function denseForward(x: usize, W: usize, b: usize, z: usize, a: usize,
  rows: i32, n: i32, m: i32, act: i32, xp: usize): void {
  const nb = <usize>n << 3, mb = <usize>m << 3;
  let i = 0;
  for (; i + 2 < rows; i += 4) {
    const rc = min(4, rows - i);
    pack4(x + <usize>i * nb, xp, n, rc, nb);
    forward4(xp, W, b, z + <usize>i * mb, a + <usize>i * mb, n, m, rc, act);
  }
  if (i + 1 < rows) {
    pack2(x + <usize>i * nb, xp, n, 2, nb);
    forward2(xp, W, b, z + <usize>i * mb, a + <usize>i * mb, n, m, 2, act);
    i += 2;
  }
  if (i < rows) forward1(x + <usize>i * nb, W, b, z + <usize>i * mb, a + <usize>i * mb, n, m, act);
}

/**
 * One row (batch size 1, or the last row of an odd batch): lanes hold two neurons. Two
 * neighbouring k of two weight rows are loaded and transposed in registers, so each
 * lane still adds x[k]·W[j][k] for k = 0, 1, … in order; a 8-neuron tile keeps 4
 * accumulators.
 */
// @ts-ignore: decorator
@inline function forward1(x: usize, W: usize, b: usize, z: usize, a: usize, n: i32, m: i32, act: i32): void {
  const nb = <usize>n << 3;
  let j = 0;
  for (; j + 7 < m; j += 8) {
    const w0 = W + <usize>j * nb, w1 = w0 + nb, w2 = w1 + nb, w3 = w2 + nb;
    const w4 = w3 + nb, w5 = w4 + nb, w6 = w5 + nb, w7 = w6 + nb;
    const bj = b + (<usize>j << 3);
    let s0 = v128.load(bj), s1 = v128.load(bj, 16), s2 = v128.load(bj, 32), s3 = v128.load(bj, 48);
    let k = 0;
    for (; k + 1 < n; k += 2) {
      const o = <usize>k << 3;
      const xa = v128.load64_splat(x + o), xb = v128.load64_splat(x + o, 8);
      let p = v128.load(w0 + o), q = v128.load(w1 + o);
      s0 = f64x2.add(s0, f64x2.mul(xa, v128.shuffle<f64>(p, q, 0, 2)));
      s0 = f64x2.add(s0, f64x2.mul(xb, v128.shuffle<f64>(p, q, 1, 3)));
      p = v128.load(w2 + o); q = v128.load(w3 + o);
      s1 = f64x2.add(s1, f64x2.mul(xa, v128.shuffle<f64>(p, q, 0, 2)));
      s1 = f64x2.add(s1, f64x2.mul(xb, v128.shuffle<f64>(p, q, 1, 3)));
      p = v128.load(w4 + o); q = v128.load(w5 + o);
      s2 = f64x2.add(s2, f64x2.mul(xa, v128.shuffle<f64>(p, q, 0, 2)));
      s2 = f64x2.add(s2, f64x2.mul(xb, v128.shuffle<f64>(p, q, 1, 3)));
      p = v128.load(w6 + o); q = v128.load(w7 + o);
      s3 = f64x2.add(s3, f64x2.mul(xa, v128.shuffle<f64>(p, q, 0, 2)));
      s3 = f64x2.add(s3, f64x2.mul(xb, v128.shuffle<f64>(p, q, 1, 3)));
    }
    if (k < n) {
      const o = <usize>k << 3;
      const xa = v128.load64_splat(x + o);
      s0 = f64x2.add(s0, f64x2.mul(xa, v128.load64_lane(w1 + o, v128.load64_zero(w0 + o), 1)));
      s1 = f64x2.add(s1, f64x2.mul(xa, v128.load64_lane(w3 + o, v128.load64_zero(w2 + o), 1)));
      s2 = f64x2.add(s2, f64x2.mul(xa, v128.load64_lane(w5 + o, v128.load64_zero(w4 + o), 1)));
      s3 = f64x2.add(s3, f64x2.mul(xa, v128.load64_lane(w7 + o, v128.load64_zero(w6 + o), 1)));
    }
    const jo = <usize>j << 3;
    emitPair(z + jo, a + jo, 8, act, s0, true);
    emitPair(z + jo + 16, a + jo + 16, 8, act, s1, true);
    emitPair(z + jo + 32, a + jo + 32, 8, act, s2, true);
    emitPair(z + jo + 48, a + jo + 48, 8, act, s3, true);
  }
  for (; j < m; j++) {
    const w0 = W + <usize>j * nb;
    let s = load<f64>(b + (<usize>j << 3));
    for (let k = 0; k < n; k++) s += load<f64>(x + (<usize>k << 3)) * load<f64>(w0 + (<usize>k << 3));
    emit(z + (<usize>j << 3), a + (<usize>j << 3), act, s);
  }
}

// @ts-ignore: decorator
@inline function forward4(xp: usize, W: usize, b: usize, z: usize, a: usize, n: i32, m: i32, rc: i32, act: i32): void {
  const nb = <usize>n << 3, mb = <usize>m << 3;
  const two = rc > 1, four = rc > 3;
  const z2 = z + 2 * mb, a2 = a + 2 * mb;
  let j = 0;
  for (; j + 3 < m; j += 4) {
    const w0 = W + <usize>j * nb, w1 = w0 + nb, w2 = w1 + nb, w3 = w2 + nb;
    const bj = b + (<usize>j << 3);
    let s0 = v128.load64_splat(bj), s1 = v128.load64_splat(bj, 8), s2 = v128.load64_splat(bj, 16), s3 = v128.load64_splat(bj, 24);
    let t0 = s0, t1 = s1, t2 = s2, t3 = s3;
    for (let k = 0; k < n; k++) {
      const p = xp + (<usize>k << 5), o = <usize>k << 3;
      const xa = v128.load(p), xb = v128.load(p, 16);
      const c0 = v128.load64_splat(w0 + o), c1 = v128.load64_splat(w1 + o);
      const c2 = v128.load64_splat(w2 + o), c3 = v128.load64_splat(w3 + o);
      s0 = f64x2.add(s0, f64x2.mul(xa, c0)); t0 = f64x2.add(t0, f64x2.mul(xb, c0));
      s1 = f64x2.add(s1, f64x2.mul(xa, c1)); t1 = f64x2.add(t1, f64x2.mul(xb, c1));
      s2 = f64x2.add(s2, f64x2.mul(xa, c2)); t2 = f64x2.add(t2, f64x2.mul(xb, c2));
      s3 = f64x2.add(s3, f64x2.mul(xa, c3)); t3 = f64x2.add(t3, f64x2.mul(xb, c3));
    }
    const jo = <usize>j << 3;
    emitPair(z + jo, a + jo, mb, act, s0, two);
    emitPair(z + jo + 8, a + jo + 8, mb, act, s1, two);
    emitPair(z + jo + 16, a + jo + 16, mb, act, s2, two);
    emitPair(z + jo + 24, a + jo + 24, mb, act, s3, two);
    emitPair(z2 + jo, a2 + jo, mb, act, t0, four);
    emitPair(z2 + jo + 8, a2 + jo + 8, mb, act, t1, four);
    emitPair(z2 + jo + 16, a2 + jo + 16, mb, act, t2, four);
    emitPair(z2 + jo + 24, a2 + jo + 24, mb, act, t3, four);
  }
  for (; j < m; j++) {
    const w0 = W + <usize>j * nb;
    let s = v128.load64_splat(b + (<usize>j << 3)), t = s;
    for (let k = 0; k < n; k++) {
      const p = xp + (<usize>k << 5);
      const c = v128.load64_splat(w0 + (<usize>k << 3));
      s = f64x2.add(s, f64x2.mul(v128.load(p), c));
      t = f64x2.add(t, f64x2.mul(v128.load(p, 16), c));
    }
    const jo = <usize>j << 3;
    emitPair(z + jo, a + jo, mb, act, s, two);
    emitPair(z2 + jo, a2 + jo, mb, act, t, four);
  }
}

// @ts-ignore: decorator
@inline function forward2(xp: usize, W: usize, b: usize, z: usize, a: usize, n: i32, m: i32, rc: i32, act: i32): void {
  const nb = <usize>n << 3, mb = <usize>m << 3;
  const two = rc > 1;
  let j = 0;
  for (; j + 7 < m; j += 8) {
    const w0 = W + <usize>j * nb, w1 = w0 + nb, w2 = w1 + nb, w3 = w2 + nb;
    const w4 = w3 + nb, w5 = w4 + nb, w6 = w5 + nb, w7 = w6 + nb;
    const bj = b + (<usize>j << 3);
    let s0 = v128.load64_splat(bj), s1 = v128.load64_splat(bj, 8), s2 = v128.load64_splat(bj, 16), s3 = v128.load64_splat(bj, 24);
    let s4 = v128.load64_splat(bj, 32), s5 = v128.load64_splat(bj, 40), s6 = v128.load64_splat(bj, 48), s7 = v128.load64_splat(bj, 56);
    for (let k = 0; k < n; k++) {
      const xv = v128.load(xp + (<usize>k << 4)), o = <usize>k << 3;
      s0 = f64x2.add(s0, f64x2.mul(xv, v128.load64_splat(w0 + o)));
      s1 = f64x2.add(s1, f64x2.mul(xv, v128.load64_splat(w1 + o)));
      s2 = f64x2.add(s2, f64x2.mul(xv, v128.load64_splat(w2 + o)));
      s3 = f64x2.add(s3, f64x2.mul(xv, v128.load64_splat(w3 + o)));
      s4 = f64x2.add(s4, f64x2.mul(xv, v128.load64_splat(w4 + o)));
      s5 = f64x2.add(s5, f64x2.mul(xv, v128.load64_splat(w5 + o)));
      s6 = f64x2.add(s6, f64x2.mul(xv, v128.load64_splat(w6 + o)));
      s7 = f64x2.add(s7, f64x2.mul(xv, v128.load64_splat(w7 + o)));
    }
    const jo = <usize>j << 3;
    emitPair(z + jo, a + jo, mb, act, s0, two);
    emitPair(z + jo + 8, a + jo + 8, mb, act, s1, two);
    emitPair(z + jo + 16, a + jo + 16, mb, act, s2, two);
    emitPair(z + jo + 24, a + jo + 24, mb, act, s3, two);
    emitPair(z + jo + 32, a + jo + 32, mb, act, s4, two);
    emitPair(z + jo + 40, a + jo + 40, mb, act, s5, two);
    emitPair(z + jo + 48, a + jo + 48, mb, act, s6, two);
    emitPair(z + jo + 56, a + jo + 56, mb, act, s7, two);
  }
  for (; j < m; j++) {
    const w0 = W + <usize>j * nb;
    let s = v128.load64_splat(b + (<usize>j << 3));
    for (let k = 0; k < n; k++) {
      s = f64x2.add(s, f64x2.mul(v128.load(xp + (<usize>k << 4)), v128.load64_splat(w0 + (<usize>k << 3))));
    }
    const jo = <usize>j << 3;
    emitPair(z + jo, a + jo, mb, act, s, two);
  }
}

/**
 * Backward through a dense layer, as core/kernels-js.ts does it element for element:
 * gb += Σ_rows delta; gW += deltaᵀ·x, four batch rows per pass over a gradient row
 * (skipped where all four deltas are 0); and, when dx ≠ 0, dx = delta·W over the
 * neurons whose delta is not 0, four at a time. SIMD runs along k (independent
 * elements). `idx`: scratch of m int32. `fresh`: gW and gb are overwritten as if they
 * held +0 (what backwardNet needs after zeroing them, without the zeroing pass and
 * without reading them back: 0 + t is written, so even a −0 comes out as JavaScript's).
 */
export function denseBackward(x: usize, d: usize, W: usize, gW: usize, gb: usize, dx: usize,
  rows: i32, n: i32, m: i32, idx: usize, fresh: bool): void {
  const nb = <usize>n << 3, mb = <usize>m << 3;
  const zero = f64x2.splat(0);
  if (fresh && rows == 0) { clear(gW, <usize>m * nb); clear(gb, mb); }
  // bias gradient: column sums of delta, row by row
  for (let i = 0; i < rows; i++) {
    if (fresh && i == 0) addInto(gb, d, m, true);
    else addInto(gb, d + <usize>i * mb, m, false);
  }
  // weight gradient
  let i = 0;
  for (; i + 3 < rows; i += 4) {
    const x0 = x + <usize>i * nb, x1 = x0 + nb, x2 = x1 + nb, x3 = x2 + nb;
    const r0 = d + <usize>i * mb, r1 = r0 + mb, r2 = r1 + mb, r3 = r2 + mb;
    const first = fresh && i == 0;
    for (let j = 0; j < m; j++) {
      const jo = <usize>j << 3;
      const c0 = load<f64>(r0 + jo), c1 = load<f64>(r1 + jo), c2 = load<f64>(r2 + jo), c3 = load<f64>(r3 + jo);
      const g = gW + <usize>j * nb;
      if (c0 == 0 && c1 == 0 && c2 == 0 && c3 == 0) {
        if (first) clear(g, nb);
        continue;
      }
      const v0 = f64x2.splat(c0), v1 = f64x2.splat(c1), v2 = f64x2.splat(c2), v3 = f64x2.splat(c3);
      let k = 0;
      if (first) {
        for (; k + 1 < n; k += 2) {
          const o = <usize>k << 3;
          const t = f64x2.add(f64x2.add(f64x2.add(
            f64x2.mul(v0, v128.load(x0 + o)), f64x2.mul(v1, v128.load(x1 + o))),
            f64x2.mul(v2, v128.load(x2 + o))), f64x2.mul(v3, v128.load(x3 + o)));
          v128.store(g + o, f64x2.add(zero, t));
        }
      } else {
        for (; k + 1 < n; k += 2) {
          const o = <usize>k << 3;
          const t = f64x2.add(f64x2.add(f64x2.add(
            f64x2.mul(v0, v128.load(x0 + o)), f64x2.mul(v1, v128.load(x1 + o))),
            f64x2.mul(v2, v128.load(x2 + o))), f64x2.mul(v3, v128.load(x3 + o)));
          v128.store(g + o, f64x2.add(v128.load(g + o), t));
        }
      }
      if (k < n) {
        const o = <usize>k << 3;
        store<f64>(g + o, (first ? 0 : load<f64>(g + o)) + (c0 * load<f64>(x0 + o) + c1 * load<f64>(x1 + o) + c2 * load<f64>(x2 + o) + c3 * load<f64>(x3 + o)));
      }
    }
  }
  for (; i < rows; i++) {
    const x0 = x + <usize>i * nb, r0 = d + <usize>i * mb;
    const first = fresh && i == 0;
    for (let j = 0; j < m; j++) {
      const c = load<f64>(r0 + (<usize>j << 3));
      const g = gW + <usize>j * nb;
      if (c == 0) {
        if (first) clear(g, nb);
        continue;
      }
      if (first) scaleInto(g, x0, c, n);
      else axpy(g, x0, c, n);
    }
  }
  if (dx == 0) return;
  // input gradient, row by row over the non-zero deltas
  for (let r = 0; r < rows; r++) {
    const o = dx + <usize>r * nb, r0 = d + <usize>r * mb;
    let count = 0;
    for (let j = 0; j < m; j++) {
      if (load<f64>(r0 + (<usize>j << 3)) != 0) { store<i32>(idx + (<usize>count << 2), j); count++; }
    }
    clear(o, nb);
    let q = 0;
    for (; q + 3 < count; q += 4) {
      const q4 = idx + (<usize>q << 2);
      const j0 = load<i32>(q4), j1 = load<i32>(q4, 4), j2 = load<i32>(q4, 8), j3 = load<i32>(q4, 12);
      const c0 = load<f64>(r0 + (<usize>j0 << 3)), c1 = load<f64>(r0 + (<usize>j1 << 3));
      const c2 = load<f64>(r0 + (<usize>j2 << 3)), c3 = load<f64>(r0 + (<usize>j3 << 3));
      const w0 = W + <usize>j0 * nb, w1 = W + <usize>j1 * nb, w2 = W + <usize>j2 * nb, w3 = W + <usize>j3 * nb;
      const v0 = f64x2.splat(c0), v1 = f64x2.splat(c1), v2 = f64x2.splat(c2), v3 = f64x2.splat(c3);
      let k = 0;
      for (; k + 1 < n; k += 2) {
        const ko = <usize>k << 3;
        const t = f64x2.add(f64x2.add(f64x2.add(
          f64x2.mul(v0, v128.load(w0 + ko)), f64x2.mul(v1, v128.load(w1 + ko))),
          f64x2.mul(v2, v128.load(w2 + ko))), f64x2.mul(v3, v128.load(w3 + ko)));
        v128.store(o + ko, f64x2.add(v128.load(o + ko), t));
      }
      if (k < n) {
        const ko = <usize>k << 3;
        store<f64>(o + ko, load<f64>(o + ko) + (c0 * load<f64>(w0 + ko) + c1 * load<f64>(w1 + ko) + c2 * load<f64>(w2 + ko) + c3 * load<f64>(w3 + ko)));
      }
    }
    for (; q < count; q++) {
      const j = load<i32>(idx + (<usize>q << 2));
      axpy(o, W + <usize>j * nb, load<f64>(r0 + (<usize>j << 3)), n);
    }
  }
}

/** y += c·x over n elements. */
// @ts-ignore: decorator
@inline function axpy(y: usize, x: usize, c: f64, n: i32): void {
  const v = f64x2.splat(c);
  let k = 0;
  for (; k + 1 < n; k += 2) {
    const o = <usize>k << 3;
    v128.store(y + o, f64x2.add(v128.load(y + o), f64x2.mul(v, v128.load(x + o))));
  }
  if (k < n) {
    const o = <usize>k << 3;
    store<f64>(y + o, load<f64>(y + o) + c * load<f64>(x + o));
  }
}

/** y = 0 + c·x over n elements (axpy onto a zeroed y, without reading it). */
// @ts-ignore: decorator
@inline function scaleInto(y: usize, x: usize, c: f64, n: i32): void {
  const v = f64x2.splat(c), zero = f64x2.splat(0);
  let k = 0;
  for (; k + 1 < n; k += 2) {
    const o = <usize>k << 3;
    v128.store(y + o, f64x2.add(zero, f64x2.mul(v, v128.load(x + o))));
  }
  if (k < n) {
    const o = <usize>k << 3;
    store<f64>(y + o, 0 + c * load<f64>(x + o));
  }
}

/** y += x over n elements; y = 0 + x when `fresh`. */
// @ts-ignore: decorator
@inline function addInto(y: usize, x: usize, n: i32, fresh: bool): void {
  const zero = f64x2.splat(0);
  let k = 0;
  for (; k + 1 < n; k += 2) {
    const o = <usize>k << 3;
    v128.store(y + o, f64x2.add(fresh ? zero : v128.load(y + o), v128.load(x + o)));
  }
  if (k < n) {
    const o = <usize>k << 3;
    store<f64>(y + o, (fresh ? 0 : load<f64>(y + o)) + load<f64>(x + o));
  }
}

/** a = f(z) over len elements, for linear, relu, leaky_relu and sign. */
export function activate(kind: i32, z: usize, a: usize, len: i32): void {
  let q = 0;
  if (kind == ACT_RELU) {
    const zero = f64x2.splat(0);
    for (; q + 1 < len; q += 2) {
      const o = <usize>q << 3, v = v128.load(z + o);
      v128.store(a + o, v128.and(v, f64x2.gt(v, zero))); // NaN and -0 give +0, as v > 0 ? v : 0
    }
  } else if (kind == ACT_LEAKY_RELU) {
    const zero = f64x2.splat(0), s = f64x2.splat(LEAKY);
    for (; q + 1 < len; q += 2) {
      const o = <usize>q << 3, v = v128.load(z + o);
      v128.store(a + o, v128.bitselect(v, f64x2.mul(s, v), f64x2.gt(v, zero)));
    }
  } else if (kind == ACT_LINEAR) {
    memory.copy(a, z, <usize>len << 3);
    return;
  }
  for (; q < len; q++) {
    const o = <usize>q << 3;
    store<f64>(a + o, act1(kind, load<f64>(z + o)));
  }
}

/** delta ← delta ⊙ f'(z) (softmax: delta ← a ⊙ (delta − delta·a) per row), as the JavaScript backend. */
export function activationBackward(kind: i32, z: usize, a: usize, d: usize, rows: i32, m: i32): void {
  const len = rows * m;
  let q = 0;
  if (kind == ACT_SIGMOID) {
    const one = f64x2.splat(1);
    for (; q + 1 < len; q += 2) {
      const o = <usize>q << 3, s = v128.load(a + o);
      v128.store(d + o, f64x2.mul(v128.load(d + o), f64x2.mul(s, f64x2.sub(one, s))));
    }
    for (; q < len; q++) {
      const o = <usize>q << 3, s = load<f64>(a + o);
      store<f64>(d + o, load<f64>(d + o) * (s * (1 - s)));
    }
  } else if (kind == ACT_TANH) {
    const one = f64x2.splat(1);
    for (; q + 1 < len; q += 2) {
      const o = <usize>q << 3, t = v128.load(a + o);
      v128.store(d + o, f64x2.mul(v128.load(d + o), f64x2.sub(one, f64x2.mul(t, t))));
    }
    for (; q < len; q++) {
      const o = <usize>q << 3, t = load<f64>(a + o);
      store<f64>(d + o, load<f64>(d + o) * (1 - t * t));
    }
  } else if (kind == ACT_RELU) {
    const zero = f64x2.splat(0);
    for (; q + 1 < len; q += 2) {
      const o = <usize>q << 3;
      v128.store(d + o, v128.and(v128.load(d + o), f64x2.gt(v128.load(z + o), zero)));
    }
    for (; q < len; q++) {
      const o = <usize>q << 3;
      if (!(load<f64>(z + o) > 0)) store<f64>(d + o, 0);
    }
  } else if (kind == ACT_LEAKY_RELU) {
    for (; q < len; q++) {
      const o = <usize>q << 3;
      if (!(load<f64>(z + o) > 0)) store<f64>(d + o, load<f64>(d + o) * LEAKY);
    }
  } else if (kind == ACT_SIGN) {
    clear(d, <usize>len << 3);
  } else if (kind == ACT_SOFTMAX) {
    const mb = <usize>m << 3;
    for (let r = 0; r < rows; r++) {
      const ar = a + <usize>r * mb, dr = d + <usize>r * mb;
      let dot: f64 = 0;
      for (let k = 0; k < m; k++) { const o = <usize>k << 3; dot += load<f64>(dr + o) * load<f64>(ar + o); }
      for (let k = 0; k < m; k++) { const o = <usize>k << 3; store<f64>(dr + o, load<f64>(ar + o) * (load<f64>(dr + o) - dot)); }
    }
  }
}

/** Σ g², with the JavaScript backend's four partial sums: (s0 + s1) + (s2 + s3). */
export function sumOfSquares(g: usize, len: i32): f64 {
  let s01 = f64x2.splat(0), s23 = s01;
  let q = 0;
  for (; q + 3 < len; q += 4) {
    const o = <usize>q << 3, u = v128.load(g + o), v = v128.load(g + o, 16);
    s01 = f64x2.add(s01, f64x2.mul(u, u));
    s23 = f64x2.add(s23, f64x2.mul(v, v));
  }
  let s0 = f64x2.extract_lane(s01, 0);
  for (; q < len; q++) { const v = load<f64>(g + (<usize>q << 3)); s0 += v * v; }
  return (s0 + f64x2.extract_lane(s01, 1)) + (f64x2.extract_lane(s23, 0) + f64x2.extract_lane(s23, 1));
}

/** g ← s·g. */
export function scale(g: usize, len: i32, s: f64): void {
  const v = f64x2.splat(s);
  let q = 0;
  for (; q + 1 < len; q += 2) { const o = <usize>q << 3; v128.store(g + o, f64x2.mul(v128.load(g + o), v)); }
  for (; q < len; q++) { const o = <usize>q << 3; store<f64>(g + o, load<f64>(g + o) * s); }
}

/** p ← p − lr·g. Four elements per iteration, pointers bumped (fewer instructions per element). */
export function sgd(p: usize, g: usize, len: i32, lr: f64): void {
  const l = f64x2.splat(lr);
  const end4 = p + ((<usize>len >> 2) << 5);
  while (p < end4) {
    v128.store(p, f64x2.sub(v128.load(p), f64x2.mul(l, v128.load(g))));
    v128.store(p, f64x2.sub(v128.load(p, 16), f64x2.mul(l, v128.load(g, 16))), 16);
    p += 32; g += 32;
  }
  const end = p + ((<usize>len & 3) << 3);
  while (p < end) {
    store<f64>(p, load<f64>(p) - lr * load<f64>(g));
    p += 8; g += 8;
  }
}

/** v ← μ·v + g; p ← p − lr·v. */
export function momentum(p: usize, g: usize, v: usize, len: i32, lr: f64, mu: f64): void {
  const l = f64x2.splat(lr), u = f64x2.splat(mu);
  let q = 0;
  for (; q + 1 < len; q += 2) {
    const o = <usize>q << 3;
    const w = f64x2.add(f64x2.mul(u, v128.load(v + o)), v128.load(g + o));
    v128.store(v + o, w);
    v128.store(p + o, f64x2.sub(v128.load(p + o), f64x2.mul(l, w)));
  }
  for (; q < len; q++) {
    const o = <usize>q << 3;
    const w = mu * load<f64>(v + o) + load<f64>(g + o);
    store<f64>(v + o, w);
    store<f64>(p + o, load<f64>(p + o) - lr * w);
  }
}

/** Adam, as core/kernels-js.ts: p ← p − stepSize · m / (√v / c2 + ε). */
export function adam(p: usize, g: usize, m: usize, v: usize, len: i32,
  stepSize: f64, beta1: f64, beta2: f64, c2: f64, epsilon: f64): void {
  const k1 = 1 - beta1, k2 = 1 - beta2;
  const B1 = f64x2.splat(beta1), B2 = f64x2.splat(beta2), K1 = f64x2.splat(k1), K2 = f64x2.splat(k2);
  const S = f64x2.splat(stepSize), C2 = f64x2.splat(c2), E = f64x2.splat(epsilon);
  let q = 0;
  for (; q + 1 < len; q += 2) {
    const o = <usize>q << 3;
    const gq = v128.load(g + o);
    const mq = f64x2.add(f64x2.mul(B1, v128.load(m + o)), f64x2.mul(K1, gq));
    const vq = f64x2.add(f64x2.mul(B2, v128.load(v + o)), f64x2.mul(f64x2.mul(K2, gq), gq));
    v128.store(m + o, mq);
    v128.store(v + o, vq);
    const u = f64x2.mul(S, f64x2.div(mq, f64x2.add(f64x2.div(f64x2.sqrt(vq), C2), E)));
    v128.store(p + o, f64x2.sub(v128.load(p + o), u));
  }
  for (; q < len; q++) {
    const o = <usize>q << 3;
    const gq = load<f64>(g + o);
    const mq = beta1 * load<f64>(m + o) + k1 * gq;
    const vq = beta2 * load<f64>(v + o) + k2 * gq * gq;
    store<f64>(m + o, mq);
    store<f64>(v + o, vq);
    store<f64>(p + o, load<f64>(p + o) - stepSize * (mq / (Math.sqrt(vq) / c2 + epsilon)));
  }
}

/** v ← α·v + (1−α)·g²; p ← p − lr·g / (√v + ε). */
export function rmsprop(p: usize, g: usize, v: usize, len: i32, lr: f64, alpha: f64, epsilon: f64): void {
  const k = 1 - alpha;
  const A = f64x2.splat(alpha), K = f64x2.splat(k), L = f64x2.splat(lr), E = f64x2.splat(epsilon);
  let q = 0;
  for (; q + 1 < len; q += 2) {
    const o = <usize>q << 3;
    const gq = v128.load(g + o);
    const vq = f64x2.add(f64x2.mul(A, v128.load(v + o)), f64x2.mul(f64x2.mul(K, gq), gq));
    v128.store(v + o, vq);
    v128.store(p + o, f64x2.sub(v128.load(p + o), f64x2.div(f64x2.mul(L, gq), f64x2.add(f64x2.sqrt(vq), E))));
  }
  for (; q < len; q++) {
    const o = <usize>q << 3;
    const gq = load<f64>(g + o);
    const vq = alpha * load<f64>(v + o) + k * gq * gq;
    store<f64>(v + o, vq);
    store<f64>(p + o, load<f64>(p + o) - lr * gq / (Math.sqrt(vq) + epsilon));
  }
}

/** s ← s + g²; p ← p − lr·g / (√s + ε). */
export function adagrad(p: usize, g: usize, s: usize, len: i32, lr: f64, epsilon: f64): void {
  const L = f64x2.splat(lr), E = f64x2.splat(epsilon);
  let q = 0;
  for (; q + 1 < len; q += 2) {
    const o = <usize>q << 3;
    const gq = v128.load(g + o);
    const sq = f64x2.add(v128.load(s + o), f64x2.mul(gq, gq));
    v128.store(s + o, sq);
    v128.store(p + o, f64x2.sub(v128.load(p + o), f64x2.div(f64x2.mul(L, gq), f64x2.add(f64x2.sqrt(sq), E))));
  }
  for (; q < len; q++) {
    const o = <usize>q << 3;
    const gq = load<f64>(g + o);
    const sq = load<f64>(s + o) + gq * gq;
    store<f64>(s + o, sq);
    store<f64>(p + o, load<f64>(p + o) - lr * gq / (Math.sqrt(sq) + epsilon));
  }
}
