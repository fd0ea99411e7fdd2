import { clearSkips, recordSkip, type SkipReason } from './divergence.ts';
import { lossGradient, lossValue } from './losses.ts';
import { backwardPass, forwardPass, loadBatch } from './network.ts';
import { optimizerStep } from './optimizers.ts';
import type { Sample } from './sample.ts';
import type { Trainer } from './trainer.ts';
import { batchViews, ensureCapacity } from './workspace.ts';

export type { SkipReason } from './divergence.ts';

/**
 * The step record: one per batch, created by the forward stage and filled in by each
 * later stage. Its arrays are views into the trainer's workspace, not copies: they are
 * valid until the trainer's next step, so a consumer that keeps them must copy.
 * The stage types make the order hard to get wrong: `backward` takes a `LossStep`,
 * `update` a `GradientStep`.
 */
export interface ForwardStep {
  /** 0-based index of this batch in the trainer's life. */
  readonly index: number;
  readonly samples: readonly Sample[];
  readonly size: number;
  /** Batch inputs and targets, size × inputs and size × outputs. */
  readonly inputs: Float64Array;
  readonly targets: Float64Array;
  /** Every layer's activations (last = network outputs), size × units each. */
  readonly activations: readonly Float64Array[];
  /** Network outputs under the parameters before this step's update. */
  readonly outputs: Float64Array;
}

/** A forward step with its loss: batch and per-sample loss and dL/dz of the output layer. */
export interface LossStep extends ForwardStep {
  /** Batch loss before the update. */
  readonly loss: number;
  /** Loss of each sample, size values. */
  readonly lossPerSample: Float64Array;
}

/** A loss step after backpropagation: gradients, their global norm, clipping, and why the step is skipped (if it is). */
export interface GradientStep extends LossStep {
  /** dL/dparams, laid out like `Model.params`; null when the loss was not finite. */
  readonly gradients: Float64Array | null;
  /** Global L2 norm of the gradient before clipping (NaN when skipped). */
  readonly gradNorm: number;
  readonly clipped: boolean;
  /** Set when this step's update is skipped by the numeric guard. */
  readonly skip: SkipReason | null;
}

/** A gradient step after the optimizer: whether the parameters changed, and the learning rate used. */
export interface UpdatedStep extends GradientStep {
  /** Whether the optimizer changed the parameters. */
  readonly updated: boolean;
  readonly learningRate: number;
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Every field a step record gets from any stage, `prequential`'s `metrics` included: a
 * record holds them all from the start, so that it keeps one hidden class while the
 * stages fill it in, and a reused record can be reset field by field.
 */
type StepRecord = Writable<UpdatedStep> & { metrics: unknown };

const EMPTY = new Float64Array(0);
const NONE: readonly never[] = [];

/** A record with every field present; `forwardStep` fills it. */
const blankRecord = (): StepRecord => ({
  index: 0, samples: NONE, size: 0, inputs: EMPTY, targets: EMPTY, activations: NONE, outputs: EMPTY,
  loss: NaN, lossPerSample: EMPTY, gradients: null, gradNorm: NaN, clipped: false, skip: null,
  updated: false, learningRate: NaN, metrics: null,
});

/**
 * Packs a batch into the workspace and runs the forward pass.
 *
 * @param reuse a record from an earlier call to fill again instead of creating one: for a
 *   consumer that is done with each step before the next begins (the `forward` operator), which saves
 *   an object of 16 fields per step. Every field is reset.
 */
export function forwardStep(trainer: Trainer, samples: readonly Sample[], reuse?: ForwardStep): ForwardStep {
  const { model, workspace: ws, kernels } = trainer;
  const rows = samples.length;
  ensureCapacity(ws, model, rows);
  loadBatch(ws, model, samples);
  forwardPass(kernels, model, ws, rows);
  const views = batchViews(ws, model, rows);
  const activations = views.activations;
  const step = (reuse ?? blankRecord()) as StepRecord;
  step.index = trainer.counters.steps;
  step.samples = samples;
  step.size = rows;
  step.inputs = views.inputs;
  step.targets = views.targets;
  step.activations = activations;
  step.outputs = activations[activations.length - 1];
  // later stages fill these in
  step.loss = NaN;
  step.lossPerSample = views.lossPerSample;
  step.gradients = null;
  step.gradNorm = NaN;
  step.clipped = false;
  step.skip = null;
  step.updated = false;
  step.learningRate = trainer.optimizer.learningRate;
  step.metrics = null;
  trainer.counters.steps++;
  trainer.counters.samples += rows;
  return step;
}

/** Computes the batch loss and the output layer's delta. */
export function lossStep<S extends ForwardStep>(trainer: Trainer, step: S): S & LossStep {
  const { model, workspace: ws, kernels } = trainer;
  const last = model.layers.length - 1;
  const m = model.outputSize, rows = step.size;
  const s = step as unknown as Writable<LossStep>;
  const done = step as S & LossStep;
  s.loss = lossValue(trainer.loss, ws.z[last], ws.a[last], ws.y, rows, m, ws.perSample);
  if (Number.isFinite(s.loss)) {
    lossGradient(trainer.loss, model.layers[last].activation, ws.z[last], ws.a[last], ws.y, rows, m, ws.delta[last], kernels.activationBackward);
  }
  return done;
}

/** Backpropagates, measures the gradient's global norm, clips it, and applies the numeric guard. */
export function backwardStep<S extends LossStep>(trainer: Trainer, step: S): S & GradientStep {
  const s = step as unknown as Writable<GradientStep>;
  const done = step as S & GradientStep;
  if (!Number.isFinite(step.loss)) {
    const value = Number.isNaN(step.loss) ? 'NaN' : 'Infinity';
    s.skip = { stage: 'loss', value, message: `step ${step.index}: loss is ${value}; update skipped` };
    return done;
  }
  const { model, workspace: ws, kernels } = trainer;
  const sumOfSquares = backwardPass(kernels, model, ws, step.size);
  s.gradients = ws.grads;
  const norm = gradientNorm(trainer, sumOfSquares);
  if (typeof norm !== 'number') {
    s.skip = norm;
    return done;
  }
  s.gradNorm = norm;
  if (trainer.clipNorm !== null && norm > trainer.clipNorm) {
    kernels.scale(ws.grads, trainer.clipNorm / (norm + 1e-6));
    s.clipped = true;
    trainer.counters.clipped++;
  }
  return done;
}

/**
 * The gradient's global L2 norm, or why the step must be skipped: a NaN or ±Infinity
 * element, or (without clipping) a gradient so large that its squares overflow float64,
 * which would put Infinity into Adam's, RMSprop's or Adagrad's running squares for good.
 *
 * @param fromPass Σ g² if the backward pass computed it (`backwardPass`'s result), else undefined
 */
function gradientNorm(trainer: Trainer, fromPass: number | undefined): number | SkipReason {
  const g = trainer.workspace.grads;
  const ss = fromPass ?? trainer.kernels.sumOfSquares(g);
  if (Number.isFinite(ss)) return Math.sqrt(ss);
  const step = trainer.counters.steps - 1;
  let maxAbs = 0, at = 0;
  for (let q = 0; q < g.length; q++) {
    const v = g[q];
    if (!Number.isFinite(v)) {
      const value = Number.isNaN(v) ? 'NaN' : 'Infinity';
      const { layer, part } = locate(trainer, q);
      return { stage: 'gradient', value, layer, message: `step ${step}: gradient of layer ${layer} ${part} is ${value}; update skipped` };
    }
    if (Math.abs(v) > maxAbs) { maxAbs = Math.abs(v); at = q; }
  }
  if (trainer.clipNorm === null) {
    const { layer, part } = locate(trainer, at);
    return { stage: 'gradient', value: 'Infinity', layer, message: `step ${step}: gradient norm overflows float64 (|g| = ${maxAbs.toExponential(3)} in layer ${layer} ${part}); update skipped — set clipNorm to rescale such gradients instead` };
  }
  // every element is finite, only the squares overflowed: measure rescaled, then clip
  let scaled = 0;
  for (let q = 0; q < g.length; q++) { const v = g[q] / maxAbs; scaled += v * v; }
  return maxAbs * Math.sqrt(scaled);
}

function locate(trainer: Trainer, q: number): { layer: number; part: 'weights' | 'bias' } {
  const layers = trainer.model.layers;
  const layer = layers.findIndex((l) => q < l.biasOffset + l.outputs);
  return { layer, part: q < layers[layer].biasOffset ? 'weights' : 'bias' };
}

/**
 * Applies the optimizer, unless the numeric guard skipped the step: then the weights stay
 * bitwise unchanged, the skip is counted (steps and samples), and when skips break the
 * trainer's divergence rules (`maxConsecutiveSkips` in a row, or more than `maxSkipRate`
 * of the last `skipWindow` steps: `core/divergence.ts`) the stream ends with
 * `SG_ERR_DIVERGED`.
 */
export function updateStep<S extends GradientStep>(trainer: Trainer, step: S): S & UpdatedStep {
  const s = step as unknown as Writable<UpdatedStep>;
  const done = step as S & UpdatedStep;
  const c = trainer.counters;
  s.learningRate = trainer.optimizer.learningRate;
  if (step.skip !== null) {
    c.skipped++;
    c.skippedSamples += step.size;
    c.consecutiveSkips++;
    const diverged = recordSkip(trainer.divergence, step.index, c.consecutiveSkips, step.skip);
    if (diverged !== null) {
      // a later subscription is an explicit resume and gets a fresh allowance
      c.consecutiveSkips = 0;
      clearSkips(trainer.divergence);
      throw diverged;
    }
    return done;
  }
  c.consecutiveSkips = 0;
  optimizerStep(trainer.kernels, trainer.optimizer, trainer.model.params, trainer.workspace.grads);
  s.updated = true;
  return done;
}
