/**
 * The two-sample Kolmogorov–Smirnov test for two samples of the same size, with the exact
 * p-value: what SciPy's `stats.ks_2samp(a, b, method="auto")` computes for samples of
 * equal size n ≤ 10,000 (and so what River's KSWIN gets).
 */

/** D = sup |F_a − F_b| of the two empirical distribution functions (ties handled as SciPy does). */
export function ksStatistic(a: readonly number[], b: readonly number[]): number {
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  let i = 0, j = 0, d = 0;
  while (i < x.length || j < y.length) {
    // step both distribution functions past the next value (all its copies in both samples)
    const v = j >= y.length || (i < x.length && x[i] <= y[j]) ? x[i] : y[j];
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    const diff = Math.abs(i / x.length - j / y.length);
    if (diff > d) d = diff;
  }
  return d;
}

/**
 * P(D_{n,n} ≥ h/n) under the null hypothesis, exactly: the share of lattice paths that
 * leave the band between the two diagonals (SciPy's `_compute_prob_outside_square`).
 */
export function probOutsideSquare(n: number, h: number): number {
  let p = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    p = p1 * (1 - p);
  }
  return 2 * p;
}

/** The statistic and two-sided exact p-value of two samples of equal size. */
export function ksTwoSample(a: readonly number[], b: readonly number[]): { statistic: number; pValue: number } {
  if (a.length !== b.length || a.length === 0) throw new RangeError(`ksTwoSample takes two non-empty samples of one size, got ${a.length} and ${b.length}`);
  const n = a.length;
  const d = ksStatistic(a, b);
  const h = Math.round(d * n);
  if (h === 0) return { statistic: 0, pValue: 1 };
  return { statistic: h / n, pValue: Math.min(1, Math.max(0, probOutsideSquare(n, h))) };
}
