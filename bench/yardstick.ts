import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './report.ts';
import type { WorkloadName } from './workloads.ts';

/**
 * The plain-JavaScript yardstick, shared/anchors/bare.mjs with its 4-way unrolled
 * kernel, run as a child process in the same bench run so that ratios hold on a noisy
 * machine. Vendored in bench/anchors (from the shared anchors, see VENDORED.md there); STREAMGRAD_ANCHORS overrides.
 */
export interface YardstickResult {
  /** Median of its repetitions. */
  readonly samplesPerSecond: number;
  readonly runs: readonly number[];
  /** Its mean loss over the last 10% of samples (its own init, so close to ours, not equal). */
  readonly loss: number;
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export function anchorsDir(): string {
  return process.env.STREAMGRAD_ANCHORS ?? resolve(repoRoot, 'bench/anchors');
}

/** The yardstick script, or null when it is not there (the bench then skips that column). */
export function yardstickScript(): string | null {
  const script = join(anchorsDir(), 'bare.mjs');
  return existsSync(script) ? script : null;
}

/** Runs `bare.mjs --kernel u4` on the first `n` samples: `warmup` samples untimed, then `reps` timed runs. */
export function runYardstick(script: string, workload: WorkloadName, n: number, reps: number, warmup: number): YardstickResult {
  const args = [script, '--workload', workload, '--kernel', 'u4', '--n', String(n), '--reps', String(reps), '--warmup', String(warmup)];
  const child = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`yardstick failed (${child.status ?? child.signal}): node ${args.join(' ')}\n${child.stderr}`);
  const lines = child.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { samples_per_s: number; last_loss: number });
  if (lines.length !== reps) throw new Error(`yardstick printed ${lines.length} result lines, expected ${reps}`);
  const runs = lines.map((l) => l.samples_per_s);
  return { samplesPerSecond: median(runs), runs, loss: lines[lines.length - 1].last_loss };
}
