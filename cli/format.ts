import type { RollingMetrics } from '../pipeline/evaluation.ts';

/** Number formatting for status lines and summaries: short, fixed-width-ish, NaN as `-`. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? '-' : String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

export function formatRate(samplesPerSecond: number): string {
  return Number.isFinite(samplesPerSecond) ? `${Math.round(samplesPerSecond)} samples/s` : '- samples/s';
}

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** `loss 0.0123, mae 0.0456, accuracy 98.5%`, the rolling prequential metrics; `lossName` labels the loss. */
export function formatMetrics(metrics: RollingMetrics | undefined, lossName = 'loss'): string {
  if (metrics === undefined || metrics.count === 0) return `${lossName} -, mae -`;
  const parts = [`${lossName} ${formatNumber(metrics.loss)}`, `mae ${formatNumber(metrics.mae)}`];
  if (metrics.accuracy !== undefined) parts.push(`accuracy ${(metrics.accuracy * 100).toFixed(1)}%`);
  return parts.join(', ');
}

/** `3→16 relu→16 relu→1 linear`. */
export function formatTopology(inputSize: number, layers: readonly { readonly outputs: number; readonly activation: string }[]): string {
  return [String(inputSize), ...layers.map((l) => `${l.outputs} ${l.activation}`)].join('→');
}
