/** Axis and readout number labels: pure, no DOM (shared by the charts and the tests). */

/** Tick labels: short, exponent form for tiny or huge values (`digits`: significant digits beyond the first). */
export function formatTick(v: number | null, digits = 1): string {
  if (v === null || !Number.isFinite(v)) return '';
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 1e6 || abs < 1e-3) return v.toExponential(digits).replace('e+', 'e');
  if (abs >= 1e4) return `${Number((v / 1e3).toPrecision(digits + 2))}k`;
  return Number(v.toPrecision(Math.max(4, digits + 1))).toString();
}

/**
 * Labels for an axis's ticks, never the same label twice: ticks 1.20e6 and 1.25e6 would
 * both read 1.2e6 at one decimal, so the digits grow until every distinct tick reads
 * differently (up to 15).
 */
export function formatTicks(ticks: readonly number[]): string[] {
  for (let digits = 1; ; digits++) {
    const labels = ticks.map((t) => formatTick(t, digits));
    const shown = labels.filter((l, i) => l !== '' && labels.indexOf(l) !== i);
    if (shown.length === 0 || digits >= 15) return labels;
  }
}
