import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { selectKernels } from '../core/backend.ts';
import { nativeInfo, nativePhases, nativeStatus, resetNativePhases, setNativeParallel } from '../core/kernels-native.ts';
import type { Kernels } from '../core/kernels.ts';
import { median } from './report.ts';
import { runBare, runPipeline, toBatches } from './runs.ts';
import { createWorkloadTrainer, flopsPerSample, makeSamples, WORKLOAD_NAMES, WORKLOADS, type WorkloadName } from './workloads.ts';

/**
 * The native backend against its yardsticks, all in one run (issue #15): streamgrad's full
 * pipeline on `native` and `native-f32` with one thread and with both cores (and `wasm` for
 * context), PyTorch with one thread in float64 and float32 (bench/peers/pytorch_peer.py, on
 * OpenBLAS only: it says which BLAS it got), the bare C loop (bench/anchors/bare.c), and this
 * CPU's measured peak (bench/peak.c), on the three workloads.
 *
 *   npm run bench:native -- [--reps N] [--quick] [--json] [--threshold]
 *
 * What two cores can give here is measured in the same run, so that the both-cores ratio
 * is judged against it: bench/scaling.c runs a pure fused-multiply-add loop on one thread and
 * on two at once (×2: two cores with their own FMA units; ×1: one core's, shared), and two
 * copies of this bench's W3 native-f32 one-thread run go at once beside one alone (each
 * copy's rate over the lone one's: what the workload itself keeps when both cores work).
 *
 * Rates are samples per second of wall time, and, for streamgrad and PyTorch, per second of
 * the process's CPU time too: on a shared machine the CPU-time rates are the steadier
 * measure of one thread's speed, while only wall time can show what a second core buys.
 * `--threshold` times products of growing size on one thread and split across two, for the
 * helper thread's threshold (PARALLEL_FLOPS in native/src/kernels.c).
 * `--phases` times W3 steps of the bare loop (runs.ts runBare: the pipeline's arithmetic) in
 * short windows, one thread and two (every step shared) interleaved, with the native
 * per-phase clocks (nativePhases): per step, each thread's time in the forward pass, the
 * backward pass, the gradient norm and the update, the caller's waits for the helper (the
 * cross-core waits), how late the helper started on its halves, and the rest of the step
 * (loss, batch loading: JavaScript); with the load average. On a loaded machine only
 * windows in which the helper was never late count as two-thread figures.
 */
const { values: opts } = parseArgs({
  options: {
    reps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    threshold: { type: 'boolean', default: false },
    phases: { type: 'boolean', default: false },
    copy: { type: 'boolean', default: false }, // internal: one copy of the W3 run, for the two-copies measurement
  },
});
const reps = opts.reps === undefined ? (opts.quick ? 1 : 5) : Number(opts.reps);
if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps must be an integer ≥ 1, got ${opts.reps}`);
const status = nativeStatus();
if (!status.available) throw new Error(`bench/native.ts: the native kernels are unavailable: ${status.reason}`);
const here = fileURLToPath(new URL('.', import.meta.url));
/** The 1-minute load average when the run started: on a shared machine, figures mean little without it. */
const loadAtStart = loadavg()[0];
const work = mkdtempSync(join(tmpdir(), 'sg-bench-native-'));
const log = (m: string) => { if (!opts.json) process.stderr.write(`${m}\n`); };

function compile(source: string, flags: string[]): string {
  const out = join(work, source.replace(/\W/g, '_'));
  const r = spawnSync('gcc', [...flags, '-march=native', '-o', out, join(here, source), '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${source}: ${r.stderr}`);
  return out;
}
const jsonLines = (text: string) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

if (opts.copy) {
  // W3, native-f32, one thread, through the pipeline: rates of wall and of CPU time over `reps` runs
  const wl = WORKLOADS.w3, n = opts.quick ? wl.quickN : wl.n, k = selectKernels('native-f32');
  const samples = makeSamples('w3', n);
  setNativeParallel(1);
  await runPipeline(createWorkloadTrainer(wl, k), samples.slice(0, 64 * wl.batch), wl.batch);
  const t0 = performance.now(), c0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) await runPipeline(createWorkloadTrainer(wl, k), samples, wl.batch);
  const used = process.cpuUsage(c0), seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ wall: (reps * n) / seconds, cpu: (reps * n) / ((used.user + used.system) / 1e6), start: t0 + performance.timeOrigin, seconds }));
  process.exit(0);
}

if (opts.phases) {
  const wl = WORKLOADS.w3, windows = 6 * reps, steps = 40;
  const batches = toBatches(makeSamples('w3', steps * wl.batch), wl.batch);
  const PH = ['forward', 'backward', 'norm', 'update'] as const;
  // each step timed on its own too: on a shared machine the shortest steps (and their p10) are
  // the ones in which both threads ran undisturbed, which a 40-step window rarely is
  const stepTimes: Record<1 | 2, number[]> = { 1: [], 2: [] };
  const windowOf = (backend: 'native' | 'native-f32', threads: 1 | 2): number => {
    setNativeParallel(threads, threads === 2 ? 0 : -1);
    const trainer = createWorkloadTrainer(wl, selectKernels(backend));
    runBare(trainer, batches.slice(0, 4)); // the plan, the helper awake
    let seconds = 0;
    for (const b of batches) {
      const t = runBare(trainer, [b]).seconds;
      stepTimes[threads].push(t);
      seconds += t;
    }
    return seconds / steps;
  };
  const quantile = (v: number[], q: number) => [...v].sort((a, b) => a - b)[Math.floor(q * (v.length - 1))];
  const us = (v: number) => (v === 0 ? '—' : (v * 1e6).toFixed(1)).padStart(8);
  const loads = [loadavg()[0]];
  for (const backend of ['native-f32', 'native'] as const) {
    const step: Record<1 | 2, number[]> = { 1: [], 2: [] };
    stepTimes[1] = []; stepTimes[2] = [];
    const p0 = nativePhases();
    resetNativePhases();
    for (let r = 0; r < windows; r++) { // interleaved
      step[1].push(windowOf(backend, 1));
      step[2].push(windowOf(backend, 2));
    }
    const p = nativePhases();
    void p0;
    loads.push(loadavg()[0]);
    console.log(`\nW3 ${backend}: ${windows} windows of ${steps} steps each way, interleaved, load average ${loads.at(-2)!.toFixed(1)} → ${loads.at(-1)!.toFixed(1)}`);
    console.log(`  best window µs per step: 1T ${us(Math.min(...step[1]))}, 2T ${us(Math.min(...step[2]))}; medians 1T ${us(median(step[1]))}, 2T ${us(median(step[2]))}`);
    const [s1, s2] = [quantile(stepTimes[1], 0), quantile(stepTimes[2], 0)], [p1, p2] = [quantile(stepTimes[1], 0.1), quantile(stepTimes[2], 0.1)];
    console.log(`  single steps µs (${stepTimes[1].length} each way): shortest 1T ${us(s1)}, 2T ${us(s2)} (×${(s1 / s2).toFixed(2)}); p10 1T ${us(p1)}, 2T ${us(p2)} (×${(p1 / p2).toFixed(2)})`);
    console.log('  shortest job (µs)      1T whole | 2T job  = caller half, helper half | in CPU time: caller, helper   (2T: jobs where the helper took its half;');
    console.log('                                    a layer not cut: its 2T time as the caller\'s; the norm: left by the shared backward pass)');
    let solo = 0, shared = 0;
    for (const k of PH) {
      p[k].best.forEach((b, slot) => {
        if (b.solo === 0 && b.shared === 0) return;
        // a job with no shared figure ran whole on the caller in shared steps too (a layer not
        // cut), except the norm, whose partial sums a shared backward pass leaves (kernels.c)
        solo += b.solo; shared += b.shared > 0 ? b.shared : k === 'norm' && p.norm.sharedJobs > 0 ? 0 : b.caller > 0 ? b.caller : b.solo;
        const what = k === 'forward' || k === 'backward' ? `${k} layer ${slot}` : k === 'update' && slot === 1 ? 'clip scale' : k;
        console.log(`  ${what.padEnd(20)}${us(b.solo)} | ${us(b.shared)} = ${us(b.caller)}, ${us(b.helper)} | ${us(b.callerCpu)}, ${us(b.helperCpu)}`);
      });
    }
    const rest = Math.min(...step[1]) - solo;
    console.log(`  sum of the phases      ${us(solo)} | ${us(shared)}   (×${(solo / shared).toFixed(2)})`);
    console.log(`  with the rest of a 1T step (${us(rest).trim()} µs: loss, batch loading, JavaScript): 2T/1T ×${((solo + rest) / (shared + rest)).toFixed(2)} when every job runs as its shortest`);
    const totals = PH.map((k) => `${k} ${p[k].sharedJobs} shared, caller waited ${(p[k].waitSeconds * 1e3).toFixed(1)} ms, helper late ${(p[k].helperLateSeconds * 1e3).toFixed(1)} ms`);
    console.log(`  totals: ${totals.join('; ')}`);
  }
  console.log(`\nload average (uptime): ${loads.map((l) => l.toFixed(2)).join(' → ')}`);
  setNativeParallel(1);
  process.exit(0);
}

if (opts.threshold) {
  // products of a W3-like layer pair at growing batch sizes: forward + both backward products
  const k = selectKernels('native');
  console.log('rows × n × m        flops     1 thread µs   2 threads µs   2T/1T');
  for (const [rows, n, m] of [[2, 64, 64], [4, 64, 64], [8, 64, 64], [16, 64, 64], [8, 256, 256], [16, 128, 256], [32, 256, 256], [64, 256, 256], [128, 256, 256]]) {
    const x = k.allocate(rows * n).fill(0.5), W = k.allocate(m * n).fill(0.01), b = k.allocate(m), z = k.allocate(rows * m);
    const gW = k.allocate(m * n), gb = k.allocate(m), dx = k.allocate(rows * n);
    const time = (threads: 1 | 2) => {
      setNativeParallel(threads, 0);
      const loops = Math.max(20, Math.round(2e8 / (6 * rows * n * m)));
      const t0 = performance.now();
      for (let q = 0; q < loops; q++) { k.denseForward(x, W, b, z, rows, n, m); k.denseBackward(x, z, W, gW, gb, dx, rows, n, m); }
      return ((performance.now() - t0) * 1000) / loops;
    };
    const i0 = nativeInfo();
    const one = median([time(1), time(1), time(1)]), two = median([time(2), time(2), time(2)]);
    const i1 = nativeInfo();
    const helper = i1.helperChunks - i0.helperChunks, caller = i1.callerChunks - i0.callerChunks;
    console.log(`${`${rows} × ${n} × ${m}`.padEnd(18)}${String(2 * rows * n * m).padStart(9)}${one.toFixed(1).padStart(14)}${two.toFixed(1).padStart(15)}${(two / one).toFixed(2).padStart(8)}   helper took ${caller + helper === 0 ? '—' : `${((100 * helper) / (caller + helper)).toFixed(0)}%`} of the chunks, caller waited ${(i1.waitSeconds - i0.waitSeconds) * 1e3 | 0} ms`);
  }
  setNativeParallel(2, -1);
  process.exit(0);
}

// ---- this CPU's peak, the bare C loop, PyTorch -------------------------------------------
log('peak: bench/peak.c…');
const peak = jsonLines(spawnSync(compile('peak.c', ['-O2']), { encoding: 'utf8' }).stdout)[0] as { gflops_f64: number; gflops_f32: number; vector_bits: number };
const bare = compile('anchors/bare.c', ['-O3']);
log('2-core scaling: bench/scaling.c…');
interface Scaling { fma_gflops_1t: number; fma_gflops_2t: [number, number]; scaling: number; clock_ghz_alone: number; clock_ghz_beside_fma: number; windows: { duo: [number, number]; clock: [number, number] } }
const scaling = jsonLines(spawnSync(compile('scaling.c', ['-O2', '-pthread']), ['2'], { encoding: 'utf8' }).stdout)[0] as unknown as Scaling;

/** W3 native-f32 one thread in `count` processes at once (this script with --copy): each one's rates. */
function copies(count: number): Promise<{ wall: number; cpu: number; start: number; seconds: number }[]> {
  const copyReps = opts.quick ? 3 : 20;
  return Promise.all(Array.from({ length: count }, () => new Promise<{ wall: number; cpu: number; start: number; seconds: number }>((done, fail) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--copy', '--reps', String(copyReps), ...(opts.quick ? ['--quick'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(jsonLines(out)[0] as never) : fail(new Error(`bench/native.ts --copy: exit ${code}`))));
  })));
}
log('two copies of W3 native-f32 1T at once, and one alone…');
const alone: number[] = [], aloneCpu: number[] = [], together: number[] = [], togetherCpu: number[] = [];
for (let r = 0; r < (opts.quick ? 1 : 3); r++) { // interleaved
  const [one] = await copies(1);
  alone.push(one.wall); aloneCpu.push(one.cpu);
  for (const c of await copies(2)) { together.push(c.wall); togetherCpu.push(c.cpu); }
}
const twoCopies = { wall: median(together) / median(alone), cpu: median(togetherCpu) / median(aloneCpu) };

interface Rates { wall: number; cpu: number | null }
const sizes = (w: WorkloadName) => (opts.quick ? WORKLOADS[w].quickN : WORKLOADS[w].n);

/**
 * bare.c prints wall-time rates; its CPU time comes from the shell's `times` (user + system
 * of the child, warm-up and data generation included, so the CPU rate is a slight
 * underestimate of the loop's own).
 */
function runBareC(w: WorkloadName): Rates {
  const n = sizes(w), warm = Math.min(n, 20_000);
  const r = spawnSync('bash', ['-c', `"$0" "$@"; times`, bare, w, String(n), String(warm), String(reps)], { encoding: 'utf8' });
  const times = r.stdout.trim().split('\n').pop()!.match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/);
  const cpuSeconds = times === null ? NaN : 60 * Number(times[1]) + Number(times[2]) + 60 * Number(times[3]) + Number(times[4]);
  return { wall: median(jsonLines(r.stdout).map((l) => l.samples_per_s as number)), cpu: (warm + reps * n) / cpuSeconds };
}

const python = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0) ?? null;
let blas: unknown = null;
function runTorch(w: WorkloadName, dtype: 'float64' | 'float32'): Rates | null {
  if (python === null) return null;
  const env: Record<string, string | undefined> = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' };
  delete env.OPENBLAS_CORETYPE; delete env.OPENBLAS_L2_SIZE;
  const args = [join(here, 'peers/pytorch_peer.py'), '--workload', w, '--dtype', dtype, '--threads', '1', '--reps', String(reps), ...(opts.quick ? ['--quick'] : [])];
  const r = spawnSync(python, args, { encoding: 'utf8', env });
  if (r.status !== 0) { log(`PyTorch ${dtype} ${w}: ${r.stderr.trim().split('\n').pop()}`); return null; }
  const line = jsonLines(r.stdout)[0];
  blas = line.blas;
  return { wall: line.samples_per_s as number, cpu: line.samples_per_cpu_s as number };
}

// ---- streamgrad ------------------------------------------------------------------------
const CONTENDERS = [
  { label: 'native 1T', backend: 'native', threads: 1 },
  { label: 'native 2T', backend: 'native', threads: 2 },
  { label: 'native-f32 1T', backend: 'native-f32', threads: 1 },
  { label: 'native-f32 2T', backend: 'native-f32', threads: 2 },
  { label: 'wasm', backend: 'wasm', threads: 1 },
] as const;

async function runStreamgrad(w: WorkloadName): Promise<Record<string, Rates>> {
  const wl = WORKLOADS[w], n = sizes(w);
  const samples = makeSamples(w, n);
  const kernels = new Map<string, Kernels>(CONTENDERS.map((c) => [c.backend, selectKernels(c.backend)]));
  const wall: Record<string, number[]> = {}, cpu: Record<string, number[]> = {};
  for (const c of CONTENDERS) { // warm-up
    setNativeParallel(c.threads);
    await runPipeline(createWorkloadTrainer(wl, kernels.get(c.backend)), samples.slice(0, Math.min(n, 64 * wl.batch)), wl.batch);
  }
  for (let r = 0; r < reps; r++) {
    for (const c of CONTENDERS) { // interleaved, so that drift hits all alike
      setNativeParallel(c.threads);
      const trainer = createWorkloadTrainer(wl, kernels.get(c.backend));
      const c0 = process.cpuUsage();
      const { seconds } = await runPipeline(trainer, samples, wl.batch);
      const used = process.cpuUsage(c0);
      (wall[c.label] ??= []).push(n / seconds);
      (cpu[c.label] ??= []).push(n / ((used.user + used.system) / 1e6));
    }
  }
  setNativeParallel(2);
  return Object.fromEntries(CONTENDERS.map((c) => [c.label, { wall: median(wall[c.label]), cpu: c.threads === 1 ? median(cpu[c.label]) : null }]));
}

const results: Record<string, Record<string, Rates | null>> = {};
for (const w of WORKLOAD_NAMES) {
  log(`${w}: streamgrad (${CONTENDERS.map((c) => c.label).join(', ')}), ${reps} reps…`);
  const ours = await runStreamgrad(w);
  log(`${w}: bare C, PyTorch float64 and float32…`);
  results[w] = { ...ours, 'bare C': runBareC(w), 'torch f64': runTorch(w, 'float64'), 'torch f32': runTorch(w, 'float32') };
}

// ---- report ----------------------------------------------------------------------------
const info = nativeInfo();
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null ? null : a / b);
const best = (...r: (Rates | null | undefined)[]) => {
  const ok = r.filter((x): x is Rates => x != null);
  return ok.length === 0 ? null : { wall: Math.max(...ok.map((x) => x.wall)), cpu: ok.some((x) => x.cpu === null) ? null : Math.max(...ok.map((x) => x.cpu!)) };
};
const R = results;
const torchBest = (w: WorkloadName) => best(R[w]['torch f64'], R[w]['torch f32']);
const targets = [
  { what: 'W3 best native 1 thread ≥ 1.0× PyTorch best dtype', target: 1.0, a: best(R.w3['native 1T'], R.w3['native-f32 1T']), b: torchBest('w3') },
  { what: 'W3 best native both cores ≥ 1.5× PyTorch best dtype (wall)', target: 1.5, a: best(R.w3['native 2T'], R.w3['native-f32 2T']), b: torchBest('w3') },
  { what: 'W3 both cores over one thread, native-f32 (1.5× PyTorch needs ~1.24×)', target: 1.24, a: R.w3['native-f32 2T'], b: R.w3['native-f32 1T'] },
  { what: 'W3 both cores over one thread, native (float64)', target: 1.24, a: R.w3['native 2T'], b: R.w3['native 1T'] },
  { what: 'W1 native ≥ 0.6× bare C loop', target: 0.6, a: R.w1['native 1T'], b: R.w1['bare C'] },
  { what: 'W2 best native 1 thread ≥ 4× PyTorch best dtype', target: 4, a: best(R.w2['native 1T'], R.w2['native-f32 1T']), b: torchBest('w2') },
].map((t) => ({ what: t.what, target: t.target, wall: ratio(t.a?.wall, t.b?.wall), cpu: ratio(t.a?.cpu, t.b?.cpu) }));

const load = { start: loadAtStart, end: loadavg()[0] };
const report = { node: process.versions.node, load, isa: info.isa, parallelFlops: info.parallelFlops, passes: { shared: info.sharedPasses, solo: info.soloPasses }, peak, scaling, twoCopies, blas, reps, quick: opts.quick, results, targets };
if (opts.json) {
  console.log(JSON.stringify(report));
} else {
  const f = (v: number | null | undefined, d = 0) => (v == null ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  console.log(`streamgrad native bench · node ${process.versions.node} · ${info.isa} · peak one thread ${f(peak.gflops_f64, 1)} GFLOP/s f64, ${f(peak.gflops_f32, 1)} f32 · median of ${reps} · load average ${load.start.toFixed(1)} at the start, ${load.end.toFixed(1)} at the end`);
  console.log(`PyTorch BLAS: ${blas === null ? 'no PyTorch' : JSON.stringify(blas)}`);
  const duo = scaling.windows.duo[0] + scaling.windows.duo[1];
  console.log(duo === 0
    ? '2-core scaling of a pure FMA loop: not measured (the two threads never ran at the same time: a busy machine)'
    : `2-core scaling of a pure FMA loop: ×${scaling.scaling.toFixed(2)} (one thread ${f(scaling.fma_gflops_1t, 1)} GFLOP/s f64; two at once ${f(scaling.fma_gflops_2t[0], 1)} + ${f(scaling.fma_gflops_2t[1], 1)}; clock ${f(scaling.clock_ghz_alone, 2)} GHz alone, ${scaling.windows.clock[1] === 0 ? '—' : f(scaling.clock_ghz_beside_fma, 2)} beside an FMA loop)`);
  console.log(`two copies of W3 native-f32 1T at once: each at ${(twoCopies.wall * 100).toFixed(0)}% of one alone in wall time, ${(twoCopies.cpu * 100).toFixed(0)}% in CPU time`);
  console.log(`both cores: ${info.sharedPasses} passes shared, ${info.soloPasses} on one thread (each workspace times its steps both ways and keeps to the faster); the helper took part in ${info.helperRuns} of ${info.parallelRuns} shared products, ${info.helperChunks} of ${info.callerChunks + info.helperChunks} chunks; the caller waited ${(info.waitSeconds * 1e3).toFixed(0)} ms for it in all`);
  for (const w of WORKLOAD_NAMES) {
    const flops = flopsPerSample(WORKLOADS[w].sizes);
    console.log(`\n${w} (${WORKLOADS[w].sizes.join('→')}, batch ${WORKLOADS[w].batch}, ${flops} FLOP/sample)`);
    console.log('  contender          samples/s wall   GFLOP/s   samples/s CPU   GFLOP/s CPU   % of peak (CPU)');
    for (const [name, r] of Object.entries(R[w])) {
      const pk = /f32/.test(name) ? peak.gflops_f32 : peak.gflops_f64;
      const gw = r === null ? null : (r.wall * flops) / 1e9, gc = r?.cpu == null ? null : (r.cpu * flops) / 1e9;
      console.log(`  ${name.padEnd(16)}${f(r?.wall).padStart(17)}${f(gw, 2).padStart(10)}${f(r?.cpu).padStart(16)}${f(gc, 2).padStart(14)}${(gc === null ? '—' : `${((gc / pk) * 100).toFixed(0)}%`).padStart(18)}`);
    }
  }
  console.log('\ntargets (ratios from this run: wall time; CPU time where both sides report it)');
  for (const t of targets) {
    const v = (x: number | null) => (x === null ? '—' : `${x.toFixed(2)}× ${x >= t.target ? 'MET' : 'MISSED'}`);
    console.log(`  ${t.what.padEnd(62)} wall ${v(t.wall).padEnd(14)} CPU ${v(t.cpu)}`);
  }
}
