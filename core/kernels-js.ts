import { LEAKY_RELU_SLOPE, type Activation } from './activations.ts';
import type { Kernels } from './kernels.ts';

/**
 * The plain-JavaScript kernel backend, float64 throughout.
 *
 * The matrix products are register-blocked by hand: the forward product computes four
 * neurons of one or two rows at once (8 accumulators share each load of x and W), the
 * weight gradient folds four batch rows into one pass over a gradient row, and the
 * input gradient skips neurons whose delta is exactly zero (dead ReLUs), which is most
 * of the saving a ReLU network offers. Summation order is fixed, so results are
 * bitwise reproducible run to run.
 */

// Scratch for denseBackward's list of non-zero deltas; grows to the widest layer once.
let nonZero = new Int32Array(64);

function denseForward(x: Float64Array, W: Float64Array, b: Float64Array, z: Float64Array, rows: number, n: number, m: number): void {
  let i = 0;
  for (; i + 1 < rows; i += 2) {
    const x0 = i * n, x1 = x0 + n, z0 = i * m, z1 = z0 + m;
    let j = 0;
    for (; j + 3 < m; j += 4) {
      const w0 = j * n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
      let s00 = b[j], s01 = b[j + 1], s02 = b[j + 2], s03 = b[j + 3];
      let s10 = s00, s11 = s01, s12 = s02, s13 = s03;
      for (let k = 0; k < n; k++) {
        const a = x[x0 + k], c = x[x1 + k];
        const v0 = W[w0 + k], v1 = W[w1 + k], v2 = W[w2 + k], v3 = W[w3 + k];
        s00 += a * v0; s01 += a * v1; s02 += a * v2; s03 += a * v3;
        s10 += c * v0; s11 += c * v1; s12 += c * v2; s13 += c * v3;
      }
      z[z0 + j] = s00; z[z0 + j + 1] = s01; z[z0 + j + 2] = s02; z[z0 + j + 3] = s03;
      z[z1 + j] = s10; z[z1 + j + 1] = s11; z[z1 + j + 2] = s12; z[z1 + j + 3] = s13;
    }
    for (; j < m; j++) {
      const w0 = j * n;
      let s0 = b[j], s1 = b[j];
      for (let k = 0; k < n; k++) {
        const v = W[w0 + k];
        s0 += x[x0 + k] * v; s1 += x[x1 + k] * v;
      }
      z[z0 + j] = s0; z[z1 + j] = s1;
    }
  }
  if (i < rows) {
    const x0 = i * n, z0 = i * m;
    let j = 0;
    for (; j + 3 < m; j += 4) {
      const w0 = j * n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
      let s0 = b[j], s1 = b[j + 1], s2 = b[j + 2], s3 = b[j + 3];
      for (let k = 0; k < n; k++) {
        const a = x[x0 + k];
        s0 += a * W[w0 + k]; s1 += a * W[w1 + k]; s2 += a * W[w2 + k]; s3 += a * W[w3 + k];
      }
      z[z0 + j] = s0; z[z0 + j + 1] = s1; z[z0 + j + 2] = s2; z[z0 + j + 3] = s3;
    }
    for (; j < m; j++) {
      const w0 = j * n;
      let s = b[j];
      for (let k = 0; k < n; k++) s += x[x0 + k] * W[w0 + k];
      z[z0 + j] = s;
    }
  }
}

function denseBackward(
  x: Float64Array, d: Float64Array, W: Float64Array,
  gW: Float64Array, gb: Float64Array, dx: Float64Array | null,
  rows: number, n: number, m: number,
): void {
  // bias gradient: column sums of delta
  for (let i = 0; i < rows; i++) {
    const d0 = i * m;
    for (let j = 0; j < m; j++) gb[j] += d[d0 + j];
  }
  // weight gradient, four batch rows per pass over gW's row j
  let i = 0;
  for (; i + 3 < rows; i += 4) {
    const x0 = i * n, x1 = x0 + n, x2 = x1 + n, x3 = x2 + n;
    const r0 = i * m, r1 = r0 + m, r2 = r1 + m, r3 = r2 + m;
    for (let j = 0; j < m; j++) {
      const c0 = d[r0 + j], c1 = d[r1 + j], c2 = d[r2 + j], c3 = d[r3 + j];
      if (c0 === 0 && c1 === 0 && c2 === 0 && c3 === 0) continue;
      const g = j * n;
      for (let k = 0; k < n; k++) gW[g + k] += c0 * x[x0 + k] + c1 * x[x1 + k] + c2 * x[x2 + k] + c3 * x[x3 + k];
    }
  }
  for (; i < rows; i++) {
    const x0 = i * n, r0 = i * m;
    for (let j = 0; j < m; j++) {
      const c = d[r0 + j];
      if (c === 0) continue;
      const g = j * n;
      for (let k = 0; k < n; k++) gW[g + k] += c * x[x0 + k];
    }
  }
  if (dx === null) return;
  // input gradient: dx_i = Σ_j d_ij W_j over the neurons whose delta is not zero
  if (nonZero.length < m) nonZero = new Int32Array(m);
  const idx = nonZero;
  for (let r = 0; r < rows; r++) {
    const o = r * n, r0 = r * m;
    let count = 0;
    for (let j = 0; j < m; j++) if (d[r0 + j] !== 0) idx[count++] = j;
    for (let k = 0; k < n; k++) dx[o + k] = 0;
    let q = 0;
    for (; q + 3 < count; q += 4) {
      const j0 = idx[q], j1 = idx[q + 1], j2 = idx[q + 2], j3 = idx[q + 3];
      const c0 = d[r0 + j0], c1 = d[r0 + j1], c2 = d[r0 + j2], c3 = d[r0 + j3];
      const w0 = j0 * n, w1 = j1 * n, w2 = j2 * n, w3 = j3 * n;
      for (let k = 0; k < n; k++) dx[o + k] += c0 * W[w0 + k] + c1 * W[w1 + k] + c2 * W[w2 + k] + c3 * W[w3 + k];
    }
    for (; q < count; q++) {
      const j = idx[q], c = d[r0 + j], w = j * n;
      for (let k = 0; k < n; k++) dx[o + k] += c * W[w + k];
    }
  }
}

function activate(kind: Activation, z: Float64Array, a: Float64Array, rows: number, m: number): void {
  const len = rows * m;
  switch (kind) {
    case 'linear':
      for (let q = 0; q < len; q++) a[q] = z[q];
      return;
    case 'sigmoid':
      for (let q = 0; q < len; q++) a[q] = 1 / (1 + Math.exp(-z[q]));
      return;
    case 'tanh':
      for (let q = 0; q < len; q++) a[q] = Math.tanh(z[q]);
      return;
    case 'relu':
      for (let q = 0; q < len; q++) { const v = z[q]; a[q] = v > 0 ? v : 0; }
      return;
    case 'leaky_relu':
      for (let q = 0; q < len; q++) { const v = z[q]; a[q] = v > 0 ? v : LEAKY_RELU_SLOPE * v; }
      return;
    case 'sign':
      for (let q = 0; q < len; q++) a[q] = Math.sign(z[q]);
      return;
    case 'softmax':
      for (let r = 0; r < rows; r++) {
        const o = r * m;
        let max = -Infinity;
        for (let k = 0; k < m; k++) if (z[o + k] > max) max = z[o + k];
        let sum = 0;
        for (let k = 0; k < m; k++) { const e = Math.exp(z[o + k] - max); a[o + k] = e; sum += e; }
        for (let k = 0; k < m; k++) a[o + k] /= sum;
      }
      return;
  }
}

function activationBackward(kind: Activation, z: Float64Array, a: Float64Array, d: Float64Array, rows: number, m: number): void {
  const len = rows * m;
  switch (kind) {
    case 'linear':
      return;
    case 'sigmoid':
      for (let q = 0; q < len; q++) { const s = a[q]; d[q] *= s * (1 - s); }
      return;
    case 'tanh':
      for (let q = 0; q < len; q++) { const t = a[q]; d[q] *= 1 - t * t; }
      return;
    case 'relu':
      for (let q = 0; q < len; q++) if (!(z[q] > 0)) d[q] = 0;
      return;
    case 'leaky_relu':
      for (let q = 0; q < len; q++) if (!(z[q] > 0)) d[q] *= LEAKY_RELU_SLOPE;
      return;
    case 'sign':
      // sign has zero derivative almost everywhere: nothing flows through it by gradient.
      for (let q = 0; q < len; q++) d[q] = 0;
      return;
    case 'softmax':
      for (let r = 0; r < rows; r++) {
        const o = r * m;
        let dot = 0;
        for (let k = 0; k < m; k++) dot += d[o + k] * a[o + k];
        for (let k = 0; k < m; k++) d[o + k] = a[o + k] * (d[o + k] - dot);
      }
      return;
  }
}

function sumOfSquares(g: Float64Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const len = g.length;
  let q = 0;
  for (; q + 3 < len; q += 4) {
    const a = g[q], b = g[q + 1], c = g[q + 2], d = g[q + 3];
    s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d;
  }
  for (; q < len; q++) s0 += g[q] * g[q];
  return (s0 + s1) + (s2 + s3);
}

function scale(g: Float64Array, s: number): void {
  for (let q = 0; q < g.length; q++) g[q] *= s;
}

function sgd(p: Float64Array, g: Float64Array, lr: number): void {
  for (let q = 0; q < p.length; q++) p[q] -= lr * g[q];
}

function momentum(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, mu: number): void {
  for (let q = 0; q < p.length; q++) {
    const u = mu * v[q] + g[q];
    v[q] = u;
    p[q] -= lr * u;
  }
}

function adam(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array,
  stepSize: number, beta1: number, beta2: number, c2: number, epsilon: number): void {
  const k1 = 1 - beta1, k2 = 1 - beta2;
  for (let q = 0; q < p.length; q++) {
    const gq = g[q];
    const mq = beta1 * m[q] + k1 * gq;
    const vq = beta2 * v[q] + k2 * gq * gq;
    m[q] = mq;
    v[q] = vq;
    p[q] -= stepSize * (mq / (Math.sqrt(vq) / c2 + epsilon));
  }
}

function rmsprop(p: Float64Array, g: Float64Array, v: Float64Array, lr: number, alpha: number, epsilon: number): void {
  const k = 1 - alpha;
  for (let q = 0; q < p.length; q++) {
    const gq = g[q];
    const vq = alpha * v[q] + k * gq * gq;
    v[q] = vq;
    p[q] -= lr * gq / (Math.sqrt(vq) + epsilon);
  }
}

function adagrad(p: Float64Array, g: Float64Array, s: Float64Array, lr: number, epsilon: number): void {
  for (let q = 0; q < p.length; q++) {
    const gq = g[q];
    const sq = s[q] + gq * gq;
    s[q] = sq;
    p[q] -= lr * gq / (Math.sqrt(sq) + epsilon);
  }
}

/** The plain JavaScript float64 kernels: the reference every other backend matches. */
export const jsKernels: Kernels = {
  name: 'js',
  allocate: (length) => new Float64Array(length),
  denseForward, denseBackward, activate, activationBackward,
  sumOfSquares, scale, sgd, momentum, adam, rmsprop, adagrad,
};
