import { initialize } from '../core/init.ts';
import type { Kernels } from '../core/kernels.ts';
import type { Loss } from '../core/losses.ts';
import { createModel } from '../core/model.ts';
import type { OptimizerConfig } from '../core/optimizers.ts';
import type { Sample } from '../core/sample.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';

/**
 * The three benchmark workloads of the engine issue, and their synthetic data: the
 * same definitions and the same generator as the plain-JS yardstick
 * (shared/anchors/common.mjs `WORKLOADS`, `makeData`), ported exactly so that both
 * train on bitwise-identical samples (test/bench.test.ts checks this).
 */
export interface Workload {
  readonly name: WorkloadName;
  /** [inputs, hidden..., outputs]; hidden layers are relu, the output is linear (mse) or softmax (cross_entropy). */
  readonly sizes: readonly number[];
  readonly loss: Loss;
  readonly optimizer: OptimizerConfig;
  readonly batch: number;
  /** Samples per timed run, full and --quick (multiples of the batch). */
  readonly n: number;
  readonly quickN: number;
}

export const WORKLOAD_NAMES = ['w1', 'w2', 'w3'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export const WORKLOADS: Record<WorkloadName, Workload> = {
  w1: { name: 'w1', sizes: [8, 32, 32, 1], loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 }, batch: 1, n: 100_000, quickN: 2_000 },
  w2: { name: 'w2', sizes: [16, 64, 64, 4], loss: 'mse', optimizer: { type: 'adam', learningRate: 1e-3 }, batch: 32, n: 160_000, quickN: 1_280 },
  w3: {
    name: 'w3', sizes: [64, 256, 256, 10], loss: 'cross_entropy',
    optimizer: { type: 'momentum', learningRate: 0.01, momentum: 0.9 }, batch: 64, n: 12_800, quickN: 256,
  },
};

/** Seed of the He initialisation; the same model for every run of a workload. */
export const INIT_SEED = 777;

/** Forward + backward ≈ 3 × the forward multiply-adds, 2 FLOPs each (W1 7,872; W2 32,256; W3 506,880). */
export function flopsPerSample(sizes: readonly number[]): number {
  let macs = 0;
  for (let l = 0; l + 1 < sizes.length; l++) macs += sizes[l] * sizes[l + 1];
  return 6 * macs;
}

/** A fresh He-initialised model in a fresh trainer (zeroed optimizer state), everything allocated by `kernels` (default: the default backend). */
export function createWorkloadTrainer(w: Workload, kernels?: Kernels): Trainer {
  const [inputSize, ...units] = w.sizes;
  const last = units.length - 1;
  const model = createModel({
    inputSize,
    layers: units.map((u, l) => ({ units: u, activation: l < last ? 'relu' : w.loss === 'mse' ? 'linear' : 'softmax' })),
  }, kernels);
  initialize(model, 'he', INIT_SEED);
  return createTrainer({ model, loss: w.loss, optimizer: w.optimizer, kernels });
}

/** xorshift32, as common.mjs `makeRng`. */
export function makeRng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

export interface Data {
  readonly X: Float64Array;
  readonly Y: Float64Array;
  readonly labels: Int32Array;
}

/**
 * common.mjs `makeData`, line for line:
 *  w1: y = Σ sin(x_i) + U(−0.01, 0.01);  w2: y_k = Σ sin((k+1) x_i) / 4 + U(−0.01, 0.01);
 *  w3: label = argmax_c Σ_i sin(1 + 64c + i) x_i, Y one-hot.
 */
export function makeData(name: WorkloadName, n: number): Data {
  const w = WORKLOADS[name];
  const nin = w.sizes[0], nout = w.sizes[w.sizes.length - 1];
  const rng = makeRng(12345);
  const X = new Float64Array(n * nin), Y = new Float64Array(n * nout);
  const labels = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < nin; i++) X[s * nin + i] = 2 * rng() - 1;
    if (w.loss === 'mse') {
      for (let k = 0; k < nout; k++) {
        let y = 0;
        for (let i = 0; i < nin; i++) y += Math.sin((k + 1) * X[s * nin + i]);
        if (name === 'w2') y /= 4;
        Y[s * nout + k] = y + 0.02 * (rng() - 0.5);
      }
    } else {
      let best = -Infinity, arg = 0;
      for (let c = 0; c < nout; c++) {
        let z = 0;
        for (let i = 0; i < nin; i++) z += Math.sin(1 + 64 * c + i) * X[s * nin + i];
        if (z > best) { best = z; arg = c; }
      }
      labels[s] = arg;
      Y[s * nout + arg] = 1;
    }
  }
  return { X, Y, labels };
}

/** The first n samples as `{x, y}` objects whose x and y are subarrays of the data (no copies). */
export function makeSamples(name: WorkloadName, n: number): Sample[] {
  const { X, Y } = makeData(name, n);
  const sizes = WORKLOADS[name].sizes;
  const nin = sizes[0], nout = sizes[sizes.length - 1];
  const samples: Sample[] = new Array(n);
  for (let s = 0; s < n; s++) samples[s] = { x: X.subarray(s * nin, (s + 1) * nin), y: Y.subarray(s * nout, (s + 1) * nout) };
  return samples;
}
