import { type DetectorState, type DriftDetector, type DriftLevel, type Mean, requireParameter, requireState, requireValue, updateMean } from './detector.ts';

/** DDM's parameters (River's, in camelCase), every one optional. */
export interface DdmOptions {
  /** Values seen before it may warn or alarm (default 30). */
  readonly warmStart?: number;
  /** Warning when p + s exceeds p_min + this × s_min (default 2: about 95% confidence). */
  readonly warningThreshold?: number;
  /** Drift when p + s exceeds p_min + this × s_min (default 3: about 99% confidence). */
  readonly driftThreshold?: number;
}

/** DDM's learned state (`pMin`/`sMin` null until the warm start is over). */
export interface DdmState extends DetectorState {
  readonly kind: 'ddm';
  readonly n: number;
  readonly p: number;
  readonly pMin: number | null;
  readonly sMin: number | null;
  readonly level: DriftLevel;
}

/**
 * The Drift Detection Method (Gama et al. 2004) over 0/1 errors (1 = wrong): while the
 * stream is stationary a learner's error rate p falls as it learns; DDM keeps the lowest
 * p + s seen (s = √(p(1−p)/n), the Bernoulli standard deviation) and warns when the
 * current p + s rises 2 s_min above p_min, alarms at 3 s_min. Parameters, defaults and
 * behaviour are River's `drift.binary.DDM`, so its documented positions hold.
 *
 * @example
 * const ddm = new Ddm();
 * const level = ddm.update(predicted === actual ? 0 : 1);
 */
export class Ddm implements DriftDetector {
  readonly kind = 'ddm';
  readonly warmStart: number;
  readonly warningThreshold: number;
  readonly driftThreshold: number;
  private p: Mean = { n: 0, mean: 0 };
  private pMin: number | null = null;
  private sMin: number | null = null;
  private level: DriftLevel = 'none';

  constructor(options: DdmOptions = {}) {
    const { warmStart = 30, warningThreshold = 2, driftThreshold = 3 } = options;
    requireParameter(Number.isSafeInteger(warmStart) && warmStart >= 0, this.kind, 'warmStart', 'must be an integer ≥ 0', warmStart);
    requireParameter(Number.isFinite(warningThreshold) && warningThreshold > 0, this.kind, 'warningThreshold', 'must be a finite number > 0', warningThreshold);
    requireParameter(Number.isFinite(driftThreshold) && driftThreshold >= warningThreshold, this.kind, 'driftThreshold', 'must be a finite number ≥ warningThreshold', driftThreshold);
    this.warmStart = warmStart;
    this.warningThreshold = warningThreshold;
    this.driftThreshold = driftThreshold;
  }

  update(x: number): DriftLevel {
    requireValue(x, this.kind, true);
    if (this.level === 'drift') this.reset();
    updateMean(this.p, x);
    const { n, mean: p } = this.p;
    const s = Math.sqrt((p * (1 - p)) / n);
    if (n > this.warmStart) {
      if (this.pMin === null || p + s <= this.pMin + this.sMin!) {
        this.pMin = p;
        this.sMin = s;
      }
      const pMin = this.pMin, sMin = this.sMin!;
      this.level = p + s > pMin + this.driftThreshold * sMin ? 'drift' : p + s > pMin + this.warningThreshold * sMin ? 'warning' : 'none';
    }
    return this.level;
  }

  evidence(): Readonly<Record<string, number>> {
    const { n, mean: p } = this.p;
    return { errorRate: p, std: n > 0 ? Math.sqrt((p * (1 - p)) / n) : 0, count: n, minErrorRate: this.pMin ?? NaN, minStd: this.sMin ?? NaN, direction: 1 };
  }

  state(): DdmState {
    return { kind: this.kind, n: this.p.n, p: this.p.mean, pMin: this.pMin, sMin: this.sMin, level: this.level };
  }

  restore(state: DetectorState): void {
    requireState(state, this.kind);
    const s = state as DdmState;
    this.p = { n: s.n, mean: s.p };
    this.pMin = s.pMin;
    this.sMin = s.sMin;
    this.level = s.level;
  }

  reset(): void {
    this.p = { n: 0, mean: 0 };
    this.pMin = null;
    this.sMin = null;
    this.level = 'none';
  }
}
