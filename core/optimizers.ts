import { requireConfig } from './errors.ts';
import { defaultKernels } from './backend.ts';
import type { Allocator, Kernels } from './kernels.ts';

/**
 * Optimizers over the model's flat parameter vector, exactly as PyTorch's (and as
 * test/fixtures/reference/FORMAT.md states them). Each is one rule applied elementwise; its
 * state is a few `Float64Array`s the size of the parameters plus a step counter, all
 * held in `OptimizerState` so that checkpoints can save and restore it.
 */
export type OptimizerConfig =
  | { readonly type: 'sgd'; readonly learningRate: number }
  | { readonly type: 'momentum'; readonly learningRate: number; readonly momentum?: number }
  | { readonly type: 'adam'; readonly learningRate: number; readonly beta1?: number; readonly beta2?: number; readonly epsilon?: number }
  | { readonly type: 'rmsprop'; readonly learningRate: number; readonly alpha?: number; readonly epsilon?: number }
  | { readonly type: 'adagrad'; readonly learningRate: number; readonly epsilon?: number };

/** The name of an optimizer: `sgd`, `momentum`, `adam`, `rmsprop` or `adagrad`. */
export type OptimizerType = OptimizerConfig['type'];
/** Every optimizer name, for option parsing and help texts. */
export const OPTIMIZERS: readonly OptimizerType[] = ['sgd', 'momentum', 'adam', 'rmsprop', 'adagrad'];

/** Hyper-parameters with every default filled in (PyTorch's defaults). */
export interface OptimizerSettings {
  readonly type: OptimizerType;
  readonly momentum: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly alpha: number;
  readonly epsilon: number;
}

export interface OptimizerState {
  readonly settings: OptimizerSettings;
  /** Mutable while the stream runs (see `setLearningRate`). */
  learningRate: number;
  /** Number of updates applied so far (Adam's t). */
  t: number;
  /** First moment / velocity / accumulator, as the rule needs; length 0 when unused. */
  readonly m: Float64Array;
  /** Second moment (Adam, RMSprop); length 0 when unused. */
  readonly v: Float64Array;
}

const DEFAULT_EPSILON: Record<OptimizerType, number> = { sgd: 0, momentum: 0, adam: 1e-8, rmsprop: 1e-8, adagrad: 1e-10 };

/**
 * The largest learning rate accepted, wherever one is given: `createTrainer`,
 * `setLearningRate` (and the server's command), `--lr`, a config's `lr`. Steps bigger
 * than ten times the gradient do not train anything (even the perceptron rule and
 * plain SGD on unscaled data use rates ≤ 1); they only push weights towards the edge
 * of float64, where a float32 snapshot would hold Infinity (issue 17).
 */
export const MAX_LEARNING_RATE = 10;

/** Throws `SG_ERR_CONFIG` naming `field` unless 0 < lr ≤ `MAX_LEARNING_RATE`. */
export function checkLearningRate(lr: unknown, field = 'learningRate'): asserts lr is number {
  requireConfig(typeof lr === 'number' && Number.isFinite(lr) && lr > 0, field, `must be a finite number > 0, got ${String(lr)}`);
  requireConfig(lr <= MAX_LEARNING_RATE, field, `must be at most ${MAX_LEARNING_RATE}, got ${String(lr)}`);
}

/** Validates a config and fills in defaults. */
export function optimizerSettings(config: OptimizerConfig): OptimizerSettings {
  requireConfig(OPTIMIZERS.includes(config.type), 'optimizer', `unknown optimizer ${JSON.stringify(config.type)}; use ${OPTIMIZERS.join(', ')}`);
  checkLearningRate(config.learningRate, 'optimizer.learningRate');
  const c = config as Partial<OptimizerSettings>;
  const s: OptimizerSettings = {
    type: config.type,
    momentum: c.momentum ?? 0.9,
    beta1: c.beta1 ?? 0.9,
    beta2: c.beta2 ?? 0.999,
    alpha: c.alpha ?? 0.99,
    epsilon: c.epsilon ?? DEFAULT_EPSILON[config.type],
  };
  const unit = (v: number, f: string) =>
    requireConfig(Number.isFinite(v) && v >= 0 && v < 1, `optimizer.${f}`, `must be in [0, 1), got ${v}`);
  unit(s.momentum, 'momentum');
  unit(s.beta1, 'beta1');
  unit(s.beta2, 'beta2');
  unit(s.alpha, 'alpha');
  // adaptive rules divide by √v + ε, and v is 0 wherever a gradient has been 0: ε = 0 would give 0/0
  const adaptive = s.type === 'adam' || s.type === 'rmsprop' || s.type === 'adagrad';
  requireConfig(Number.isFinite(s.epsilon) && (adaptive ? s.epsilon > 0 : s.epsilon >= 0), 'optimizer.epsilon',
    `must be a finite number ${adaptive ? '> 0' : '≥ 0'}, got ${s.epsilon}`);
  return s;
}

/** Fresh state for `parameterCount` parameters; its moments come from `allocate` (default: the default backend's). */
export function createOptimizer(config: OptimizerConfig, parameterCount: number, allocate: Allocator = defaultKernels().allocate): OptimizerState {
  const settings = optimizerSettings(config);
  const needsM = settings.type !== 'sgd' && settings.type !== 'rmsprop';
  const needsV = settings.type === 'adam' || settings.type === 'rmsprop';
  return {
    settings,
    learningRate: config.learningRate,
    t: 0,
    m: allocate(needsM ? parameterCount : 0),
    v: allocate(needsV ? parameterCount : 0),
  };
}

/** Changes the learning rate from the next update on. */
export function setLearningRate(state: OptimizerState, lr: number): void {
  checkLearningRate(lr);
  state.learningRate = lr;
}

/** One update of `params` from `grads`. */
export function optimizerStep(kernels: Kernels, state: OptimizerState, params: Float64Array, grads: Float64Array): void {
  const s = state.settings;
  const lr = state.learningRate;
  state.t++;
  switch (s.type) {
    case 'sgd':
      kernels.sgd(params, grads, lr);
      return;
    case 'momentum':
      kernels.momentum(params, grads, state.m, lr, s.momentum);
      return;
    case 'adam': {
      const stepSize = lr / (1 - Math.pow(s.beta1, state.t));
      const c2 = Math.sqrt(1 - Math.pow(s.beta2, state.t));
      kernels.adam(params, grads, state.m, state.v, stepSize, s.beta1, s.beta2, c2, s.epsilon);
      return;
    }
    case 'rmsprop':
      kernels.rmsprop(params, grads, state.v, lr, s.alpha, s.epsilon);
      return;
    case 'adagrad':
      kernels.adagrad(params, grads, state.m, lr, s.epsilon);
      return;
  }
}
