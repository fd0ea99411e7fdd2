import type { RollingMetrics } from '../core/evaluation.ts';

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

/**
 * `loss 0.0123, mae 0.0456, accuracy 98.5%`, the rolling prequential metrics (or the
 * whole-stream ones: anything with `loss`, `mae`, `accuracy`); `lossName` labels the
 * loss; `units` (a normalised target's name) says what they are measured in:
 * `mse 0.19, mae 0.44 (in units of co2)`.
 */
export function formatMetrics(metrics: Pick<RollingMetrics, 'count' | 'loss' | 'mae' | 'accuracy'> | undefined, lossName = 'loss', units?: string): string {
  const inUnits = units === undefined ? '' : ` (in units of ${units})`;
  if (metrics === undefined || metrics.count === 0) return `${lossName} -, mae -`;
  const parts = [`${lossName} ${formatNumber(metrics.loss)}`, `mae ${formatNumber(metrics.mae)}${inUnits}`];
  if (metrics.accuracy !== undefined) parts.push(`accuracy ${(metrics.accuracy * 100).toFixed(1)}%`);
  return parts.join(', ');
}

/** `trained 18 samples, skipped 36 (36 steps)`: samples learned from apart from those of skipped steps. */
export function formatTrained(counters: { readonly samples: number; readonly skipped: number; readonly skippedSamples: number }): string {
  const trained = counters.samples - counters.skippedSamples;
  return `trained ${trained} sample${trained === 1 ? '' : 's'}${counters.skipped === 0 ? '' : `, skipped ${counters.skippedSamples} (${counters.skipped} step${counters.skipped === 1 ? '' : 's'} with non-finite values)`}`;
}

/** `3→16 relu→16 relu→1 linear`. */
export function formatTopology(inputSize: number, layers: readonly { readonly outputs: number; readonly activation: string }[]): string {
  return [String(inputSize), ...layers.map((l) => `${l.outputs} ${l.activation}`)].join('→');
}

/** `950`, `12.3k`, `4.56M`: a count in three significant digits, for status lines that must stay short. */
export function formatCount(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (Math.abs(value) < 999.5) return String(Math.round(value));
  const units = ['k', 'M', 'G', 'T'];
  let scaled = value / 1000;
  let unit = 0;
  // 999.96k reads as 1000k at three digits: that is 1M
  while (Math.abs(Number(scaled.toPrecision(3))) >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit++;
  }
  return `${Number(scaled.toPrecision(3))}${units[unit]}`;
}

/** `512 B`, `64.0 KiB`, `12.3 MiB`, `1.20 GiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** A duration as a clock reads it: `0:07`, `12:34`, `1:02:03`; `-` when unknown. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/**
 * One model's status line, as `start` prints it every second when stderr is not a terminal
 * and in its summary: `wide 3→70 relu→1 linear  step 1200  samples 1200  mse 0.0123, mae
 * 0.0456  45000 samples/s`.
 */
export function formatStatus(
  label: string,
  counters: { readonly steps: number; readonly samples: number },
  metrics: RollingMetrics | undefined,
  lossName: string,
  samplesPerSecond: number,
  units?: string,
): string {
  return `${label}  step ${counters.steps}  samples ${counters.samples}  ${formatMetrics(metrics, lossName, units)}  ${formatRate(samplesPerSecond)}`;
}
