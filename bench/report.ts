/**
 * What one workload's measurement yields, the issue's targets, and the two ways of
 * printing it: one JSON object per line (`--json`) or a table for people.
 */
export interface WorkloadResult {
  readonly workload: string;
  /** Kernel backend of the pipeline and bare runs: js, wasm or wasm-f32. */
  readonly backend: string;
  readonly batch: number;
  /** Samples per timed run, and timed runs per mode (each after one untimed warm-up run). */
  readonly n: number;
  readonly reps: number;
  /** Medians over the reps. */
  readonly pipeline_samples_per_s: number;
  readonly bare_samples_per_s: number;
  readonly ratio_pipeline_bare: number;
  /** null when the yardstick was not found (see `yardstick_skipped`). */
  readonly yardstick_u4_samples_per_s: number | null;
  readonly ratio_bare_yardstick: number | null;
  readonly yardstick_skipped: string | null;
  readonly flops_per_sample: number;
  readonly gflops_pipeline: number;
  readonly gflops_bare: number;
  /** Mean batch loss over the last 10% of steps of the last rep. */
  readonly loss_pipeline: number;
  readonly loss_bare: number;
  readonly loss_yardstick: number | null;
  /** Pipeline and bare runs ended with bitwise-identical parameters, in every rep. */
  readonly params_identical: boolean;
  readonly target_pipeline_bare: number;
  readonly met_pipeline_bare: boolean;
  readonly target_bare_yardstick: number;
  readonly met_bare_yardstick: boolean | null;
  /** Pipeline samples/s over the js backend's, measured in the same run (null when js was not measured). */
  readonly speedup_vs_js: number | null;
  /** Issue #3's pipeline samples/s target for this workload and backend (null: none set, e.g. for js). */
  readonly target_samples_per_s: number | null;
  readonly met_samples_per_s: boolean | null;
  readonly runs: { readonly pipeline: readonly number[]; readonly bare: readonly number[]; readonly yardstick: readonly number[] };
  readonly node: string;
  /** Measured under tsx's CommonJS hook, i.e. with V8's ArrayBufferDetaching protector invalidated (see engine.ts). */
  readonly tsx_cjs_hook: boolean;
}

/** Issue #3 (WebAssembly kernels): samples/s through the full pipeline, per workload and backend. */
export const SPEED_TARGETS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  w1: { wasm: 300_000 },
  w2: { wasm: 90_000 },
  w3: { wasm: 20_000, 'wasm-f32': 31_000 },
};

/** pipeline ≥ 0.8 × bare at batch 1, ≥ 0.95 × bare at batch ≥ 32; bare ≥ the u4 yardstick. */
export const pipelineTarget = (batch: number): number => (batch >= 32 ? 0.95 : 0.8);
export const YARDSTICK_TARGET = 1;

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

const int = (v: number) => Math.round(v).toLocaleString('en-US');
const ratio = (v: number | null) => (v === null ? '—' : v.toFixed(2));
const verdict = (value: number | null, target: number) =>
  value === null ? 'not measured' : `${value >= target ? 'MET' : 'MISSED'} (${value.toFixed(3)} vs ≥ ${target}, ${value >= target ? '+' : ''}${((value / target - 1) * 100).toFixed(1)}%)`;

export function formatTable(results: readonly WorkloadResult[]): string {
  const head = ['workload', 'backend', 'batch', 'pipeline/s', 'bare/s', 'pipe/bare', 'u4/s', 'bare/u4', 'GFLOP/s pipe', 'GFLOP/s bare', 'pipe vs js', 'target/s'];
  const rows = results.map((r) => [
    r.workload, r.backend, String(r.batch), int(r.pipeline_samples_per_s), int(r.bare_samples_per_s), ratio(r.ratio_pipeline_bare),
    r.yardstick_u4_samples_per_s === null ? '—' : int(r.yardstick_u4_samples_per_s), ratio(r.ratio_bare_yardstick),
    r.gflops_pipeline.toFixed(3), r.gflops_bare.toFixed(3), r.speedup_vs_js === null ? '—' : `${r.speedup_vs_js.toFixed(2)}×`,
    r.target_samples_per_s === null ? '—' : `${r.met_samples_per_s ? 'MET' : 'MISSED'} ≥ ${int(r.target_samples_per_s)}`,
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: readonly string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  const out = [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''];
  for (const r of results) {
    out.push(`${r.workload} ${r.backend}: final loss pipeline ${r.loss_pipeline.toPrecision(6)}, bare ${r.loss_bare.toPrecision(6)}` +
      `${r.loss_yardstick === null ? '' : `, yardstick ${r.loss_yardstick.toPrecision(6)}`}; ` +
      `params pipeline vs bare: ${r.params_identical ? 'bitwise identical' : 'DIFFERENT'}`);
    out.push(`    pipeline ≥ ${r.target_pipeline_bare}× bare: ${verdict(r.ratio_pipeline_bare, r.target_pipeline_bare)}`);
    out.push(`    bare ≥ u4 yardstick:  ${r.yardstick_skipped ?? verdict(r.ratio_bare_yardstick, r.target_bare_yardstick)}`);
    if (r.target_samples_per_s !== null) {
      out.push(`    pipeline ≥ ${int(r.target_samples_per_s)} samples/s (issue #3): ${verdict(r.pipeline_samples_per_s / r.target_samples_per_s, 1)}`);
    }
    out.push(`    runs (samples/s): pipeline ${r.runs.pipeline.map(int).join(' ')} | bare ${r.runs.bare.map(int).join(' ')}` +
      (r.runs.yardstick.length > 0 ? ` | u4 ${r.runs.yardstick.map(int).join(' ')}` : ''));
  }
  return out.join('\n');
}
