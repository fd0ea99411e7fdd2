// streamgrad against TensorFlow.js 4.22 (cpu and wasm backends) on the engine bench's
// three workloads, in one run, and the ratios. Each contender runs in its own process,
// workload by workload, so that the machine's drift hits them alike and no library's
// memory growth touches another's typed arrays.
//
//   cd bench/peers && npm install && node run.mjs [--workload w1|w2|w3|all] [--reps N] [--quick] [--json]
//
// streamgrad: the full RxJS pipeline (bench/engine.ts) with the js, wasm and wasm-f32
// kernels, float64 (wasm-f32: float32 products). TensorFlow.js: optimizer.minimize per
// batch, float32 (bench/peers/tfjs.mjs). PyTorch, when a python3 with `torch` is there
// (Debian: apt-get install python3-torch libopenblas0-pthread): float64 and float32, one
// thread (bench/peers/pytorch_peer.py; OPENBLAS_NUM_THREADS=1 too), with OPENBLAS_CORETYPE /
// OPENBLAS_L2_SIZE unset for its process so that OpenBLAS picks this CPU's own kernels.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { values: opts } = parseArgs({
  options: {
    workload: { type: 'string', default: 'all' },
    reps: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
if (!existsSync(join(here, 'node_modules', '@tensorflow', 'tfjs'))) {
  console.error('bench/peers: TensorFlow.js is not installed here; run `npm install` in bench/peers first');
  process.exit(2);
}
const FLOPS = { w1: 7_872, w2: 32_256, w3: 506_880 };
const PEAK = 41; // this machine's single-thread float64 matmul peak, GFLOP/s (issue #3)
const workloads = opts.workload === 'all' ? ['w1', 'w2', 'w3'] : [opts.workload];
const common = ['--reps', opts.reps, ...(opts.quick ? ['--quick'] : [])];
const log = (m) => { if (!opts.json) process.stderr.write(`${m}\n`); };
const python = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0) ?? null;
if (python === null) log('PyTorch: no python3 with torch here; its columns are skipped');

function jsonLines(args, cwd) {
  const child = spawnSync(process.execPath, ['--import', 'tsx/esm', ...args], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (child.status !== 0) throw new Error(`failed (${child.status ?? child.signal}): node ${args.join(' ')}\n${child.stderr.slice(-2000)}`);
  return child.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

const rows = [];
for (const w of workloads) {
  log(`${w}: streamgrad (js, wasm, wasm-f32)…`);
  const ours = jsonLines(['bench/engine.ts', '--json', '--workload', w, '--backend', 'all', ...common], root);
  const row = { workload: w, batch: ours[0].batch, flops_per_sample: FLOPS[w], samples_per_s: {}, runs: {}, loss: {} };
  for (const r of ours) {
    row.samples_per_s[r.backend] = r.pipeline_samples_per_s;
    row.runs[r.backend] = r.runs.pipeline;
    row.loss[r.backend] = r.loss_pipeline;
  }
  for (const backend of ['cpu', 'wasm']) {
    log(`${w}: TensorFlow.js ${backend}…`);
    const [peer] = jsonLines(['tfjs.mjs', '--backend', backend, '--workload', w, ...common], here);
    row.samples_per_s[peer.peer] = peer.samples_per_s;
    row.runs[peer.peer] = peer.runs;
    row.loss[peer.peer] = peer.loss;
    row[`${peer.peer}_n`] = peer.n;
    row[`${peer.peer}_threads`] = peer.threads;
  }
  for (const dtype of python === null ? [] : ['float64', 'float32']) {
    log(`${w}: PyTorch ${dtype}…`);
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    // one thread for real: torch.set_num_threads does not reach OpenBLAS's own pool
    Object.assign(env, { OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' });
    const child = spawnSync(python, ['pytorch_peer.py', '--workload', w, '--dtype', dtype, '--threads', '1', '--reps', opts.reps, ...(opts.quick ? ['--quick'] : [])],
      { cwd: here, env, encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`PyTorch ${dtype} failed: ${child.stderr.slice(-2000)}`);
    const peer = JSON.parse(child.stdout.split('\n').find((l) => l.startsWith('{')));
    row.samples_per_s[peer.peer] = peer.samples_per_s;
    row.runs[peer.peer] = peer.runs;
    row.loss[peer.peer] = peer.loss;
    row[`${peer.peer}_n`] = peer.n;
    row.torch = peer.torch;
  }
  const s = row.samples_per_s;
  row.ratios = {
    'wasm/tfjs-wasm': s.wasm / s['tfjs-wasm'], 'wasm/tfjs-cpu': s.wasm / s['tfjs-cpu'],
    'wasm-f32/tfjs-wasm': s['wasm-f32'] / s['tfjs-wasm'], 'js/tfjs-wasm': s.js / s['tfjs-wasm'],
    ...(python === null ? {} : { 'wasm/torch-float64': s.wasm / s['torch-float64'], 'wasm-f32/torch-float32': s['wasm-f32'] / s['torch-float32'] }),
  };
  row.gflops = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, (v * FLOPS[w]) / 1e9]));
  if (opts.json) console.log(JSON.stringify({ ...row, node: process.versions.node }));
  rows.push(row);
}

if (!opts.json) {
  const torch = python !== null;
  const names = ['wasm', 'wasm-f32', 'js', 'tfjs-wasm', 'tfjs-cpu', ...(torch ? ['torch-float64', 'torch-float32'] : [])];
  const int = (v) => Math.round(v).toLocaleString('en-US');
  const x = (v) => `${v.toFixed(v < 10 ? 2 : 1)}×`;
  const head = ['workload', 'batch', ...names.map((n) => `${n}/s`), 'wasm÷tfjs-wasm', 'f32÷tfjs-wasm', 'wasm÷tfjs-cpu',
    ...(torch ? ['wasm÷torch64', 'f32÷torch32'] : []), 'GFLOP/s wasm', 'f32', 'tfjs-wasm', ...(torch ? ['torch64'] : [])];
  const body = rows.map((r) => [r.workload, String(r.batch), ...names.map((n) => int(r.samples_per_s[n])),
    x(r.ratios['wasm/tfjs-wasm']), x(r.ratios['wasm-f32/tfjs-wasm']), x(r.ratios['wasm/tfjs-cpu']),
    ...(torch ? [x(r.ratios['wasm/torch-float64']), x(r.ratios['wasm-f32/torch-float32'])] : []),
    r.gflops.wasm.toFixed(2), r.gflops['wasm-f32'].toFixed(2), r.gflops['tfjs-wasm'].toFixed(2), ...(torch ? [r.gflops['torch-float64'].toFixed(2)] : [])]);
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((b) => b[c].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`streamgrad vs TensorFlow.js 4.22${torch ? ` and PyTorch ${rows[0].torch}` : ''} · node ${process.versions.node} · samples/s through a full training step, median of ${opts.reps}${opts.quick ? ' · quick (smoke run)' : ''}`);
  console.log('streamgrad: RxJS pipeline, float64 (wasm-f32: float32 products); TensorFlow.js: optimizer.minimize per batch, float32, 1 thread' +
    (torch ? '; PyTorch: zero_grad/backward/step per batch, 1 thread, system OpenBLAS' : ''));
  console.log(`GFLOP/s = samples/s × FLOPs per sample (W1 7,872; W2 32,256; W3 506,880); single-thread float64 matmul peak here ≈ ${PEAK}\n`);
  console.log(line(head));
  console.log(line(widths.map((n) => '-'.repeat(n))));
  for (const b of body) console.log(line(b));
  console.log('');
  for (const r of rows) {
    console.log(`${r.workload}: final loss ${names.map((n) => `${n} ${Number(r.loss[n]).toPrecision(4)}`).join(', ')}` +
      ` (TensorFlow.js timed on ${int(r['tfjs-cpu_n'])} / ${int(r['tfjs-wasm_n'])} samples, its wasm backend on ${r['tfjs-wasm_threads']} thread)`);
  }
}
