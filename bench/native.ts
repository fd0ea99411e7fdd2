import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
 *   npm run bench:native -- [--reps N] [--quick] [--json] [--threshold] [--workload w1,w2,w3]
 *
 * What two cores can give here is measured in the same run, so that the both-cores ratio
 * is judged against it: bench/scaling.c runs a pure fused-multiply-add loop on one thread and
 * on two at once (×2: two cores with their own FMA units; ×1: one core's, shared), and two
 * copies of this bench's W3 native-f32 one-thread run go at once beside one alone (each
 * copy's rate over the lone one's: what the workload itself keeps when both cores work).
 * Neither hands data between the cores, which a shared step does several times: so W3's
 * both-cores figures (and `--phases`) come with the cross-core round trip and the time to
 * read 128 KiB the other core has just written, measured before and after them (a VM's host
 * may move its vCPUs meanwhile; see `crossCore`).
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
    workload: { type: 'string' }, // some of the workloads only (and their targets), e.g. to repeat W1 in fresh processes
    json: { type: 'boolean', default: false },
    threshold: { type: 'boolean', default: false },
    phases: { type: 'boolean', default: false },
    copy: { type: 'boolean', default: false }, // internal: one copy of the W3 run, for the two-copies measurement
  },
});
const chosen = opts.workload === undefined ? [...WORKLOAD_NAMES] : opts.workload.split(',');
for (const w of chosen) if (!(WORKLOAD_NAMES as readonly string[]).includes(w)) throw new Error(`--workload: ${w} is not one of ${WORKLOAD_NAMES.join(', ')}`);
const workloads = chosen as WorkloadName[];
const reps = opts.reps === undefined ? (opts.quick ? 1 : 5) : Number(opts.reps);
if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps must be an integer ≥ 1, got ${opts.reps}`);
const status = nativeStatus();
if (!status.available) throw new Error(`bench/native.ts: the native kernels are unavailable: ${status.reason}`);
const here = fileURLToPath(new URL('.', import.meta.url));
/** The 1-minute load average when the run started: on a shared machine, figures mean little without it. */
const loadAtStart = loadavg()[0];
const work = mkdtempSync(join(tmpdir(), 'sg-bench-native-'));
// the compiled yardsticks go with the run (every run, and each --copy child, made a folder that stayed)
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const log = (m: string) => { if (!opts.json) process.stderr.write(`${m}\n`); };

function compile(source: string, flags: string[]): string {
  const out = join(work, source.replace(/\W/g, '_'));
  const r = spawnSync('gcc', [...flags, '-march=native', '-o', out, join(here, source), '-lm'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${source}: ${r.stderr}`);
  return out;
}
let scalingPath: string | null = null;
/** bench/scaling.c, compiled once: the FMA loop's 2-core scaling and the cross-core readings. */
const scalingProgram = () => (scalingPath ??= compile('scaling.c', ['-O2', '-pthread']));
const jsonLines = (text: string) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

/**
 * How far apart the two vCPUs are for the data a shared step hands over (bench/scaling.c
 * `latency`, ~0.1 s): a cache line's round trip between them, and 128 KiB one has just written
 * read by the other. A VM's host may move its vCPUs while the bench runs (measured on this
 * machine: ~130 ns and ~620–700 ns round trips minutes apart), and two threads gain on W3 only
 * when they are close: so every both-cores figure comes with these readings, taken around it.
 */
interface CrossCore {
  readonly round_trip_ns: number;
  readonly handoff_128k_us: number;
  /** Writing the 128 KiB again once the other thread has read them: plain stores, non-temporal (native/src/kernels.c cross-core copies). */
  readonly rewrite_128k_us: number;
  readonly rewrite_nt_128k_us: number;
}
function crossCore(): CrossCore {
  return jsonLines(spawnSync(scalingProgram(), ['1', 'latency'], { encoding: 'utf8' }).stdout)[0] as unknown as CrossCore;
}
const describeCrossCore = (readings: readonly CrossCore[]) => readings.every((c) => c.round_trip_ns === 0) ? 'not measured (one CPU)' :
  `a cache line's round trip ${readings.map((c) => `${c.round_trip_ns} ns`).join(' → ')}, 128 KiB written by one read by the other ${readings.map((c) => `${c.handoff_128k_us} µs`).join(' → ')}, written again after that read ${readings.map((c) => `${c.rewrite_128k_us} µs`).join(' → ')} (non-temporal ${readings.map((c) => `${c.rewrite_nt_128k_us} µs`).join(' → ')}) (bench/scaling.c; ~50–150 ns when the two vCPUs share a die)`;

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
    const readings = [crossCore()];
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
    readings.push(crossCore());
    console.log(`\nW3 ${backend}: ${windows} windows of ${steps} steps each way, interleaved, load average ${loads.at(-2)!.toFixed(1)} → ${loads.at(-1)!.toFixed(1)}`);
    console.log(`  cross-core, before and after: ${describeCrossCore(readings)}`);
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
const scaling = jsonLines(spawnSync(scalingProgram(), ['2'], { encoding: 'utf8' }).stdout)[0] as unknown as Scaling;

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
 * One timed run of the bare C loop (after its warm-up), in a process of its own. bare.c
 * prints the timed run's wall-time rate only. Its CPU-time rate is that rate scaled by the
 * share of the time the whole child had a core (its CPU time, from the shell's `times`, over
 * its wall time less `spawnSeconds`, what starting a shell from this process takes), taken
 * as the same for its data, warm-up and timed run; never below the wall rate (a one-thread
 * loop cannot take more CPU time than wall time). (Subtracting a baseline
 * run's CPU time instead gave rates far above the wall rate on a loaded machine, the
 * baseline having run under other load.) None for a child under 20 ms of CPU (--quick).
 */
function runBareC(w: WorkloadName): Rates {
  const n = sizes(w), t0 = performance.now();
  const r = spawnSync('bash', ['-c', `"$0" "$@"; times`, bare, w, String(n), String(Math.min(n, 20_000)), '1'], { encoding: 'utf8' });
  const wallAll = (performance.now() - t0) / 1000, cpuAll = childCpu(r.stdout), wall = jsonLines(r.stdout)[0].samples_per_s as number;
  return { wall, cpu: cpuAll >= 0.02 ? wall * Math.max(1, (wallAll - spawnSeconds) / cpuAll) : null };
}
/** Wall seconds to start a shell that only prints `times`, from this process: the median of five. */
const spawnSeconds = median(Array.from({ length: 5 }, () => {
  const t0 = performance.now();
  spawnSync('bash', ['-c', 'times'], { encoding: 'utf8' });
  return (performance.now() - t0) / 1000;
}));
/** The CPU seconds of bash's children, from `times`' second line. */
function childCpu(stdout: string): number {
  const times = stdout.trim().split('\n').pop()!.match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/);
  return times === null ? NaN : 60 * Number(times[1]) + Number(times[2]) + 60 * Number(times[3]) + Number(times[4]);
}

const python = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0) ?? null;
let blas: unknown = null;
/** One timed PyTorch run (bench/peers/pytorch_peer.py warms up first, in its own process). */
function runTorch(w: WorkloadName, dtype: 'float64' | 'float32'): Rates | null {
  if (python === null) return null;
  const env: Record<string, string | undefined> = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' };
  delete env.OPENBLAS_CORETYPE; delete env.OPENBLAS_L2_SIZE;
  const args = [join(here, 'peers/pytorch_peer.py'), '--workload', w, '--dtype', dtype, '--threads', '1', '--reps', '1', ...(opts.quick ? ['--quick'] : [])];
  const r = spawnSync(python, args, { encoding: 'utf8', env });
  if (r.status !== 0) { log(`PyTorch ${dtype} ${w}: ${r.stderr.trim().split('\n').pop()}`); return null; }
  const line = jsonLines(r.stdout)[0];
  blas = line.blas;
  return { wall: line.samples_per_s as number, cpu: line.samples_per_cpu_s as number };
}

// ---- streamgrad and its peers, rep by rep ----------------------------------------------
const CONTENDERS = [
  { label: 'native 1T', backend: 'native', threads: 1 },
  { label: 'native 2T', backend: 'native', threads: 2 },
  { label: 'native-f32 1T', backend: 'native-f32', threads: 1 },
  { label: 'native-f32 2T', backend: 'native-f32', threads: 2 },
  { label: 'wasm', backend: 'wasm', threads: 1 },
] as const;
const PEERS = ['bare C', 'torch f64', 'torch f32'] as const;
/** Every contender's and peer's rates, one entry per rep (null: PyTorch missing). */
type PerRep = Record<string, (Rates | null)[]>;

/** W3's cross-core reading at the start of each rep (`crossCore`). */
const repNear: CrossCore[] = [];
/**
 * `reps` rounds, each one run of every streamgrad contender, then of the bare C loop, then
 * of PyTorch float64 and float32: the peers interleaved with streamgrad, so that drift of
 * a shared machine moves both sides of a ratio alike (they ran in blocks of their own, after
 * streamgrad's, until session 10).
 *
 * Warm-up: two whole runs of each contender, each with a fresh trainer, before the first
 * timed one. What is measured is the steady rate of a long stream; a shorter warm-up (64
 * samples until session 10) left V8's tiering (~0.15 s of W1 at a third of the speed) and
 * the deoptimisations a second trainer's new objects cause (code compiled for the first
 * one's maps) in the first timed rep, which then ran at 0.55–0.8× of the others and, with
 * three reps, made the median the lower of the other two. The peers warm up on their own
 * (bare.c on 20,000 samples, pytorch_peer.py one whole run, in each process).
 */
async function measure(w: WorkloadName): Promise<PerRep> {
  const wl = WORKLOADS[w], n = sizes(w);
  const samples = makeSamples(w, n);
  const kernels = new Map<string, Kernels>(CONTENDERS.map((c) => [c.backend, selectKernels(c.backend)]));
  const out: PerRep = {};
  for (const c of CONTENDERS) {
    setNativeParallel(c.threads);
    for (let q = 0; q < 2; q++) await runPipeline(createWorkloadTrainer(wl, kernels.get(c.backend)), samples, wl.batch);
  }
  for (let r = 0; r < reps; r++) {
    // where the two vCPUs are for this rep's both-cores runs (they may move between reps)
    if (w === 'w3') repNear.push(crossCore());
    for (const c of CONTENDERS) {
      setNativeParallel(c.threads);
      const trainer = createWorkloadTrainer(wl, kernels.get(c.backend));
      const c0 = process.cpuUsage();
      const { seconds } = await runPipeline(trainer, samples, wl.batch);
      const used = process.cpuUsage(c0);
      // both cores: a CPU-time rate would charge the helper's time, not say what a core does
      (out[c.label] ??= []).push({ wall: n / seconds, cpu: c.threads === 1 ? n / ((used.user + used.system) / 1e6) : null });
    }
    setNativeParallel(2);
    (out['bare C'] ??= []).push(runBareC(w));
    (out['torch f64'] ??= []).push(runTorch(w, 'float64'));
    (out['torch f32'] ??= []).push(runTorch(w, 'float32'));
  }
  return out;
}

/** The medians of the reps' wall and CPU rates (null when a peer never ran). */
function medianRates(runs: readonly (Rates | null)[]): Rates | null {
  const ok = runs.filter((x): x is Rates => x !== null);
  if (ok.length === 0) return null;
  return { wall: median(ok.map((x) => x.wall)), cpu: ok.some((x) => x.cpu === null) ? null : median(ok.map((x) => x.cpu!)) };
}

const results: Record<string, Record<string, Rates | null>> = {};
const perRep: Record<string, PerRep> = {};
/** W3's cross-core readings before and after its reps (the workload that shares; `crossCore`). */
const near: CrossCore[] = [];
for (const w of workloads) {
  log(`${w}: ${reps} reps of streamgrad (${CONTENDERS.map((c) => c.label).join(', ')}), then ${PEERS.join(', ')}, interleaved…`);
  if (w === 'w3') near.push(crossCore());
  perRep[w] = await measure(w);
  if (w === 'w3') near.push(crossCore());
  results[w] = Object.fromEntries([...CONTENDERS.map((c) => c.label), ...PEERS].map((label) => [label, medianRates(perRep[w][label])]));
}

// ---- report ----------------------------------------------------------------------------
const info = nativeInfo();
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null ? null : a / b);
const best = (...r: (Rates | null | undefined)[]) => {
  const ok = r.filter((x): x is Rates => x != null);
  return ok.length === 0 ? null : { wall: Math.max(...ok.map((x) => x.wall)), cpu: ok.some((x) => x.cpu === null) ? null : Math.max(...ok.map((x) => x.cpu!)) };
};
type Side = (r: Record<string, Rates | null>) => Rates | null;
const torchBest: Side = (r) => best(r['torch f64'], r['torch f32']);
const TARGETS: { what: string; target: number; w: WorkloadName; a: Side; b: Side }[] = [
  { what: 'W3 best native 1 thread ≥ 1.0× PyTorch best dtype', target: 1.0, w: 'w3', a: (r) => best(r['native 1T'], r['native-f32 1T']), b: torchBest },
  { what: 'W3 best native both cores ≥ 1.5× PyTorch best dtype (wall)', target: 1.5, w: 'w3', a: (r) => best(r['native 2T'], r['native-f32 2T']), b: torchBest },
  { what: 'W3 both cores over one thread, native-f32 (1.5× PyTorch needs ~1.24×)', target: 1.24, w: 'w3', a: (r) => r['native-f32 2T'], b: (r) => r['native-f32 1T'] },
  { what: 'W3 both cores over one thread, native (float64)', target: 1.24, w: 'w3', a: (r) => r['native 2T'], b: (r) => r['native 1T'] },
  { what: 'W1 native ≥ 0.6× bare C loop', target: 0.6, w: 'w1', a: (r) => r['native 1T'], b: (r) => r['bare C'] },
  { what: 'W2 best native 1 thread ≥ 4× PyTorch best dtype', target: 4, w: 'w2', a: (r) => best(r['native 1T'], r['native-f32 1T']), b: torchBest },
];
/** Rep `i`'s rates of every contender and peer of workload `w`. */
const repOf = (w: WorkloadName, i: number) => Object.fromEntries(Object.entries(perRep[w]).map(([label, runs]) => [label, runs[i] ?? null]));
const medianOf = (v: (number | null)[]) => { const ok = v.filter((x): x is number => x !== null); return ok.length === 0 ? null : median(ok); };
const targets = TARGETS.filter((t) => workloads.includes(t.w)).map((t) => {
  const a = t.a(results[t.w]), b = t.b(results[t.w]);
  const reps_ = Array.from({ length: reps }, (_, i) => { const r = repOf(t.w, i), ra = t.a(r), rb = t.b(r); return { wall: ratio(ra?.wall, rb?.wall), cpu: ratio(ra?.cpu, rb?.cpu) }; });
  // the ratio of the medians, and the median of the reps' ratios (each rep's two sides ran minutes apart at most)
  return { what: t.what, w: t.w, target: t.target, wall: ratio(a?.wall, b?.wall), cpu: ratio(a?.cpu, b?.cpu), perRep: { wall: medianOf(reps_.map((x) => x.wall)), cpu: medianOf(reps_.map((x) => x.cpu)), each: reps_ } };
});

const load = { start: loadAtStart, end: loadavg()[0] };
const report = { node: process.versions.node, load, isa: info.isa, parallelFlops: info.parallelFlops, passes: { shared: info.sharedPasses, solo: info.soloPasses }, peak, scaling, crossCore: { w3: near, perRep: repNear }, twoCopies, blas, reps, quick: opts.quick, results, perRep, targets };
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
  for (const w of workloads) {
    const flops = flopsPerSample(WORKLOADS[w].sizes);
    console.log(`\n${w} (${WORKLOADS[w].sizes.join('→')}, batch ${WORKLOADS[w].batch}, ${flops} FLOP/sample)`);
    if (w === 'w3') console.log(`  cross-core before and after these reps: ${describeCrossCore(near)}`);
    console.log('  contender          samples/s wall   GFLOP/s   samples/s CPU   GFLOP/s CPU   % of peak (CPU)');
    for (const [name, r] of Object.entries(results[w])) {
      const pk = /f32/.test(name) ? peak.gflops_f32 : peak.gflops_f64;
      const gw = r === null ? null : (r.wall * flops) / 1e9, gc = r?.cpu == null ? null : (r.cpu * flops) / 1e9;
      console.log(`  ${name.padEnd(16)}${f(r?.wall).padStart(17)}${f(gw, 2).padStart(10)}${f(r?.cpu).padStart(16)}${f(gc, 2).padStart(14)}${(gc === null ? '—' : `${((gc / pk) * 100).toFixed(0)}%`).padStart(18)}`);
    }
  }
  console.log('\ntargets (ratios of the medians, wall time and CPU time where both sides report it; then the median of the reps\' own ratios, and each rep\'s wall ratio)');
  for (const t of targets) {
    const v = (x: number | null) => (x === null ? '—' : `${x.toFixed(2)}× ${x >= t.target ? 'MET' : 'MISSED'}`);
    // W3's both-cores ratios with each rep's cross-core round trip: two threads pay only when the vCPUs are close
    const at = t.w === 'w3' && /both cores/.test(t.what) ? repNear : undefined;
    const each = t.perRep.each.map((x, i) => `${x.wall === null ? '—' : x.wall.toFixed(2)}${at?.[i] === undefined ? '' : ` @${at[i].round_trip_ns} ns`}`).join(at === undefined ? ' ' : ', ');
    console.log(`  ${t.what.padEnd(62)} wall ${v(t.wall).padEnd(14)} CPU ${v(t.cpu).padEnd(14)} per rep: wall ${v(t.perRep.wall).padEnd(14)} CPU ${v(t.perRep.cpu).padEnd(14)} (${each})`);
  }
}
