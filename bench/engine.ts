import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { selectKernels } from '../core/backend.ts';
import type { Kernels } from '../core/kernels.ts';
import { nativeSupported } from '../core/kernels-native.ts';
import { formatTable, median, pipelineTarget, SPEED_TARGETS, type WorkloadResult, YARDSTICK_TARGET } from './report.ts';
import { runBare, runPipeline, type RunResult, toBatches } from './runs.ts';
import { createWorkloadTrainer, flopsPerSample, makeSamples, type Workload, WORKLOAD_NAMES, WORKLOADS } from './workloads.ts';
import { anchorsDir, runYardstick, yardstickScript } from './yardstick.ts';

/**
 * The engine benchmark (`npm run bench`): for each workload and kernel backend, samples/s
 * of the full RxJS pipeline, of a bare loop over the same kernels, and of the plain-JS
 * yardstick, all in one run so that the ratios hold on a noisy machine. The backends'
 * runs interleave rep by rep, so that drift hits them alike.
 *
 *   npm run bench -- [--workload w1|w2|w3|all] [--backend js|wasm|wasm-f32|native|native-f32|all] [--reps N] [--quick] [--json]
 *
 * `all` includes native and native-f32 where the addon is built. Against PyTorch and the
 * bare C loop, with one thread and both cores: bench/native.ts (`npm run bench:native`).
 *
 * TensorFlow.js on the same workloads: bench/peers/ (installed separately).
 */
const { values: opts } = parseArgs({
  options: {
    workload: { type: 'string', default: 'all' },
    backend: { type: 'string', default: 'all' },
    reps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const names = opts.workload === 'all' ? WORKLOAD_NAMES : WORKLOAD_NAMES.filter((w) => w === opts.workload);
if (names.length === 0) throw new Error(`--workload must be w1, w2, w3 or all, got ${opts.workload}`);
const BACKEND_NAMES = ['js', 'wasm', 'wasm-f32', ...(nativeSupported() ? ['native', 'native-f32'] as const : [])] as const;
const backends = opts.backend === 'all' ? [...BACKEND_NAMES] : BACKEND_NAMES.filter((b) => b === opts.backend);
if (backends.length === 0) throw new Error(`--backend must be js, wasm, wasm-f32, native, native-f32 or all, got ${opts.backend}`);
const reps = opts.reps === undefined ? (opts.quick ? 1 : 5) : Number(opts.reps);
if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps must be an integer ≥ 1, got ${opts.reps}`);
const script = yardstickScript();
/** Progress, to stderr (stdout carries only the results). */
const log = (message: string) => { if (!opts.json) process.stderr.write(`${message}\n`); };
// The tsx CLI also installs a CommonJS hook, which sends rxjs's CommonJS build through
// es-module-lexer on the main thread; growing that lexer's WebAssembly memory detaches an
// ArrayBuffer, and V8 then guards every typed-array access of the process against
// detachment (its ArrayBufferDetaching protector is gone). `node --import tsx/esm` keeps
// the lexer in the loader's worker thread; the yardstick runs under plain node.
const tsxCjsHook = '.ts' in createRequire(import.meta.url).extensions;
/** Exactly the bytes an array views (with the wasm backend, `.buffer` is the whole WebAssembly memory). */
const bytesOf = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

interface Series {
  readonly kernels: Kernels;
  readonly pipeline: number[];
  readonly bare: number[];
  identical: boolean;
  lossPipeline: number;
  lossBare: number;
}

async function measure(w: Workload): Promise<WorkloadResult[]> {
  const n = opts.quick ? w.quickN : w.n;
  const samples = makeSamples(w.name, n);
  const batches = toBatches(samples, w.batch);
  log(`${w.name}: ${n} samples × (1 warm-up + ${reps} reps) per mode and backend (${backends.join(', ')})…`);
  const series: Series[] = backends.map((b) => ({ kernels: selectKernels(b), pipeline: [], bare: [], identical: true, lossPipeline: NaN, lossBare: NaN }));
  for (const { kernels } of series) {
    await runPipeline(createWorkloadTrainer(w, kernels), samples, w.batch);
    runBare(createWorkloadTrainer(w, kernels), batches);
  }
  for (let r = 0; r < reps; r++) {
    for (const s of series) {
      // alternate which mode goes first, so that drift and GC debt do not favour one
      const p = createWorkloadTrainer(w, s.kernels), b = createWorkloadTrainer(w, s.kernels);
      let rp: RunResult, rb: RunResult;
      if (r % 2 === 0) { rp = await runPipeline(p, samples, w.batch); rb = runBare(b, batches); }
      else { rb = runBare(b, batches); rp = await runPipeline(p, samples, w.batch); }
      s.pipeline.push(n / rp.seconds);
      s.bare.push(n / rb.seconds);
      s.lossPipeline = rp.loss;
      s.lossBare = rb.loss;
      s.identical &&= bytesOf(p.model.params).equals(bytesOf(b.model.params));
    }
  }

  const yard = script === null ? null : runYardstick(script, w.name, n, reps, n);
  const flops = flopsPerSample(w.sizes);
  const ys = yard?.samplesPerSecond ?? null;
  const target = pipelineTarget(w.batch);
  const js = series.find((s) => s.kernels.name === 'js');
  return series.map((s) => {
    const ps = median(s.pipeline), bs = median(s.bare);
    const speedTarget = SPEED_TARGETS[w.name]?.[s.kernels.name] ?? null;
    return {
      workload: w.name, backend: s.kernels.name, batch: w.batch, n, reps,
      pipeline_samples_per_s: ps, bare_samples_per_s: bs, ratio_pipeline_bare: ps / bs,
      yardstick_u4_samples_per_s: ys, ratio_bare_yardstick: ys === null ? null : bs / ys,
      yardstick_skipped: script === null ? `skipped: no bare.mjs in ${anchorsDir()} (set STREAMGRAD_ANCHORS)` : null,
      flops_per_sample: flops, gflops_pipeline: (ps * flops) / 1e9, gflops_bare: (bs * flops) / 1e9,
      loss_pipeline: s.lossPipeline, loss_bare: s.lossBare, loss_yardstick: yard?.loss ?? null,
      params_identical: s.identical,
      target_pipeline_bare: target, met_pipeline_bare: ps / bs >= target,
      target_bare_yardstick: YARDSTICK_TARGET, met_bare_yardstick: ys === null ? null : bs / ys >= YARDSTICK_TARGET,
      speedup_vs_js: js === undefined ? null : ps / median(js.pipeline),
      target_samples_per_s: speedTarget, met_samples_per_s: speedTarget === null ? null : ps >= speedTarget,
      runs: { pipeline: s.pipeline, bare: s.bare, yardstick: yard?.runs ?? [] },
      node: process.versions.node, tsx_cjs_hook: tsxCjsHook,
    };
  });
}

if (!opts.json) {
  console.log(`streamgrad engine bench · node ${process.versions.node} · ${opts.quick ? 'quick (a smoke run: too short for meaningful figures)' : 'full'} · median of ${reps}` +
    ` · yardstick: ${script === null ? `none in ${anchorsDir()} (column skipped)` : `${script} --kernel u4`}`);
  if (tsxCjsHook) {
    console.log('note: tsx\'s CommonJS hook is active, so every typed-array access in this process carries a detached-buffer' +
      ' check (see bench/engine.ts); for the engine without that handicap: node --import tsx/esm bench/engine.ts');
  }
}
const results: WorkloadResult[] = [];
for (const name of names) {
  for (const result of await measure(WORKLOADS[name])) {
    if (opts.json) console.log(JSON.stringify(result));
    results.push(result);
  }
}
if (!opts.json) console.log(`\n${formatTable(results)}`);
