/**
 * Colours of the page. Signed values (weights, biases, gradients) use one diverging
 * palette everywhere: blue for negative, white at zero, orange for positive — the
 * convention of TensorFlow Playground — so one legend reads every view.
 */
const NEGATIVE = [8, 119, 189] as const; // blue
const ZERO = [247, 247, 247] as const;
const POSITIVE = [245, 124, 0] as const; // orange

/** RGB of t in [-1, 1] on the diverging palette (clamped; NaN is grey). */
export function diverging(t: number): readonly [number, number, number] {
  if (Number.isNaN(t)) return [160, 160, 160];
  const c = Math.max(-1, Math.min(1, t));
  const end = c < 0 ? NEGATIVE : POSITIVE;
  const k = Math.abs(c);
  return [
    Math.round(ZERO[0] + (end[0] - ZERO[0]) * k),
    Math.round(ZERO[1] + (end[1] - ZERO[1]) * k),
    Math.round(ZERO[2] + (end[2] - ZERO[2]) * k),
  ];
}

export const LUT_SIZE = 257;

/**
 * The diverging palette as packed RGBA words (little-endian ImageData order), index
 * `round((t + 1) / 2 · (LUT_SIZE − 1))`: one array lookup per heatmap cell.
 */
export const DIVERGING_LUT: Uint32Array = (() => {
  const lut = new Uint32Array(LUT_SIZE);
  for (let i = 0; i < LUT_SIZE; i++) {
    const [r, g, b] = diverging((i / (LUT_SIZE - 1)) * 2 - 1);
    lut[i] = (255 << 24) | (b << 16) | (g << 8) | r;
  }
  return lut;
})();

/** The LUT index of value v on a scale of ±scale. */
export function lutIndex(v: number, scale: number): number {
  if (!(scale > 0) || !Number.isFinite(v)) return (LUT_SIZE - 1) >> 1;
  const t = Math.max(-1, Math.min(1, v / scale));
  return Math.round(((t + 1) / 2) * (LUT_SIZE - 1));
}

export function cssColor(rgb: readonly [number, number, number], alpha = 1): string {
  return alpha >= 1 ? `rgb(${rgb[0]},${rgb[1]},${rgb[2]})` : `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${alpha})`;
}

/** Line colours of runs, in the order they appear (distinct from the diverging pair). */
export const RUN_COLORS = ['#6a3d9a', '#1b9e77', '#e7298a', '#66a61e', '#a6761d', '#444444', '#b2182b', '#7570b3'] as const;

/**
 * A run's line colour, from its name (FNV-1a hash): the same run has the same colour on
 * every page, after a reload, and whatever order the runs arrive in.
 */
export function runColor(name: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return RUN_COLORS[h % RUN_COLORS.length];
}

/** The colour of a stale run (the page is not connected: what it shows may be old). */
export const STALE_COLOR = '#b8bcc4';
