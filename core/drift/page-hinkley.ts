import { type DetectorState, type DriftDetector, type DriftLevel, type Mean, requireParameter, requireState, requireValue, updateMean } from './detector.ts';

/** Page-Hinkley's parameters (River's, in camelCase), every one optional. */
export interface PageHinkleyOptions {
  /** Values seen before it may alarm (default 30). */
  readonly minInstances?: number;
  /** Magnitude of change tolerated (default 0.005, in the values' unit). */
  readonly delta?: number;
  /** The alarm threshold λ on the cumulative deviation (default 50). */
  readonly threshold?: number;
  /** Forgetting factor of the cumulative sums (default 1 − 1e-4). */
  readonly alpha?: number;
  /** Watch for increases (`up`: a loss getting worse), decreases, or both (default `both`). */
  readonly mode?: 'up' | 'down' | 'both';
}

/** Page-Hinkley's learned state (`minIncrease` is null before the first value: JSON has no Infinity). */
export interface PageHinkleyState extends DetectorState {
  readonly kind: 'page-hinkley';
  readonly n: number;
  readonly mean: number;
  readonly sumIncrease: number;
  readonly sumDecrease: number;
  readonly minIncrease: number | null;
  readonly maxDecrease: number;
  readonly drifted: boolean;
}

/**
 * The Page-Hinkley test (Page 1954): accumulates each value's deviation from the running
 * mean, less a tolerance δ, with a forgetting factor α, and alarms when the sum has
 * risen more than λ above its lowest point (or, two-sided, fallen as far below its
 * highest). No warning level. Parameters, defaults and behaviour are River's
 * `drift.PageHinkley`, so River's documented alarm positions hold (test/drift).
 *
 * @example
 * const ph = new PageHinkley();
 * for (const [i, loss] of losses.entries()) if (ph.update(loss) === 'drift') console.log('change at', i);
 */
export class PageHinkley implements DriftDetector {
  readonly kind = 'page-hinkley';
  readonly minInstances: number;
  readonly delta: number;
  readonly threshold: number;
  readonly alpha: number;
  readonly mode: 'up' | 'down' | 'both';
  private mean: Mean = { n: 0, mean: 0 };
  private sumIncrease = 0;
  private sumDecrease = 0;
  private minIncrease = Infinity;
  // River starts it at -1 (not -Infinity): kept, so that alarm positions match
  private maxDecrease = -1;
  private drifted = false;

  constructor(options: PageHinkleyOptions = {}) {
    const { minInstances = 30, delta = 0.005, threshold = 50, alpha = 1 - 0.0001, mode = 'both' } = options;
    requireParameter(Number.isSafeInteger(minInstances) && minInstances >= 1, this.kind, 'minInstances', 'must be an integer ≥ 1', minInstances);
    requireParameter(Number.isFinite(delta) && delta >= 0, this.kind, 'delta', 'must be a finite number ≥ 0', delta);
    requireParameter(Number.isFinite(threshold) && threshold > 0, this.kind, 'threshold', 'must be a finite number > 0', threshold);
    requireParameter(alpha > 0 && alpha <= 1, this.kind, 'alpha', 'must be in (0, 1]', alpha);
    requireParameter(mode === 'up' || mode === 'down' || mode === 'both', this.kind, 'mode', 'must be up, down or both', mode);
    this.minInstances = minInstances;
    this.delta = delta;
    this.threshold = threshold;
    this.alpha = alpha;
    this.mode = mode;
  }

  update(x: number): DriftLevel {
    requireValue(x, this.kind);
    if (this.drifted) this.reset();
    updateMean(this.mean, x);
    const deviation = x - this.mean.mean;
    this.sumIncrease = this.alpha * this.sumIncrease + deviation - this.delta;
    this.sumDecrease = this.alpha * this.sumDecrease + deviation + this.delta;
    if (this.sumIncrease < this.minIncrease) this.minIncrease = this.sumIncrease;
    if (this.sumDecrease > this.maxDecrease) this.maxDecrease = this.sumDecrease;
    if (this.mean.n >= this.minInstances) {
      const { increase, decrease } = this.tests();
      this.drifted = (this.mode !== 'down' && increase > this.threshold) || (this.mode !== 'up' && decrease > this.threshold);
    }
    return this.drifted ? 'drift' : 'none';
  }

  private tests(): { increase: number; decrease: number } {
    return { increase: this.sumIncrease - this.minIncrease, decrease: this.maxDecrease - this.sumDecrease };
  }

  evidence(): Readonly<Record<string, number>> {
    const { increase, decrease } = this.tests();
    // which side crossed λ (an increase first: the side a loss getting worse is on)
    const direction = this.mode !== 'down' && increase > this.threshold ? 1 : this.mode !== 'up' && decrease > this.threshold ? -1 : 0;
    return { mean: this.mean.mean, count: this.mean.n, increase, decrease, threshold: this.threshold, direction };
  }

  state(): PageHinkleyState {
    return { kind: this.kind, n: this.mean.n, mean: this.mean.mean, sumIncrease: this.sumIncrease, sumDecrease: this.sumDecrease, minIncrease: Number.isFinite(this.minIncrease) ? this.minIncrease : null, maxDecrease: this.maxDecrease, drifted: this.drifted };
  }

  restore(state: DetectorState): void {
    requireState(state, this.kind);
    const s = state as PageHinkleyState;
    this.mean = { n: s.n, mean: s.mean };
    this.sumIncrease = s.sumIncrease;
    this.sumDecrease = s.sumDecrease;
    this.minIncrease = s.minIncrease ?? Infinity;
    this.maxDecrease = s.maxDecrease;
    this.drifted = s.drifted;
  }

  reset(): void {
    this.mean = { n: 0, mean: 0 };
    this.sumIncrease = 0;
    this.sumDecrease = 0;
    this.minIncrease = Infinity;
    this.maxDecrease = -1;
    this.drifted = false;
  }
}
