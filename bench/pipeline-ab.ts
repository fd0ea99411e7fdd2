import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { median } from './report.ts';

/**
 * The pipeline around the kernels, this tree against another (issue #15): per step, the
 * CPU time of the full pipeline (bench/runs.ts runPipeline) and of the bare loop (runBare),
 * with this tree's code and with `--against`'s (a checkout of another commit, e.g. main:
 * `git worktree add /tmp/main main`, its `npm install` or a copy of this tree's
 * node_modules and native/build). Each tree runs in a process of its own (two copies of
 * the code in one process share RxJS's call sites and the CPU's caches, and measured
 * unlike either alone); `--rounds` rounds alternate the trees, and each process runs
 * `--reps` pipeline and bare runs in turn, so that a loaded machine's drift hits all alike.
 *
 *   node --import tsx/esm bench/pipeline-ab.ts --against DIR [--workload w1|w2|w3] [--backend native-f32|native|wasm|js] [--threads 1|2] [--reps N] [--rounds N] [--null]
 *
 * `--null` replaces the passes, the gradient norm and the optimizer by no-ops: what is left
 * is the JavaScript around the kernels alone (validation, batching, loading, loss,
 * metrics, records, RxJS), steady even on a busy machine. Figures: medians and minima of
 * CPU µs per step over every run; pipeline − bare is the pipeline's own cost.
 */
const { values: opts } = parseArgs({
  options: {
    against: { type: 'string' },
    workload: { type: 'string', default: 'w3' },
    backend: { type: 'string', default: 'native-f32' },
    threads: { type: 'string', default: '1' },
    reps: { type: 'string', default: '7' },
    rounds: { type: 'string', default: '3' },
    null: { type: 'boolean', default: false },
    child: { type: 'string' }, // internal: measure the tree in this directory, print JSON
  },
});
if (opts.against === undefined && opts.child === undefined) throw new Error('--against DIR: the other tree (e.g. a checkout of main)');
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

/** Child: one tree, `reps` runs of each mode in turn; prints `{ pipeline: [...], bare: [...] }` (CPU ns per step). */
async function child(dir: string): Promise<void> {
  const t = await load(dir, dir);
  const w = t.workloads.WORKLOADS[opts.workload as 'w3'];
  if (w === undefined) throw new Error(`--workload must be w1, w2 or w3, got ${opts.workload}`);
  if (opts.backend.startsWith('native')) t.native.setNativeParallel(threads as 1 | 2);
  const real = t.backend.selectKernels(opts.backend as 'native-f32');
  const noop = () => {};
  const kernels = opts.null ? { ...real, forwardPass: noop, backwardPass: noop, sumOfSquares: () => 0, scale: noop, sgd: noop, momentum: noop, adam: noop } : real;
  // with no-op kernels a run is short enough for one minor GC to weigh on it: ten passes over the samples
  const once = t.workloads.makeSamples(w.name, w.n);
  const samples = opts.null ? Array.from({ length: 10 }, () => once).flat() : once, batches = t.runs.toBatches(samples, w.batch);
  // the trainer is made outside the timed part: its He initialisation alone is ~6 µs a W3 step
  const time = async (run: (trainer: ReturnType<Workloads['createWorkloadTrainer']>) => unknown) => {
    const trainer = t.workloads.createWorkloadTrainer(w, kernels);
    const before = process.cpuUsage();
    await run(trainer);
    const used = process.cpuUsage(before);
    return ((used.user + used.system) * 1e3) / batches.length;
  };
  const modes = {
    pipeline: () => time((trainer) => t.runs.runPipeline(trainer, samples, w.batch)),
    bare: () => time((trainer) => t.runs.runBare(trainer, batches)),
  };
  const out = { pipeline: [] as number[], bare: [] as number[] };
  for (let i = 0; i < 2; i++) { await modes.pipeline(); await modes.bare(); } // warm-up
  for (let r = 0; r < reps; r++) {
    for (const m of r % 2 === 0 ? ['pipeline', 'bare'] as const : ['bare', 'pipeline'] as const) out[m].push(await modes[m]());
  }
  console.log(JSON.stringify(out));
}

if (opts.child !== undefined) {
  await child(opts.child);
  process.exit(0);
}

const rounds = Number(opts.rounds);
if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error(`--rounds must be an integer ≥ 1, got ${opts.rounds}`);
const here = resolve(import.meta.dirname, '..');
const trees = [{ name: 'this tree', dir: here }, { name: opts.against!, dir: resolve(opts.against!) }];
const results = trees.map(() => ({ pipeline: [] as number[], bare: [] as number[] }));
const passOn = process.argv.slice(2).filter((a, i, all) => a !== '--against' && all[i - 1] !== '--against' && !a.startsWith('--against='));
const loads = [loadavg()[0]];
for (let r = 0; r < rounds; r++) {
  for (const q of r % 2 === 0 ? [0, 1] : [1, 0]) {
    const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...passOn, '--child', trees[q].dir], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`${trees[q].name}: exit ${run.status ?? run.signal}: ${run.stderr.trim().split('\n').pop()}`);
    const got = JSON.parse(run.stdout.trim().split('\n').pop()!) as { pipeline: number[]; bare: number[] };
    results[q].pipeline.push(...got.pipeline);
    results[q].bare.push(...got.bare);
  }
}
loads.push(loadavg()[0]);
const us = (ns: number) => (ns / 1000).toFixed(2).padStart(9);
console.log(`${opts.workload} ${opts.backend}${opts.null ? ' (kernels replaced by no-ops)' : ''}, ${threads} thread${threads === 1 ? '' : 's'}, CPU µs per step, ${rounds} rounds × ${reps} runs a mode; load average ${loads.map((l) => l.toFixed(2)).join(' → ')}`);
console.log(`${''.padEnd(39)}   median  minimum`);
trees.forEach((t, q) => {
  const { pipeline: p, bare: b } = results[q];
  console.log(`${t.name.slice(-24).padEnd(24)} pipeline      ${us(median(p))}${us(Math.min(...p))}`);
  console.log(`${''.padEnd(24)} bare          ${us(median(b))}${us(Math.min(...b))}`);
  console.log(`${''.padEnd(24)} pipeline−bare ${us(median(p) - median(b))}${us(Math.min(...p) - Math.min(...b))}`);
});
