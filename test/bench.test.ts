import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { WorkloadResult } from '../bench/report.ts';
import { makeData, WORKLOAD_NAMES } from '../bench/workloads.ts';
import { anchorsDir } from '../bench/yardstick.ts';
import { nativeSupported } from '../core/kernels-native.ts';

/**
 * Smoke test of the engine benchmark: `bench/engine.ts --quick --json` runs as a child
 * process and its JSON lines are checked for shape and for the pipeline and bare runs
 * ending with the same parameters. Nothing here asserts a speed.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const hasYardstick = existsSync(join(anchorsDir(), 'bare.mjs'));

describe('bench/engine.ts --quick --json', () => {
  it('prints one well-formed result per workload, pipeline and bare ending bitwise equal', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/engine.ts', '--quick', '--json'], { cwd: root });
    const results = stdout.trim().split('\n').map((line) => JSON.parse(line) as WorkloadResult);
    // one result per workload and backend, in that order
    const backends = ['js', 'wasm', 'wasm-f32', ...(nativeSupported() ? ['native', 'native-f32'] : [])];
    expect(results.map((r) => `${r.workload}/${r.backend}`)).toEqual(WORKLOAD_NAMES.flatMap((w) => backends.map((b) => `${w}/${b}`)));
    for (const r of results) {
      expect(r.batch).toBe({ w1: 1, w2: 32, w3: 64 }[r.workload]);
      expect(r.flops_per_sample).toBe({ w1: 7_872, w2: 32_256, w3: 506_880 }[r.workload]);
      expect(r.params_identical).toBe(true);
      expect(r.loss_pipeline).toBe(r.loss_bare);
      expect(Number.isFinite(r.loss_pipeline)).toBe(true);
      for (const v of [r.pipeline_samples_per_s, r.bare_samples_per_s, r.ratio_pipeline_bare, r.gflops_pipeline, r.gflops_bare]) {
        expect(v).toBeGreaterThan(0);
      }
      expect(r.runs.pipeline).toHaveLength(r.reps);
      expect(r.runs.bare).toHaveLength(r.reps);
      expect(typeof r.met_pipeline_bare).toBe('boolean');
      if (hasYardstick) {
        expect(r.yardstick_u4_samples_per_s).toBeGreaterThan(0);
        expect(r.ratio_bare_yardstick).toBeCloseTo(r.bare_samples_per_s / r.yardstick_u4_samples_per_s!, 9);
        expect(typeof r.met_bare_yardstick).toBe('boolean');
      } else {
        expect(r.yardstick_u4_samples_per_s).toBeNull();
        expect(r.yardstick_skipped).toMatch(/bare\.mjs/);
      }
    }
  });

  it.runIf(hasYardstick)('trains on exactly the yardstick\'s data (bench/workloads.ts makeData is a faithful port)', async () => {
    const anchors = (await import(pathToFileURL(join(anchorsDir(), 'common.mjs')).href)) as {
      makeData(name: string, n: number): { X: Float64Array; Y: Float64Array; labels: Int32Array };
    };
    for (const name of WORKLOAD_NAMES) {
      const ours = makeData(name, 500), theirs = anchors.makeData(name, 500);
      expect(Buffer.from(ours.X.buffer).equals(Buffer.from(theirs.X.buffer)), `${name} X`).toBe(true);
      expect(Buffer.from(ours.Y.buffer).equals(Buffer.from(theirs.Y.buffer)), `${name} Y`).toBe(true);
      expect(Buffer.from(ours.labels.buffer).equals(Buffer.from(theirs.labels.buffer)), `${name} labels`).toBe(true);
    }
  });
});
