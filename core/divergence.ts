import { requireConfig, StreamgradError } from './errors.ts';

/** Why an update was skipped: the stage, NaN or Infinity, and the layer where it showed. */
export interface SkipReason {
  readonly stage: 'loss' | 'gradient';
  readonly value: 'NaN' | 'Infinity';
  /** Layer index for gradients; undefined for the loss. */
  readonly layer?: number;
  readonly message: string;
}

/**
 * When a stream of skipped steps counts as divergence. A step is skipped when its loss
 * or gradient is not finite (the weights stay bitwise unchanged); a few such steps are
 * bad samples, many are a model that has blown up. Either rule below stops training with
 * `SG_ERR_DIVERGED`:
 *
 * - `maxConsecutiveSkips` skipped steps in a row (default 10), or
 * - more than `maxSkipRate` × `skipWindow` skipped steps among the last `skipWindow`
 *   steps (default: more than 1% of the last 1,000, i.e. 11 or more). Steps before the
 *   first count as good, so a short run is held to the same count: 11 skips in its first
 *   100 steps diverge too.
 *
 * The second rule catches what the first cannot: non-finite steps scattered between good
 * ones, where the model keeps learning from the good ones while its error grows without
 * bound (a run with 36 scattered skips used to end "successfully" with an MAE of 1e212).
 */
export interface DivergenceConfig {
  /** Skipped steps in a row that end the stream (default 10; ≥ 1). */
  readonly maxConsecutiveSkips?: number;
  /** Largest tolerated fraction of skipped steps in the last `skipWindow` steps (default 0.01; 0 ≤ x < 1). */
  readonly maxSkipRate?: number;
  /** Steps the rate is measured over (default 1000; ≥ 1). */
  readonly skipWindow?: number;
}

export const DIVERGENCE_DEFAULTS = { maxConsecutiveSkips: 10, maxSkipRate: 0.01, skipWindow: 1000 } as const;

/** The checked settings and the recent history of one trainer's skipped steps. */
export interface DivergenceGuard {
  readonly maxConsecutiveSkips: number;
  readonly maxSkipRate: number;
  readonly skipWindow: number;
  /** Skipped steps allowed in the window: floor(maxSkipRate × skipWindow); one more diverges. */
  readonly allowed: number;
  /**
   * Step indices of the skipped steps still inside the window, oldest first (at most
   * `allowed + 1` of them: fixed, small memory). Part of the trainer's state: checkpoints
   * carry it, so a resumed run diverges exactly where an uninterrupted one does.
   */
  readonly recent: number[];
}

/** Checks `config` (SG_ERR_CONFIG naming the field) and returns a fresh guard. */
export function createDivergenceGuard(config: DivergenceConfig = {}): DivergenceGuard {
  const { maxConsecutiveSkips = DIVERGENCE_DEFAULTS.maxConsecutiveSkips, maxSkipRate = DIVERGENCE_DEFAULTS.maxSkipRate, skipWindow = DIVERGENCE_DEFAULTS.skipWindow } = config;
  requireConfig(Number.isSafeInteger(maxConsecutiveSkips) && maxConsecutiveSkips >= 1, 'maxConsecutiveSkips', `must be an integer ≥ 1, got ${String(maxConsecutiveSkips)}`);
  requireConfig(typeof maxSkipRate === 'number' && maxSkipRate >= 0 && maxSkipRate < 1, 'maxSkipRate', `must be a number ≥ 0 and < 1 (a fraction of steps), got ${String(maxSkipRate)}`);
  requireConfig(Number.isSafeInteger(skipWindow) && skipWindow >= 1, 'skipWindow', `must be an integer ≥ 1 (steps), got ${String(skipWindow)}`);
  // a tiny epsilon: 0.01 × 1000 is 10, not 9.999…
  const allowed = Math.floor(maxSkipRate * skipWindow + 1e-9);
  return { maxConsecutiveSkips, maxSkipRate, skipWindow, allowed, recent: [] };
}

/**
 * Records that step `index` was skipped (`consecutive` skips in a row, this one included)
 * and returns the `SG_ERR_DIVERGED` error when a rule is broken, else null.
 */
export function recordSkip(guard: DivergenceGuard, index: number, consecutive: number, skip: SkipReason): StreamgradError | null {
  const recent = guard.recent;
  recent.push(index);
  while (recent.length > 0 && recent[0] <= index - guard.skipWindow) recent.shift();
  const field = skip.stage === 'loss' ? 'loss' : `layers[${skip.layer}]`;
  const advice = 'lower the learning rate, clip the gradient norm (clipNorm, --clip-norm) or normalise the inputs';
  if (consecutive >= guard.maxConsecutiveSkips) {
    return new StreamgradError('SG_ERR_DIVERGED', `training diverged: ${consecutive} consecutive steps skipped for non-finite values (last: ${skip.message}); ${advice}`, field);
  }
  if (recent.length > guard.allowed) {
    const count = recent.length;
    return new StreamgradError('SG_ERR_DIVERGED',
      `training diverged: ${count} of the last ${guard.skipWindow} steps skipped for non-finite values, more than the ${formatRate(guard.maxSkipRate)} allowed (maxSkipRate) (last: ${skip.message}); ${advice}`, field);
  }
  return null;
}

/** Forgets the history (a reset, or a fresh subscription after a divergence). */
export function clearSkips(guard: DivergenceGuard): void {
  guard.recent.length = 0;
}

/** Puts back a checkpoint's `recent` list (ignoring indices outside the window of `step`). */
export function restoreSkips(guard: DivergenceGuard, recent: unknown, step: number): void {
  clearSkips(guard);
  if (!Array.isArray(recent)) return;
  for (const i of recent) if (Number.isSafeInteger(i) && i > step - 1 - guard.skipWindow && i < step) guard.recent.push(i as number);
  guard.recent.sort((a, b) => a - b);
  if (guard.recent.length > guard.allowed + 1) guard.recent.splice(0, guard.recent.length - guard.allowed - 1);
}

const formatRate = (rate: number): string => `${Number((rate * 100).toPrecision(3))}%`;
