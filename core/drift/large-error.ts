import { StreamgradError } from '../errors.ts';

/** The large-error signal's parameters, every one optional. */
export interface LargeErrorOptions {
  /** A value is large when above this quantile of the reference window (default 0.9). */
  readonly quantile?: number;
  /** Values in the reference window the threshold is estimated from (default 500). */
  readonly reference?: number;
  /** Values skipped after a start or a `rearm` before the reference window begins (default 0). */
  readonly settle?: number;
  /**
   * Without a drift, the threshold is estimated afresh from the latest `reference` values
   * every this many values (default 5,000; 0: never), so that it follows a model that
   * keeps improving (a threshold from its first, clumsy samples would hide every change).
   */
  readonly refresh?: number;
}

/** The large-error signal's learned state: the reference being collected, or the frozen threshold. */
export interface LargeErrorState {
  readonly kind: 'large-error';
  /** Values still to skip before the reference window begins. */
  readonly skip: number;
  /** The latest values, oldest first (at most `reference`). */
  readonly collected: readonly number[];
  /** The frozen threshold, or null while the reference is collected. */
  readonly threshold: number | null;
  /** Values since the threshold was estimated. */
  readonly age: number;
}

/**
 * Turns a stream of per-sample losses (a regression's squared errors, in any unit) into
 * 0/1 "large error" indicators that the detectors of classification errors (DDM, HDDM_A)
 * and ADWIN take as they take a classifier's mistakes: 1 when a loss is above the
 * `quantile` of the losses in a reference window, 0 otherwise. The threshold is estimated
 * over `reference` values and then frozen until `rearm` (called after each drift), or
 * until `refresh` values later, when it is estimated afresh from the latest `reference`
 * values and `renewed` says so (the detector fed must then start over: the rate it
 * learned belongs to the old threshold). The detectors alarm on a rise of the rate,
 * which is what a change of the concept makes. While the reference is collected,
 * `update` says `null`: there is nothing to feed a detector yet.
 *
 * Why: a loss has no fixed scale (it depends on the target's unit and on how well the
 * model fits), so detectors on the raw loss need thresholds in its unit; the indicator's
 * rate has none (10% until the stream changes, by construction). This is how error-based
 * detectors are put on regressors elsewhere (a residual above a threshold counts as an
 * error, as in R's heimdall error-based drifters); here the threshold comes from the
 * model's own recent errors. A pure step; its whole state is `state()` (plain JSON).
 *
 * @example
 * const signal = new LargeErrorSignal({ quantile: 0.9, reference: 500 });
 * const bit = signal.update(loss); // null, 0 or 1
 * if (bit !== null && ddm.update(bit) === 'drift') signal.rearm();
 */
export class LargeErrorSignal {
  readonly quantile: number;
  readonly reference: number;
  readonly settle: number;
  readonly refresh: number;
  private skip: number;
  private collected: number[] = [];
  private threshold: number | null = null;
  private age = 0;
  private fresh = false;

  constructor(options: LargeErrorOptions = {}) {
    const { quantile = 0.9, reference = 500, settle = 0, refresh = 5000 } = options;
    const bad = (name: string, what: string, got: unknown) => new StreamgradError('SG_ERR_CONFIG', `large-error: ${name} ${what}, got ${String(got)}`, name);
    if (!(Number.isFinite(quantile) && quantile > 0 && quantile < 1)) throw bad('quantile', 'must be a number in (0, 1)', quantile);
    if (!(Number.isSafeInteger(reference) && reference >= 10 && reference <= 100_000)) throw bad('reference', 'must be an integer in [10, 100000]', reference);
    if (!(Number.isSafeInteger(settle) && settle >= 0)) throw bad('settle', 'must be an integer ≥ 0', settle);
    if (!(Number.isSafeInteger(refresh) && (refresh === 0 || refresh >= reference))) throw bad('refresh', 'must be 0 or an integer ≥ reference', refresh);
    this.refresh = refresh;
    this.quantile = quantile;
    this.reference = reference;
    this.settle = settle;
    this.skip = settle;
  }

  /** Takes one loss; says 1 (large), 0, or null while the reference is collected. Non-finite losses say null. */
  update(loss: number): 0 | 1 | null {
    this.fresh = false;
    if (!Number.isFinite(loss)) return null;
    if (this.skip > 0) {
      this.skip--;
      return null;
    }
    // a ring would be cheaper, but at most `reference` values shift once per value is
    // not what costs here (a training step per value does)
    this.collected.push(loss);
    if (this.collected.length > this.reference) this.collected.shift();
    if (this.threshold === null) {
      if (this.collected.length === this.reference) this.estimate();
      return null;
    }
    const bit = loss > this.threshold ? 1 : 0;
    if (this.refresh > 0 && ++this.age >= this.refresh) {
      this.estimate();
      this.fresh = true;
    }
    return bit;
  }

  private estimate(): void {
    this.threshold = quantileOf(this.collected, this.quantile);
    this.age = 0;
  }

  /** Whether the last `update` estimated the threshold afresh (a detector fed must start over). */
  get renewed(): boolean {
    return this.fresh;
  }

  /** The frozen threshold (null while the reference is collected). */
  get current(): number | null {
    return this.threshold;
  }

  /** Starts a new reference window (after `settle` values): the stream has changed, the old threshold is void. */
  rearm(): void {
    this.skip = this.settle;
    this.collected = [];
    this.threshold = null;
    this.age = 0;
    this.fresh = false;
  }

  state(): LargeErrorState {
    return { kind: 'large-error', skip: this.skip, collected: [...this.collected], threshold: this.threshold, age: this.age };
  }

  restore(state: LargeErrorState): void {
    if (state?.kind !== 'large-error') throw new StreamgradError('SG_ERR_CHECKPOINT', `the large-error signal cannot restore the state of ${String(state?.kind)}`, 'drift.signal');
    this.skip = state.skip;
    this.collected = [...state.collected];
    this.threshold = state.threshold;
    this.age = state.age;
    this.fresh = false;
  }
}

/** The q-quantile of `values` (linear interpolation between order statistics, NumPy's default). */
function quantileOf(values: readonly number[], q: number): number {
  const sorted = Float64Array.from(values).sort();
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}
