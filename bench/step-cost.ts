import { loadavg } from 'node:os';
import v8 from 'node:v8';
import { parseArgs } from 'node:util';
import { selectKernels } from '../core/backend.ts';
import { nativeSupported, setNativeParallel } from '../core/kernels-native.ts';
import { median } from './report.ts';
import { runBare, runPipeline, toBatches } from './runs.ts';
import { createWorkloadTrainer, makeSamples, WORKLOAD_NAMES, WORKLOADS, type Workload } from './workloads.ts';

/**
 * What one training step costs beyond its arithmetic: bytes allocated and CPU time per
 * step, through the full pipeline and through the bare loop (`bench/runs.ts`), per
 * workload and backend.
 *
 *   node --import tsx/esm bench/step-cost.ts [--workload w1|w2|w3|all] [--backend js|wasm|wasm-f32|native|native-f32|all] [--threads 1|2] [--reps N] [--json]
 *
 * Bytes are exact, not sampled: every byte the heap grew by between garbage collections,
 * summed over one run (`v8.GCProfiler` reports the heap before and after each one).
 * Time is the process's CPU time (user + system, so the collector's threads count too),
 * not wall time: on a machine shared with other work it moves far less. Pipeline and
 * bare runs interleave, and the figures are medians over the reps. `--threads 2` lets the
 * native backends share a step's products with their helper thread (then CPU time counts
 * both threads': compare the pipeline's extra time, pipeline − bare, rather than the ratio).
 */
const { values: opts } = parseArgs({
  options: {
    workload: { type: 'string', default: 'w1' },
    backend: { type: 'string', default: 'all' },
    reps: { type: 'string', default: '9' },
    threads: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const names = opts.workload === 'all' ? WORKLOAD_NAMES : WORKLOAD_NAMES.filter((w) => w === opts.workload);
if (names.length === 0) throw new Error(`--workload must be w1, w2, w3 or all, got ${opts.workload}`);
const BACKENDS = ['js', 'wasm', 'wasm-f32', ...(nativeSupported() ? ['native', 'native-f32'] as const : [])] as const;
const backends = opts.backend === 'all' ? BACKENDS : BACKENDS.filter((b) => b === opts.backend);
if (backends.length === 0) throw new Error(`--backend must be ${BACKENDS.join(', ')} or all, got ${opts.backend}`);
const threads = Number(opts.threads);
if (threads !== 1 && threads !== 2) throw new Error(`--threads must be 1 or 2, got ${opts.threads}`);
if (nativeSupported()) setNativeParallel(threads);
const reps = Number(opts.reps);
if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps must be an integer ≥ 1, got ${opts.reps}`);

export interface StepCost {
  readonly workload: string;
  readonly backend: string;
  readonly steps: number;
  readonly pipeline_bytes_per_step: number;
  readonly bare_bytes_per_step: number;
  readonly pipeline_cpu_ns_per_step: number;
  readonly bare_cpu_ns_per_step: number;
  /** bare CPU time over pipeline CPU time: `npm run bench`'s pipeline/bare ratio, by CPU time. */
  readonly ratio_pipeline_bare: number;
  /** The same runs in wall time (on a loaded machine, less steady than CPU time). */
  readonly pipeline_wall_ns_per_step: number;
  readonly bare_wall_ns_per_step: number;
}

/** Bytes allocated on the JavaScript heap while `run` runs. */
async function bytesAllocated(run: () => unknown): Promise<number> {
  const profiler = new v8.GCProfiler();
  const start = v8.getHeapStatistics().used_heap_size;
  profiler.start();
  await run();
  const end = v8.getHeapStatistics().used_heap_size;
  let bytes = 0, from = start;
  for (const gc of profiler.stop()!.statistics) {
    bytes += gc.beforeGC.heapStatistics.usedHeapSize - from;
    from = gc.afterGC.heapStatistics.usedHeapSize;
  }
  return bytes + end - from;
}

/** CPU and wall nanoseconds `run` takes. */
async function nanoseconds(run: () => unknown): Promise<{ cpu: number; wall: number }> {
  const before = process.cpuUsage(), t0 = performance.now();
  await run();
  const wall = (performance.now() - t0) * 1e6, used = process.cpuUsage(before);
  return { cpu: (used.user + used.system) * 1e3, wall };
}

async function measure(w: Workload, backend: (typeof backends)[number]): Promise<StepCost> {
  const kernels = selectKernels(backend);
  const samples = makeSamples(w.name, w.n);
  const batches = toBatches(samples, w.batch);
  const steps = batches.length;
  const pipeline = () => runPipeline(createWorkloadTrainer(w, kernels), samples, w.batch);
  const bare = () => runBare(createWorkloadTrainer(w, kernels), batches);
  for (let i = 0; i < 2; i++) { await pipeline(); bare(); } // warm-up: optimised code, grown buffers
  const pipelineBytes = await bytesAllocated(pipeline), bareBytes = await bytesAllocated(bare);
  const p: { cpu: number; wall: number }[] = [], b: { cpu: number; wall: number }[] = [];
  for (let r = 0; r < reps; r++) {
    if (r % 2 === 0) { p.push(await nanoseconds(pipeline)); b.push(await nanoseconds(bare)); }
    else { b.push(await nanoseconds(bare)); p.push(await nanoseconds(pipeline)); }
  }
  const pn = median(p.map((t) => t.cpu)) / steps, bn = median(b.map((t) => t.cpu)) / steps;
  return {
    workload: w.name, backend, steps,
    pipeline_bytes_per_step: pipelineBytes / steps, bare_bytes_per_step: bareBytes / steps,
    pipeline_cpu_ns_per_step: pn, bare_cpu_ns_per_step: bn, ratio_pipeline_bare: bn / pn,
    pipeline_wall_ns_per_step: median(p.map((t) => t.wall)) / steps, bare_wall_ns_per_step: median(b.map((t) => t.wall)) / steps,
  };
}

const head = 'workload  backend      pipeline B/step  bare B/step  pipeline ns/step  bare ns/step  extra ns/step  pipe/bare (CPU)  wall: pipeline, bare, extra ns/step';
if (!opts.json) console.log(`streamgrad step cost · node ${process.versions.node} · ${threads} thread${threads === 1 ? '' : 's'} · medians of ${reps} · load average ${loadavg()[0].toFixed(2)}\n${head}`);
for (const name of names) {
  for (const backend of backends) {
    const c = await measure(WORKLOADS[name], backend);
    if (opts.json) console.log(JSON.stringify(c));
    else {
      console.log([
        c.workload.padEnd(8), c.backend.padEnd(11), c.pipeline_bytes_per_step.toFixed(0).padStart(15), c.bare_bytes_per_step.toFixed(0).padStart(11),
        c.pipeline_cpu_ns_per_step.toFixed(0).padStart(16), c.bare_cpu_ns_per_step.toFixed(0).padStart(12),
        (c.pipeline_cpu_ns_per_step - c.bare_cpu_ns_per_step).toFixed(0).padStart(13), c.ratio_pipeline_bare.toFixed(3).padStart(15),
        `  ${c.pipeline_wall_ns_per_step.toFixed(0)}, ${c.bare_wall_ns_per_step.toFixed(0)}, ${(c.pipeline_wall_ns_per_step - c.bare_wall_ns_per_step).toFixed(0)}`,
      ].join('  '));
    }
  }
}
