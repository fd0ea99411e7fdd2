// The float32 matrix kernels of the WebAssembly backend's float32 mode ("wasm-f32").
//
// Storage stays float64 (parameters, gradients, activations, optimizer state: the model
// file, checkpoints and snapshots are unchanged); the two matrix products, which are
// nearly all of the arithmetic, convert their operands to float32 in scratch memory
// and run on f32x4, twice the lanes of f64x2. Sums are float32 (rounded once more
// into the float64 outputs), so results differ from the float64 backends by float32
// rounding: see the tolerance in core/kernels-wasm.ts.

import { ACT_LINEAR, ACT_LEAKY_RELU, ACT_NONE, ACT_RELU, ACT_SIGN, clear } from './f64';

const LEAKY: f64 = 0.01;

// @ts-ignore: decorator
@inline function act1(kind: i32, v: f64): f64 {
  if (kind == ACT_RELU) return v > 0 ? v : 0;
  if (kind == ACT_LEAKY_RELU) return v > 0 ? v : LEAKY * v;
  if (kind == ACT_SIGN) return v > 0 ? 1.0 : v < 0 ? -1.0 : v;
  return v;
}

// @ts-ignore: decorator
@inline function emit(z: usize, a: usize, act: i32, v: f32): void {
  const w = <f64>v;
  store<f64>(z, w);
  if (act != ACT_NONE) store<f64>(a, act == ACT_LINEAR ? w : act1(act, w));
}

/** dst[0..count) = float32(src[0..count)). */
// @ts-ignore: decorator
@inline function toF32(src: usize, dst: usize, count: i32): void {
  let q = 0;
  for (; q + 3 < count; q += 4) {
    const lo = f32x4.demote_f64x2_zero(v128.load(src + (<usize>q << 3)));
    const hi = f32x4.demote_f64x2_zero(v128.load(src + (<usize>q << 3), 16));
    v128.store(dst + (<usize>q << 2), v128.shuffle<f32>(lo, hi, 0, 1, 4, 5));
  }
  for (; q < count; q++) store<f32>(dst + (<usize>q << 2), <f32>load<f64>(src + (<usize>q << 3)));
}

/** dst[0..4) += float64(v), four lanes into four float64. */
// @ts-ignore: decorator
@inline function addPromoted(dst: usize, v: v128): void {
  v128.store(dst, f64x2.add(v128.load(dst), f64x2.promote_low_f32x4(v)));
  v128.store(dst, f64x2.add(v128.load(dst, 16), f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3))), 16);
}

/** dst[0..4) = float64(v). */
// @ts-ignore: decorator
@inline function storePromoted(dst: usize, v: v128): void {
  v128.store(dst, f64x2.promote_low_f32x4(v));
  v128.store(dst, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 2, 3)), 16);
}

/**
 * denseForward in float32: z = x·Wᵀ + b, a = f(z). W is converted to float32 into
 * `s` (m·n floats), then each block of 8 rows is interleaved k-major after it
 * (8n floats); a 8-row × 4-neuron tile keeps 8 f32x4 accumulators.
 */
export function denseForward32(x: usize, W: usize, b: usize, z: usize, a: usize,
  rows: i32, n: i32, m: i32, act: i32, s: usize): void {
  const W32 = s, xp = s + ((<usize>(m * n) * 4 + 15) & ~15);
  toF32(W, W32, m * n);
  const nb = <usize>n << 3, mb = <usize>m << 3, nf = <usize>n << 2;
  for (let i = 0; i < rows; i += 8) {
    const rc = min(8, rows - i);
    // xp[8k + r] = float32(x[i + r][k]); rows past the batch are 0
    if (rc < 8) clear(xp, <usize>n << 5);
    for (let r = 0; r < rc; r++) {
      const xr = x + <usize>(i + r) * nb, pr = xp + (<usize>r << 2);
      for (let k = 0; k < n; k++) store<f32>(pr + (<usize>k << 5), <f32>load<f64>(xr + (<usize>k << 3)));
    }
    const zi = z + <usize>i * mb, ai = a + <usize>i * mb;
    let j = 0;
    for (; j + 3 < m; j += 4) {
      const w0 = W32 + <usize>j * nf, w1 = w0 + nf, w2 = w1 + nf, w3 = w2 + nf;
      const bj = b + (<usize>j << 3);
      let s0 = f32x4.splat(<f32>load<f64>(bj)), s1 = f32x4.splat(<f32>load<f64>(bj, 8));
      let s2 = f32x4.splat(<f32>load<f64>(bj, 16)), s3 = f32x4.splat(<f32>load<f64>(bj, 24));
      let t0 = s0, t1 = s1, t2 = s2, t3 = s3;
      for (let k = 0; k < n; k++) {
        const p = xp + (<usize>k << 5), o = <usize>k << 2;
        const xa = v128.load(p), xb = v128.load(p, 16);
        const c0 = v128.load32_splat(w0 + o), c1 = v128.load32_splat(w1 + o);
        const c2 = v128.load32_splat(w2 + o), c3 = v128.load32_splat(w3 + o);
        s0 = f32x4.add(s0, f32x4.mul(xa, c0)); t0 = f32x4.add(t0, f32x4.mul(xb, c0));
        s1 = f32x4.add(s1, f32x4.mul(xa, c1)); t1 = f32x4.add(t1, f32x4.mul(xb, c1));
        s2 = f32x4.add(s2, f32x4.mul(xa, c2)); t2 = f32x4.add(t2, f32x4.mul(xb, c2));
        s3 = f32x4.add(s3, f32x4.mul(xa, c3)); t3 = f32x4.add(t3, f32x4.mul(xb, c3));
      }
      emitColumn(zi, ai, mb, j, act, s0, t0, rc);
      emitColumn(zi, ai, mb, j + 1, act, s1, t1, rc);
      emitColumn(zi, ai, mb, j + 2, act, s2, t2, rc);
      emitColumn(zi, ai, mb, j + 3, act, s3, t3, rc);
    }
    for (; j < m; j++) {
      const w0 = W32 + <usize>j * nf;
      let s0 = f32x4.splat(<f32>load<f64>(b + (<usize>j << 3))), t0 = s0;
      for (let k = 0; k < n; k++) {
        const p = xp + (<usize>k << 5);
        const c = v128.load32_splat(w0 + (<usize>k << 2));
        s0 = f32x4.add(s0, f32x4.mul(v128.load(p), c));
        t0 = f32x4.add(t0, f32x4.mul(v128.load(p, 16), c));
      }
      emitColumn(zi, ai, mb, j, act, s0, t0, rc);
    }
  }
}

/** Neuron j of up to 8 rows: lanes of lo are rows 0–3, of hi rows 4–7. */
// @ts-ignore: decorator
@inline function emitColumn(z: usize, a: usize, mb: usize, j: i32, act: i32, lo: v128, hi: v128, rc: i32): void {
  const jo = <usize>j << 3;
  emit(z + jo, a + jo, act, f32x4.extract_lane(lo, 0));
  if (rc > 1) emit(z + mb + jo, a + mb + jo, act, f32x4.extract_lane(lo, 1));
  if (rc > 2) emit(z + 2 * mb + jo, a + 2 * mb + jo, act, f32x4.extract_lane(lo, 2));
  if (rc > 3) emit(z + 3 * mb + jo, a + 3 * mb + jo, act, f32x4.extract_lane(lo, 3));
  if (rc > 4) emit(z + 4 * mb + jo, a + 4 * mb + jo, act, f32x4.extract_lane(hi, 0));
  if (rc > 5) emit(z + 5 * mb + jo, a + 5 * mb + jo, act, f32x4.extract_lane(hi, 1));
  if (rc > 6) emit(z + 6 * mb + jo, a + 6 * mb + jo, act, f32x4.extract_lane(hi, 2));
  if (rc > 7) emit(z + 7 * mb + jo, a + 7 * mb + jo, act, f32x4.extract_lane(hi, 3));
}

/**
 * denseBackward in float32: gb += Σ delta (float64), gW += deltaᵀ·x and dx = delta·W in
 * float32 (gW summed over the whole batch in registers, then added to the float64
 * gradient once). Scratch `s`: x (rows·n), delta (rows·m) and W (m·n) as float32.
 */
export function denseBackward32(x: usize, d: usize, W: usize, gW: usize, gb: usize, dx: usize,
  rows: i32, n: i32, m: i32, s: usize, fresh: bool): void {
  const mb = <usize>m << 3;
  if (fresh) clear(gb, mb);
  if (fresh && rows == 0) clear(gW, <usize>(m * n) << 3);
  for (let i = 0; i < rows; i++) {
    const r = d + <usize>i * mb;
    for (let j = 0; j < m; j++) { const o = <usize>j << 3; store<f64>(gb + o, load<f64>(gb + o) + load<f64>(r + o)); }
  }
  const x32 = s;
  const d32 = x32 + ((<usize>(rows * n) * 4 + 15) & ~15);
  const W32 = d32 + ((<usize>(rows * m) * 4 + 15) & ~15);
  toF32(x, x32, rows * n);
  toF32(d, d32, rows * m);
  const nf = <usize>n << 2, mf = <usize>m << 2, nb = <usize>n << 3;
  // gW: tiles of 4 neurons × 8 k, summed over all rows in registers
  let j = 0;
  for (; j + 3 < m; j += 4) {
    const g0 = gW + <usize>j * nb, g1 = g0 + nb, g2 = g1 + nb, g3 = g2 + nb;
    const dj = d32 + (<usize>j << 2);
    let k = 0;
    for (; k + 7 < n; k += 8) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      for (let i = 0; i < rows; i++) {
        const xr = x32 + <usize>i * nf + (<usize>k << 2), dr = dj + <usize>i * mf;
        const xa = v128.load(xr), xb = v128.load(xr, 16);
        const c0 = v128.load32_splat(dr), c1 = v128.load32_splat(dr, 4), c2 = v128.load32_splat(dr, 8), c3 = v128.load32_splat(dr, 12);
        a0 = f32x4.add(a0, f32x4.mul(c0, xa)); b0 = f32x4.add(b0, f32x4.mul(c0, xb));
        a1 = f32x4.add(a1, f32x4.mul(c1, xa)); b1 = f32x4.add(b1, f32x4.mul(c1, xb));
        a2 = f32x4.add(a2, f32x4.mul(c2, xa)); b2 = f32x4.add(b2, f32x4.mul(c2, xb));
        a3 = f32x4.add(a3, f32x4.mul(c3, xa)); b3 = f32x4.add(b3, f32x4.mul(c3, xb));
      }
      const ko = <usize>k << 3;
      if (fresh) {
        storePromoted(g0 + ko, a0); storePromoted(g0 + ko + 32, b0);
        storePromoted(g1 + ko, a1); storePromoted(g1 + ko + 32, b1);
        storePromoted(g2 + ko, a2); storePromoted(g2 + ko + 32, b2);
        storePromoted(g3 + ko, a3); storePromoted(g3 + ko + 32, b3);
      } else {
        addPromoted(g0 + ko, a0); addPromoted(g0 + ko + 32, b0);
        addPromoted(g1 + ko, a1); addPromoted(g1 + ko + 32, b1);
        addPromoted(g2 + ko, a2); addPromoted(g2 + ko + 32, b2);
        addPromoted(g3 + ko, a3); addPromoted(g3 + ko + 32, b3);
      }
    }
    for (; k < n; k++) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (let i = 0; i < rows; i++) {
        const xv = load<f32>(x32 + <usize>i * nf + (<usize>k << 2)), dr = dj + <usize>i * mf;
        t0 += load<f32>(dr) * xv; t1 += load<f32>(dr, 4) * xv; t2 += load<f32>(dr, 8) * xv; t3 += load<f32>(dr, 12) * xv;
      }
      const ko = <usize>k << 3;
      store<f64>(g0 + ko, (fresh ? 0 : load<f64>(g0 + ko)) + <f64>t0);
      store<f64>(g1 + ko, (fresh ? 0 : load<f64>(g1 + ko)) + <f64>t1);
      store<f64>(g2 + ko, (fresh ? 0 : load<f64>(g2 + ko)) + <f64>t2);
      store<f64>(g3 + ko, (fresh ? 0 : load<f64>(g3 + ko)) + <f64>t3);
    }
  }
  for (; j < m; j++) {
    const g0 = gW + <usize>j * nb, dj = d32 + (<usize>j << 2);
    let k = 0;
    for (; k + 3 < n; k += 4) {
      let a0 = f32x4.splat(0);
      for (let i = 0; i < rows; i++) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(dj + <usize>i * mf), v128.load(x32 + <usize>i * nf + (<usize>k << 2))));
      }
      if (fresh) storePromoted(g0 + (<usize>k << 3), a0);
      else addPromoted(g0 + (<usize>k << 3), a0);
    }
    for (; k < n; k++) {
      let t: f32 = 0;
      for (let i = 0; i < rows; i++) t += load<f32>(dj + <usize>i * mf) * load<f32>(x32 + <usize>i * nf + (<usize>k << 2));
      const ko = <usize>k << 3;
      store<f64>(g0 + ko, (fresh ? 0 : load<f64>(g0 + ko)) + <f64>t);
    }
  }
  if (dx == 0) return;
  toF32(W, W32, m * n);
  // dx: tiles of 4 rows × 8 k, summed over the neurons in registers
  let i = 0;
  for (; i < rows; i += 4) {
    const rc = min(4, rows - i);
    const d0 = d32 + <usize>i * mf;
    const d1 = rc > 1 ? d0 + mf : d0, d2 = rc > 2 ? d0 + 2 * mf : d0, d3 = rc > 3 ? d0 + 3 * mf : d0;
    const o0 = dx + <usize>i * nb;
    let k = 0;
    for (; k + 7 < n; k += 8) {
      let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      const wk = W32 + (<usize>k << 2);
      for (let jj = 0; jj < m; jj++) {
        const w = wk + <usize>jj * nf, jo = <usize>jj << 2;
        const wa = v128.load(w), wb = v128.load(w, 16);
        const c0 = v128.load32_splat(d0 + jo), c1 = v128.load32_splat(d1 + jo), c2 = v128.load32_splat(d2 + jo), c3 = v128.load32_splat(d3 + jo);
        a0 = f32x4.add(a0, f32x4.mul(c0, wa)); b0 = f32x4.add(b0, f32x4.mul(c0, wb));
        a1 = f32x4.add(a1, f32x4.mul(c1, wa)); b1 = f32x4.add(b1, f32x4.mul(c1, wb));
        a2 = f32x4.add(a2, f32x4.mul(c2, wa)); b2 = f32x4.add(b2, f32x4.mul(c2, wb));
        a3 = f32x4.add(a3, f32x4.mul(c3, wa)); b3 = f32x4.add(b3, f32x4.mul(c3, wb));
      }
      const ko = <usize>k << 3;
      storePromoted(o0 + ko, a0); storePromoted(o0 + ko + 32, b0);
      if (rc > 1) { storePromoted(o0 + nb + ko, a1); storePromoted(o0 + nb + ko + 32, b1); }
      if (rc > 2) { storePromoted(o0 + 2 * nb + ko, a2); storePromoted(o0 + 2 * nb + ko + 32, b2); }
      if (rc > 3) { storePromoted(o0 + 3 * nb + ko, a3); storePromoted(o0 + 3 * nb + ko + 32, b3); }
    }
    for (; k < n; k++) {
      for (let r = 0; r < rc; r++) {
        const dr = d0 + <usize>r * mf;
        let t: f32 = 0;
        for (let jj = 0; jj < m; jj++) t += load<f32>(dr + (<usize>jj << 2)) * load<f32>(W32 + <usize>jj * nf + (<usize>k << 2));
        store<f64>(o0 + <usize>r * nb + (<usize>k << 3), <f64>t);
      }
    }
  }
}
