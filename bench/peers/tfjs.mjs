// TensorFlow.js 4.22 on streamgrad's benchmark workloads (bench/workloads.ts: same
// sizes, losses, optimizers, batch sizes and data). One backend per process, so that one
// backend's WebAssembly memory growth (which detaches ArrayBuffers and slows every typed
// array in the process afterwards) cannot touch another's figures.
//
//   node --import tsx/esm tfjs.mjs --backend cpu|wasm [--workload w1|w2|w3|all] [--reps N] [--quick]
//
// Prints one JSON line per workload: {peer, workload, n, reps, samples_per_s, runs, loss, ...}.
// The timed loop is what an online trainer does per batch: make the batch's tensors
// from the arrays, one optimizer.minimize step (forward, loss, gradients, update), free
// the tensors. TensorFlow.js computes in float32.
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { makeData, WORKLOADS, WORKLOAD_NAMES } from '../workloads.ts';

const { values: opts } = parseArgs({
  options: {
    backend: { type: 'string', default: 'cpu' },
    workload: { type: 'string', default: 'all' },
    reps: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
  },
});
const reps = Number(opts.reps);
const names = opts.workload === 'all' ? WORKLOAD_NAMES : WORKLOAD_NAMES.filter((w) => w === opts.workload);

if (!(await tf.setBackend(opts.backend))) throw new Error(`TensorFlow.js backend ${opts.backend} did not initialise`);
await tf.ready();
const threads = opts.backend === 'wasm' ? (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount?.() ?? null : null;

/** At most this many seconds per timed run: TensorFlow.js is slow at batch 1, so W1 gets fewer samples. */
const BUDGET_S = opts.quick ? 0.3 : 2;

function median(v) {
  const s = [...v].sort((a, b) => a - b), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function createModel(w) {
  const sizes = w.sizes, vars = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const n = sizes[l], m = sizes[l + 1];
    vars.push(tf.variable(tf.randomNormal([n, m], 0, Math.sqrt(2 / n), 'float32', 777 + l)), tf.variable(tf.zeros([m])));
  }
  const optimizer = w.optimizer.type === 'sgd' ? tf.train.sgd(w.optimizer.learningRate)
    : w.optimizer.type === 'momentum' ? tf.train.momentum(w.optimizer.learningRate, w.optimizer.momentum ?? 0.9)
      : tf.train.adam(w.optimizer.learningRate, 0.9, 0.999, 1e-8);
  const forward = (x) => {
    let h = x;
    for (let l = 0; l < vars.length; l += 2) {
      h = tf.add(tf.matMul(h, vars[l]), vars[l + 1]);
      if (l + 2 < vars.length) h = tf.relu(h);
    }
    return h;
  };
  const loss = w.loss === 'mse' ? (x, y) => tf.losses.meanSquaredError(y, forward(x)) : (x, y) => tf.losses.softmaxCrossEntropy(y, forward(x));
  return { vars, optimizer, loss };
}

/** Trains a fresh model on the first n samples; returns seconds and the mean loss of the last 10% of steps. */
function run(w, data, n) {
  const { vars, optimizer, loss } = createModel(w);
  const nin = w.sizes[0], nout = w.sizes[w.sizes.length - 1], B = w.batch;
  const X = Float32Array.from(data.X.subarray(0, n * nin)), Y = Float32Array.from(data.Y.subarray(0, n * nout));
  const steps = Math.ceil(n / B), from90 = Math.floor(steps * 0.9);
  let lossSum = 0, lossCount = 0;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const rows = Math.min(B, n - s * B);
    const x = tf.tensor2d(X.subarray(s * B * nin, (s * B + rows) * nin), [rows, nin]);
    const y = tf.tensor2d(Y.subarray(s * B * nout, (s * B + rows) * nout), [rows, nout]);
    const cost = optimizer.minimize(() => loss(x, y), s >= from90, vars);
    if (cost) { lossSum += cost.dataSync()[0]; lossCount++; cost.dispose(); }
    x.dispose(); y.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  optimizer.dispose();
  vars.forEach((v) => v.dispose());
  return { seconds, loss: lossSum / lossCount };
}

for (const name of names) {
  const w = WORKLOADS[name];
  const full = opts.quick ? w.quickN : w.n;
  const data = makeData(name, full);
  // size the runs to the time budget from a short probe
  const probe = Math.min(full, Math.max(w.batch * 20, 200 - (200 % w.batch)));
  run(w, data, probe);
  const probeRate = probe / run(w, data, probe).seconds;
  const n = Math.min(full, Math.max(w.batch * 10, Math.floor((probeRate * BUDGET_S) / w.batch) * w.batch));
  run(w, data, n); // warm-up
  const runs = [];
  let lastLoss = NaN;
  for (let r = 0; r < reps; r++) {
    const { seconds, loss } = run(w, data, n);
    runs.push(n / seconds);
    lastLoss = loss;
  }
  console.log(JSON.stringify({
    peer: `tfjs-${opts.backend}`, tfjs: tf.version_core, backend: tf.getBackend(), threads, workload: name, batch: w.batch, n, reps,
    samples_per_s: median(runs), runs, loss: lastLoss, dtype: 'float32', tensors_live: tf.memory().numTensors,
  }));
}
