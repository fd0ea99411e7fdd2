import { type DetectorState, type DriftDetector, type DriftLevel, type Mean, requireParameter, requireState, requireValue, updateMean } from './detector.ts';

/** HDDM_A's parameters (River's, in camelCase), every one optional. */
export interface HddmAOptions {
  /** Confidence of a drift (default 0.001). */
  readonly driftConfidence?: number;
  /** Confidence of a warning (default 0.005). */
  readonly warningConfidence?: number;
  /** Also watch for the mean going down (default false: only increases of the error). */
  readonly twoSided?: boolean;
}

/** HDDM_A's learned state: the global mean and the two cut points' means. */
export interface HddmAState extends DetectorState {
  readonly kind: 'hddm-a';
  readonly z: Mean;
  readonly xMin: Mean;
  readonly xMax: Mean;
  readonly level: DriftLevel;
}

/**
 * HDDM_A (Frías-Blanco et al. 2014): drift detection from Hoeffding's bound on moving
 * averages of values in [0, 1] (0/1 errors). It keeps the mean of everything since the
 * point where the mean was lowest (and, two-sided, highest) and tests whether the
 * global mean has since risen beyond the bound. Parameters, defaults and behaviour are
 * River's `drift.binary.HDDM_A` (after MOA), so its documented positions hold.
 *
 * @example
 * const hddm = new HddmA();
 * if (hddm.update(wrong ? 1 : 0) === 'drift') resetModel();
 */
export class HddmA implements DriftDetector {
  readonly kind = 'hddm-a';
  readonly driftConfidence: number;
  readonly warningConfidence: number;
  readonly twoSided: boolean;
  private z: Mean = { n: 0, mean: 0 };
  private xMin: Mean = { n: 0, mean: 0 };
  private xMax: Mean = { n: 0, mean: 0 };
  private level: DriftLevel = 'none';

  constructor(options: HddmAOptions = {}) {
    const { driftConfidence = 0.001, warningConfidence = 0.005, twoSided = false } = options;
    requireParameter(driftConfidence > 0 && driftConfidence < 1, this.kind, 'driftConfidence', 'must be in (0, 1)', driftConfidence);
    requireParameter(warningConfidence > 0 && warningConfidence < 1, this.kind, 'warningConfidence', 'must be in (0, 1)', warningConfidence);
    this.driftConfidence = driftConfidence;
    this.warningConfidence = warningConfidence;
    this.twoSided = twoSided;
  }

  private bound(n: number): number {
    return Math.sqrt((1 / (2 * n)) * Math.log(1 / this.driftConfidence));
  }

  update(x: number): DriftLevel {
    requireValue(x, this.kind, true);
    if (this.level === 'drift') this.reset();
    updateMean(this.z, x);
    if (this.xMin.n === 0) this.xMin = { ...this.z };
    if (this.xMax.n === 0) this.xMax = { ...this.z };
    const epsZ = this.bound(this.z.n);
    // move the cut points to here when the mean is at its lowest (highest) so far
    if (this.xMin.mean + this.bound(this.xMin.n) >= this.z.mean + epsZ) this.xMin = { ...this.z };
    if (this.xMax.mean - this.bound(this.xMax.n) <= this.z.mean - epsZ) this.xMax = { ...this.z };
    let drift = this.increased(this.driftConfidence);
    let warning = !drift && this.increased(this.warningConfidence);
    if (this.twoSided) {
      if (this.decreased(this.driftConfidence)) drift = true;
      else if (this.decreased(this.warningConfidence)) warning = true;
    }
    this.level = drift ? 'drift' : warning ? 'warning' : 'none';
    return this.level;
  }

  /** Hoeffding's bound for the difference of the mean since a cut point and the global mean. */
  private epsilon(cut: Mean, confidence: number): number {
    const m = ((this.z.n - cut.n) / cut.n) * (1 / this.z.n);
    return Math.sqrt((m / 2) * Math.log(2 / confidence));
  }

  private increased(confidence: number): boolean {
    return this.xMin.n !== this.z.n && this.z.mean - this.xMin.mean >= this.epsilon(this.xMin, confidence);
  }

  private decreased(confidence: number): boolean {
    return this.xMax.n !== this.z.n && this.xMax.mean - this.z.mean >= this.epsilon(this.xMax, confidence);
  }

  evidence(): Readonly<Record<string, number>> {
    // one-sided, it only sees increases; two-sided, a drift is an increase unless only the decrease test fired
    const direction = this.level !== 'drift' ? 0 : this.increased(this.driftConfidence) ? 1 : -1;
    return { mean: this.z.mean, count: this.z.n, minMean: this.xMin.mean, minCount: this.xMin.n, maxMean: this.xMax.mean, maxCount: this.xMax.n, direction };
  }

  state(): HddmAState {
    return { kind: this.kind, z: { ...this.z }, xMin: { ...this.xMin }, xMax: { ...this.xMax }, level: this.level };
  }

  restore(state: DetectorState): void {
    requireState(state, this.kind);
    const s = state as HddmAState;
    this.z = { ...s.z };
    this.xMin = { ...s.xMin };
    this.xMax = { ...s.xMax };
    this.level = s.level;
  }

  reset(): void {
    this.z = { n: 0, mean: 0 };
    this.xMin = { n: 0, mean: 0 };
    this.xMax = { n: 0, mean: 0 };
    this.level = 'none';
  }
}
