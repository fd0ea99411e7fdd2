/**
 * Summaries of a layer's values (weights or gradients) in O(n) and without sorting:
 * a fine histogram over [min, max], and quantiles read off its cumulative counts.
 */
export const FINE_BINS = 512;

/** The quantiles a distribution chart shows, in order: min, 5 %, 25 %, median, 75 %, 95 %, max. */
export const QUANTILES = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1] as const;

export interface Summary {
  min: number;
  max: number;
  /** Largest |value|. */
  absMax: number;
  /** 99th percentile of |value|: a colour scale that one outlier does not wash out. */
  abs99: number;
  /** Values of QUANTILES. */
  readonly quantiles: Float64Array;
  /** Counts of FINE_BINS bins over [min, max]. */
  readonly bins: Uint32Array;
  count: number;
}

/** Scratch counts of |v| (one summary at a time: the page is single-threaded). */
const ABS_BINS = new Uint32Array(FINE_BINS);

export function createSummary(): Summary {
  return { min: 0, max: 0, absMax: 0, abs99: 0, quantiles: new Float64Array(QUANTILES.length), bins: new Uint32Array(FINE_BINS), count: 0 };
}

/** Fills `out` with the summary of the finite values of `values` (non-finite ones are skipped). */
export function summarize(values: ArrayLike<number>, out: Summary = createSummary()): Summary {
  let min = Infinity, max = -Infinity, count = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    count++;
  }
  out.bins.fill(0);
  out.count = count;
  if (count === 0) {
    out.min = out.max = out.absMax = out.abs99 = 0;
    out.quantiles.fill(0);
    return out;
  }
  out.min = min;
  out.max = max;
  out.absMax = Math.max(Math.abs(min), Math.abs(max));
  const width = max - min;
  const scale = width > 0 ? FINE_BINS / width : 0;
  const absBins = ABS_BINS; // |v| over [0, absMax]
  absBins.fill(0);
  const absScale = out.absMax > 0 ? FINE_BINS / out.absMax : 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    out.bins[Math.min(FINE_BINS - 1, Math.floor((v - min) * scale))]++;
    absBins[Math.min(FINE_BINS - 1, Math.floor(Math.abs(v) * absScale))]++;
  }
  for (let q = 0; q < QUANTILES.length; q++) out.quantiles[q] = quantile(out.bins, count, QUANTILES[q], min, width);
  out.quantiles[0] = min;
  out.quantiles[QUANTILES.length - 1] = max;
  out.abs99 = quantile(absBins, count, 0.99, 0, out.absMax);
  return out;
}

/** The p-quantile from bin counts over [lo, lo + width], interpolating inside the bin. */
function quantile(bins: Uint32Array, count: number, p: number, lo: number, width: number): number {
  const target = p * count;
  let seen = 0;
  for (let b = 0; b < bins.length; b++) {
    const c = bins[b];
    if (seen + c >= target && c > 0) {
      const inside = (target - seen) / c;
      return lo + ((b + inside) / bins.length) * width;
    }
    seen += c;
  }
  return lo + width;
}
