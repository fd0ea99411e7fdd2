import { Rng, type RngState } from '../rng.ts';
import { type DetectorState, type DriftDetector, type DriftLevel, requireParameter, requireState, requireValue } from './detector.ts';
import { ksTwoSample } from './ks-test.ts';

/** Draws `k` distinct indices from [0, n) (a seeded generator's, or another of your choice). */
export type Sampler = (n: number, k: number) => number[];

/** KSWIN's parameters (River's, in camelCase), every one optional. */
export interface KswinOptions {
  /** Significance of the Kolmogorov–Smirnov test (default 0.005; keep it below 0.01). */
  readonly alpha?: number;
  /** Values in the sliding window (default 100). */
  readonly windowSize?: number;
  /** Values in each of the two compared samples (default 30). */
  readonly statSize?: number;
  /** Seed of the sampler (default 0: River's default draws an unseeded one, streamgrad stays reproducible). */
  readonly seed?: number;
  /**
   * Makes the sampler for a seed; it is made again after each drift, as River re-seeds.
   * The default draws by a partial Fisher–Yates shuffle from streamgrad's seeded `Rng`
   * (whose state checkpoints carry); tests pass Python's `random.sample` to match River.
   */
  readonly sampler?: (seed: number) => Sampler;
}

/** KSWIN's learned state: the window, the sampler's generator, the last test. */
export interface KswinState extends DetectorState {
  readonly kind: 'kswin';
  readonly window: readonly number[];
  readonly n: number;
  readonly rng: RngState | null;
  readonly pValue: number;
  readonly statistic: number;
  readonly drifted: boolean;
  readonly direction: number;
}

/**
 * KSWIN (Raab et al. 2020): keeps a sliding window of the last `windowSize` values and
 * compares its newest `statSize` values with as many drawn at random from the older part,
 * by the two-sample Kolmogorov–Smirnov test; a drift when p ≤ α and D > 0.1. It sees any
 * change of distribution, not only of the mean. Parameters, defaults (but the seed) and
 * behaviour are River's `drift.KSWIN`, with SciPy's exact p-value, so River's documented
 * alarm positions hold given Python's sampler.
 *
 * @example
 * const kswin = new Kswin({ alpha: 0.001 });
 * if (kswin.update(reading) === 'drift') console.log('the distribution changed');
 */
export class Kswin implements DriftDetector {
  readonly kind = 'kswin';
  readonly alpha: number;
  readonly windowSize: number;
  readonly statSize: number;
  readonly seed: number;
  private readonly makeSampler: ((seed: number) => Sampler) | undefined;
  private window: number[] = [];
  private n = 0;
  private rng: Rng | null = null;
  private sample: Sampler = () => [];
  private pValue = 1;
  private statistic = 0;
  private drifted = false;
  /** +1 when the newest values' mean is above the drawn older ones', −1 below (last test). */
  private direction = 0;

  constructor(options: KswinOptions = {}) {
    const { alpha = 0.005, windowSize = 100, statSize = 30, seed = 0, sampler } = options;
    requireParameter(alpha > 0 && alpha < 1, this.kind, 'alpha', 'must be in (0, 1)', alpha);
    requireParameter(Number.isSafeInteger(statSize) && statSize >= 1, this.kind, 'statSize', 'must be an integer ≥ 1', statSize);
    requireParameter(Number.isSafeInteger(windowSize) && windowSize >= 2 * statSize, this.kind, 'windowSize', `must be an integer ≥ 2 × statSize (${2 * statSize})`, windowSize);
    requireParameter(Number.isSafeInteger(seed), this.kind, 'seed', 'must be a safe integer', seed);
    this.alpha = alpha;
    this.windowSize = windowSize;
    this.statSize = statSize;
    this.seed = seed;
    this.makeSampler = sampler;
    this.reset();
  }

  update(x: number): DriftLevel {
    requireValue(x, this.kind);
    if (this.drifted) this.reset();
    this.n += 1;
    this.window.push(x);
    if (this.window.length > this.windowSize) this.window.shift();
    this.drifted = false;
    if (this.window.length >= this.windowSize) {
      const older = this.windowSize - this.statSize;
      const drawn = this.sample(older, this.statSize).map((i) => this.window[i]);
      const recent = this.window.slice(older);
      const { statistic, pValue } = ksTwoSample(drawn, recent);
      this.statistic = statistic;
      this.pValue = pValue;
      this.direction = Math.sign(sum(recent) - sum(drawn));
      if (pValue <= this.alpha && statistic > 0.1) {
        this.drifted = true;
        this.window = recent;
      }
    }
    return this.drifted ? 'drift' : 'none';
  }

  evidence(): Readonly<Record<string, number>> {
    return { statistic: this.statistic, pValue: this.pValue, alpha: this.alpha, count: this.n, direction: this.direction };
  }

  state(): KswinState {
    return { kind: this.kind, window: [...this.window], n: this.n, rng: this.rng?.state() ?? null, pValue: this.pValue, statistic: this.statistic, drifted: this.drifted, direction: this.direction };
  }

  restore(state: DetectorState): void {
    requireState(state, this.kind);
    const s = state as KswinState;
    this.window = [...s.window];
    this.n = s.n;
    if (s.rng !== null && this.rng !== null) this.useRng(new Rng(s.rng));
    this.pValue = s.pValue;
    this.statistic = s.statistic;
    this.drifted = s.drifted;
    this.direction = s.direction;
  }

  reset(): void {
    this.window = [];
    this.n = 0;
    this.pValue = 1;
    this.statistic = 0;
    this.drifted = false;
    this.direction = 0;
    if (this.makeSampler !== undefined) {
      this.rng = null;
      this.sample = this.makeSampler(this.seed);
    } else {
      this.useRng(new Rng(this.seed));
    }
  }

  private useRng(rng: Rng): void {
    this.rng = rng;
    this.sample = (n, k) => {
      // a partial Fisher–Yates shuffle of 0..n-1: k distinct indices, uniformly
      const pool = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(rng.next() * (n - i));
        [pool[i], pool[j]] = [pool[j], pool[i]];
      }
      return pool.slice(0, k);
    };
  }
}

function sum(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}
