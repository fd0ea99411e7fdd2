import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { median } from './report.ts';

/**
 * The pipeline around the kernels, this tree against another (issue #15): per step, the
 * CPU time of the full pipeline (bench/runs.ts runPipeline) and of the bare loop (runBare),
 * with this tree's code and with `--against`'s (a checkout of another commit, e.g. main:
 * `git worktree add /tmp/main main`, its `npm install` or a copy of this tree's
 * node_modules and native/build), both loaded in this one process and run in turn, rep by
 * rep, so that a loaded machine's drift hits both alike.
 *
 *   node --import tsx/esm bench/pipeline-ab.ts --against DIR [--workload w1|w2|w3] [--backend native-f32|native|wasm|js] [--threads 1|2] [--reps N] [--null]
 *
 * `--null` replaces the passes, the gradient norm and the optimizer by no-ops: what is left
 * is the JavaScript around the kernels alone (validation, batching, loading, loss,
 * metrics, records, RxJS), steady even on a busy machine. Figures: medians and minima of
 * CPU µs per step; pipeline − bare is the pipeline's own cost.
 */
const { values: opts } = parseArgs({
  options: {
    against: { type: 'string' },
    workload: { type: 'string', default: 'w3' },
    backend: { type: 'string', default: 'native-f32' },
    threads: { type: 'string', default: '1' },
    reps: { type: 'string', default: '15' },
    null: { type: 'boolean', default: false },
  },
});
if (opts.against === undefined) throw new Error('--against DIR: the other tree (e.g. a checkout of main)');
const reps = Number(opts.reps);
if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps must be an integer ≥ 1, got ${opts.reps}`);
const threads = Number(opts.threads);
if (threads !== 1 && threads !== 2) throw new Error(`--threads must be 1 or 2, got ${opts.threads}`);

type Runs = typeof import('./runs.ts');
type Workloads = typeof import('./workloads.ts');
type Backend = typeof import('../core/backend.ts');
type Native = typeof import('../core/kernels-native.ts');
interface Tree { readonly name: string; runs: Runs; workloads: Workloads; backend: Backend; native: Native }

async function load(name: string, dir: string): Promise<Tree> {
  const at = (p: string) => pathToFileURL(resolve(dir, p)).href;
  return {
    name,
    runs: await import(at('bench/runs.ts')) as Runs,
    workloads: await import(at('bench/workloads.ts')) as Workloads,
    backend: await import(at('core/backend.ts')) as Backend,
    native: await import(at('core/kernels-native.ts')) as Native,
  };
}
const trees = [await load('this tree', resolve(import.meta.dirname, '..')), await load(opts.against, opts.against)];

const noop = () => {};
/** Every series: a tree, pipeline or bare, and how to run it once (CPU ns per step). */
const series = trees.flatMap((t) => {
  const w = t.workloads.WORKLOADS[opts.workload as 'w3'];
  if (w === undefined) throw new Error(`--workload must be w1, w2 or w3, got ${opts.workload}`);
  if (opts.backend.startsWith('native')) t.native.setNativeParallel(threads as 1 | 2);
  const real = t.backend.selectKernels(opts.backend as 'native-f32');
  const kernels = opts.null ? { ...real, forwardPass: noop, backwardPass: noop, sumOfSquares: () => 0, scale: noop, sgd: noop, momentum: noop, adam: noop } : real;
  const samples = t.workloads.makeSamples(w.name, w.n), batches = t.runs.toBatches(samples, w.batch);
  // the trainer is made outside the timed part: its He initialisation alone is ~6 µs a W3 step
  const time = async (run: (trainer: ReturnType<Workloads['createWorkloadTrainer']>) => unknown) => {
    const trainer = t.workloads.createWorkloadTrainer(w, kernels);
    const before = process.cpuUsage();
    await run(trainer);
    const used = process.cpuUsage(before);
    return ((used.user + used.system) * 1e3) / batches.length;
  };
  return [
    { tree: t.name, mode: 'pipeline', ns: [] as number[], run: () => time((trainer) => t.runs.runPipeline(trainer, samples, w.batch)) },
    { tree: t.name, mode: 'bare', ns: [] as number[], run: () => time((trainer) => t.runs.runBare(trainer, batches)) },
  ];
});

const loads = [loadavg()[0]];
for (const s of series) { await s.run(); await s.run(); } // warm-up
for (let r = 0; r < reps; r++) {
  // in turn, and in the other order every other rep
  for (const s of r % 2 === 0 ? series : [...series].reverse()) s.ns.push(await s.run());
}
loads.push(loadavg()[0]);
const us = (ns: number) => (ns / 1000).toFixed(2).padStart(9);
console.log(`${opts.workload} ${opts.backend}${opts.null ? ' (kernels replaced by no-ops)' : ''}, ${threads} thread${threads === 1 ? '' : 's'}, CPU µs per step, ${reps} reps in turn; load average ${loads.map((l) => l.toFixed(2)).join(' → ')}`);
console.log(`${''.padEnd(40)}   median  minimum`);
for (const t of trees) {
  const [p, b] = ['pipeline', 'bare'].map((m) => series.find((s) => s.tree === t.name && s.mode === m)!.ns);
  console.log(`${t.name.slice(-24).padEnd(24)} pipeline       ${us(median(p))}${us(Math.min(...p))}`);
  console.log(`${''.padEnd(24)} bare           ${us(median(b))}${us(Math.min(...b))}`);
  console.log(`${''.padEnd(24)} pipeline−bare  ${us(median(p) - median(b))}${us(Math.min(...p) - Math.min(...b))}`);
}
