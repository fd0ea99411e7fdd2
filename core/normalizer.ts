import { requireConfig, StreamgradError } from './errors.ts';
import type { Sample, TargetUnits, TracedSample } from './sample.ts';
import { RunningStats, type RunningStatsState } from './welford.ts';

/** What a normaliser standardises. Immutable once built. */
export interface NormalizerConfig {
  /** Number of features. */
  readonly inputs: number;
  /** Number of targets (needed with `target`). */
  readonly outputs?: number;
  /** Standardise the regression target too (default false); predictions then need `denormalize`. */
  readonly target?: boolean;
  /**
   * Samples seen before values are standardised (default 2, the fewest that have a
   * spread; at least 2). Until then every value maps to 0, its unknown mean: a value
   * centred but not scaled would reach the network in its raw units (hundreds of ppm,
   * thousands of pascals), and one SGD step on it can blow the weights up.
   */
  readonly warmup?: number;
  /**
   * z-scores are clipped to ±clip (default 10, as RL observation normalisers do), and
   * while fewer than clip² samples have been seen to ±√n (n = samples seen): a spread
   * estimated from a few values is wild (two close values: a tiny sd, and the next value
   * a z-score in the dozens), and none of n values lies farther than √(n − 1) standard
   * deviations from their mean (Samuelson's inequality), so a z-score beyond √n says
   * more about the small sample than about the value. Infinity turns clipping off (both).
   */
  readonly clip?: number;
}

/** The warm-up a normaliser has unless told otherwise (`NormalizerConfig.warmup`). */
export const DEFAULT_NORMALIZER_WARMUP = 2;
/** The z-score clip a normaliser has unless told otherwise (`NormalizerConfig.clip`). */
export const DEFAULT_NORMALIZER_CLIP = 10;

/** A normaliser's learned state, as plain numbers (for checkpoints). */
export interface NormalizerState {
  readonly version: 1;
  readonly x: RunningStatsState;
  readonly y: RunningStatsState | null;
  /**
   * The warm-up and clip the statistics were used with (`clip` null: no clipping).
   * Absent in states written before they were settings; a state that has them restores
   * only into a normaliser with the same ones.
   */
  readonly settings?: { readonly warmup: number; readonly clip: number | null };
}

/**
 * Online standardisation, test-then-learn (prequential): `transform` maps a sample to
 * z-scores `(v − mean) / sd` with the statistics of the samples *before* it, and
 * `learn` adds it to the statistics afterwards, so no sample is ever scaled with its own
 * value. Until `warmup` samples have been seen (default 2) every value maps to 0 (it is
 * at its unknown mean, and its spread is unknown); from then on it is standardised, and
 * a feature whose variance is 0 (constant) is only centred (scale 1). z-scores are
 * clipped to ±min(`clip`, √n) after n samples (see `clip`), so that the first few samples
 * cannot hand the network outsized values. The statistics are Welford's (`RunningStats`),
 * kept in original units.
 *
 * With `target: true` the regression target is standardised the same way and the model
 * learns in z-units; `denormalizeOutput` maps its outputs back to original units with
 * the current statistics. The state is part of the model state: `state()` and
 * `restore()` are for checkpoints (RELIABILITY 1), like a trainer's parameters.
 *
 * @example
 * const normalizer = new Normalizer({ inputs: 3, outputs: 1, target: true });
 * samples$.pipe(normalize(normalizer), train(trainer)); // operators/normalize.ts
 */
export class Normalizer {
  readonly x: RunningStats;
  readonly y: RunningStats | null;
  /** Samples before values are divided by their sd (the resolved `config.warmup`): a model artifact records it. */
  readonly warmup: number;
  /** The z-score clip (the resolved `config.clip`; Infinity: none): a model artifact records it. */
  readonly clip: number;

  constructor(readonly config: NormalizerConfig) {
    const { inputs, outputs, target = false, warmup = DEFAULT_NORMALIZER_WARMUP, clip = DEFAULT_NORMALIZER_CLIP } = config;
    requireConfig(Number.isSafeInteger(inputs) && inputs >= 1, 'inputs', `must be an integer ≥ 1, got ${String(inputs)}`);
    requireConfig(Number.isSafeInteger(warmup) && warmup >= 2, 'warmup', `must be an integer ≥ 2, got ${String(warmup)}`);
    requireConfig(typeof clip === 'number' && clip > 0, 'clip', `must be > 0 (Infinity: no clipping), got ${String(clip)}`);
    this.warmup = warmup;
    this.clip = clip;
    requireConfig(typeof target === 'boolean', 'target', `must be true or false, got ${String(target)}`);
    if (target) requireConfig(outputs !== undefined && Number.isSafeInteger(outputs) && outputs >= 1, 'outputs', `must be an integer ≥ 1 to normalise the target, got ${String(outputs)}`);
    this.x = new RunningStats(inputs);
    this.y = target ? new RunningStats(outputs!) : null;
  }

  /**
   * The sample in z-units with the statistics so far (fresh arrays; the input is not
   * touched). Its `origin` is kept; with `target`, `units` holds the target as it arrived
   * and the mean and scale it was standardised with, so that a prediction made on it can
   * be read in the target's own units (`core/target-units.ts`).
   */
  transform(sample: TracedSample): TracedSample {
    const x = this.scale(this.x, sample.x);
    const origin = sample.origin;
    let scaled: TracedSample;
    if (this.y === null) scaled = origin === undefined ? { x, y: sample.y } : { x, y: sample.y, origin };
    else {
      const raw = typeof sample.y === 'number' ? [sample.y] : sample.y;
      const y = this.scale(this.y, raw);
      const units = this.targetUnits(raw);
      scaled = origin === undefined ? { x, y, units } : { x, y, units, origin };
    }
    // a delayed-labels sample keeps the prediction made when its features came (`joinLabels`)
    return sample.prediction === undefined ? scaled : { ...scaled, prediction: sample.prediction };
  }

  /** The target's mean and scale now (0 and 1 before the first sample, as `denormalizeOutput`). */
  private targetUnits(raw: ArrayLike<number>): TargetUnits {
    const stats = this.y!;
    const mean = new Float64Array(stats.size);
    const scale = new Float64Array(stats.size).fill(1);
    if (stats.count > 0) {
      for (let k = 0; k < stats.size; k++) {
        mean[k] = stats.mean[k];
        scale[k] = this.scaleOf(stats, k);
      }
    }
    return { y: Float64Array.from(raw), mean, scale };
  }

  /** Features alone in z-units (for prediction). */
  transformInput(x: ArrayLike<number>): Float64Array {
    return this.scale(this.x, x);
  }

  /** The divisor of dimension `i` of `stats` now: its sd once warmed up (1 for zero variance), else 1. */
  scaleOf(stats: RunningStats, i: number): number {
    return stats.count >= this.warmup ? stats.scale(i) : 1;
  }

  private scale(stats: RunningStats, v: ArrayLike<number>): Float64Array {
    const out = new Float64Array(stats.size);
    if (stats.count < this.warmup) return out; // no spread known yet: every value is at its (unknown) mean
    // Samuelson: none of n values lies farther than √(n − 1) sds from their mean (see `clip`)
    const clip = this.clip === Infinity ? Infinity : Math.min(this.clip, Math.sqrt(stats.count));
    for (let i = 0; i < stats.size; i++) {
      const z = (v[i] - stats.mean[i]) / this.scaleOf(stats, i);
      out[i] = z > clip ? clip : z < -clip ? -clip : z;
    }
    return out;
  }

  /** Adds a (validated, finite) sample in original units to the statistics. */
  learn(sample: Sample): void {
    this.x.push(sample.x);
    this.y?.push(typeof sample.y === 'number' ? [sample.y] : sample.y);
  }

  /** Model outputs back in original units (a copy when the target is not normalised). */
  denormalizeOutput(output: ArrayLike<number>): Float64Array {
    const out = Float64Array.from(output);
    const y = this.y;
    if (y === null) return out;
    for (let k = 0; k < out.length; k++) out[k] = y.count === 0 ? out[k] : out[k] * this.scaleOf(y, k) + y.mean[k];
    return out;
  }

  /** The statistics, and the warm-up and clip they are used with (a resume must scale as the run it continues). */
  state(): NormalizerState {
    return { version: 1, x: this.x.state(), y: this.y?.state() ?? null, settings: { warmup: this.warmup, clip: this.clip === Infinity ? null : this.clip } };
  }

  restore(state: NormalizerState): void {
    if (typeof state !== 'object' || state === null || state.version !== 1) {
      throw new StreamgradError('SG_ERR_STATE', `normalizer: unsupported state (version ${String((state as { version?: unknown } | null)?.version)}, expected 1)`, 'normalizer');
    }
    if ((state.y === null) !== (this.y === null)) {
      throw new StreamgradError('SG_ERR_STATE', `normalizer.y: the saved state ${state.y === null ? 'does not normalise' : 'normalises'} the target, this normaliser ${this.y === null ? 'does not' : 'does'}`, 'normalizer.y');
    }
    const saved = state.settings;
    if (saved !== undefined) {
      const clip = saved?.clip === null ? Infinity : saved?.clip;
      if (saved?.warmup !== this.warmup || clip !== this.clip) {
        const show = (w: unknown, c: unknown) => `warm-up ${String(w)}, clip ${c === Infinity || c === null ? 'none' : String(c)}`;
        throw new StreamgradError('SG_ERR_STATE', `normalizer.settings: the saved statistics were used with ${show(saved?.warmup, saved?.clip)}, this normaliser has ${show(this.warmup, this.clip)}`, 'normalizer.settings');
      }
    }
    // check both before changing either
    const x = new RunningStats(this.x.size);
    x.restore(state.x, 'normalizer.x');
    let y: RunningStats | null = null;
    if (this.y !== null && state.y !== null) {
      y = new RunningStats(this.y.size);
      y.restore(state.y, 'normalizer.y');
    }
    this.x.restore(state.x, 'normalizer.x');
    if (y !== null) this.y!.restore(state.y!, 'normalizer.y');
  }
}
