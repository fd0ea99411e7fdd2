import { type BackendChoice, resolveKernels } from './backend.ts';
import { createDivergenceGuard, type DivergenceConfig, type DivergenceGuard } from './divergence.ts';
import { requireConfig } from './errors.ts';
import type { Kernels } from './kernels.ts';
import { checkLossFits, type Loss } from './losses.ts';
import type { Model } from './model.ts';
import { createOptimizer, type OptimizerConfig, type OptimizerState } from './optimizers.ts';
import type { SampleShape } from './sample.ts';
import { createWorkspace, type Workspace } from './workspace.ts';

/** What a trainer is made from. Validated once, before anything subscribes. */
export interface TrainerConfig extends DivergenceConfig {
  readonly model: Model;
  readonly loss: Loss;
  readonly optimizer: OptimizerConfig;
  /** Rescale the gradient when its global L2 norm exceeds this (PyTorch `clip_grad_norm_`). */
  readonly clipNorm?: number;
  /**
   * A diverged stream ends after `maxConsecutiveSkips` skipped steps in a row (default
   * 10), or more than `maxSkipRate` (default 0.01) of the last `skipWindow` (default 1000)
   * steps skipped: see `DivergenceConfig`.
   */
  readonly maxConsecutiveSkips?: number;
  /**
   * Kernel backend: kernels, or a choice for `selectKernels` (`auto`, `wasm`, `wasm-f32`,
   * `js`). Default: `defaultKernels()` (`auto`, or `STREAMGRAD_BACKEND`). The workspace and
   * optimizer state come from its `allocate`; create the model with the same kernels
   * (`createModel(topology, kernels)`) so that they work on its parameters in place.
   */
  readonly kernels?: Kernels | BackendChoice;
}

/** Running totals of one trainer, over all its subscriptions. */
export interface TrainerCounters {
  /** Batches seen, including skipped ones. */
  steps: number;
  /** Samples in those batches. */
  samples: number;
  /** Steps whose update was skipped for a non-finite loss or gradient. */
  skipped: number;
  /** Samples in those skipped steps: seen and scored, but not learned from (`samples − skippedSamples` were trained on). */
  skippedSamples: number;
  /** Skipped steps in a row, up to the latest. */
  consecutiveSkips: number;
  /** Steps whose gradient was clipped. */
  clipped: number;
  /** Samples rejected before batching (wrong arity, non-finite, wrong type). */
  rejected: number;
}

/**
 * All the learned and running state of one model in training: parameters, optimizer
 * moments, buffers and counters. Passed explicitly to every operator and never kept in a
 * module, so several trainers can run side by side in one process, even on one source.
 */
export interface Trainer {
  readonly model: Model;
  readonly loss: Loss;
  readonly optimizer: OptimizerState;
  readonly kernels: Kernels;
  readonly workspace: Workspace;
  readonly shape: SampleShape;
  /** Global-norm clipping threshold, or null for none; may change while the stream runs. */
  clipNorm: number | null;
  readonly maxConsecutiveSkips: number;
  /** When skipped steps count as divergence, and the recent skips (`core/divergence.ts`). */
  readonly divergence: DivergenceGuard;
  readonly counters: TrainerCounters;
}

/**
 * Checks `config` (loss fits the layers, finite settings; throws `SG_ERR_CONFIG` naming the field) and creates the trainer: the model plus every piece of training state (optimizer moments, buffers, counters) the operators use.
 *
 * @example const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 1e-3 } });
 */
export function createTrainer(config: TrainerConfig): Trainer {
  const { model } = config;
  checkLossFits(config.loss, model.layers.map((l) => l.activation));
  const clip = config.clipNorm;
  requireConfig(clip === undefined || (Number.isFinite(clip) && clip > 0), 'clipNorm', `must be a finite number > 0, got ${String(clip)}`);
  const divergence = createDivergenceGuard(config);
  const kernels = resolveKernels(config.kernels);
  return {
    model,
    loss: config.loss,
    optimizer: createOptimizer(config.optimizer, model.params.length, kernels.allocate),
    kernels,
    workspace: createWorkspace(model, 1, kernels.allocate),
    shape: { inputs: model.inputSize, outputs: model.outputSize },
    clipNorm: clip ?? null,
    maxConsecutiveSkips: divergence.maxConsecutiveSkips,
    divergence,
    counters: { steps: 0, samples: 0, skipped: 0, skippedSamples: 0, consecutiveSkips: 0, clipped: 0, rejected: 0 },
  };
}
