import type { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';
import { chunked } from './generated.ts';

/** Settings of the simulated enzyme-kinetics sensor; every field has a default. */
export interface MichaelisMentenOptions {
  /** Seed of the stream (default 0): the same seed gives the same samples, bit for bit. */
  readonly seed?: number;
  /** Standard deviation of the gaussian noise added to the measured rate (default 0.01). */
  readonly noise?: number;
  /** Ranges the kinetic parameters and the substrate concentration are drawn from, uniformly. */
  readonly vmax?: readonly [number, number];
  readonly substrate?: readonly [number, number];
  readonly km?: readonly [number, number];
  /** Samples emitted per turn of the event loop (default 256). */
  readonly chunkSize?: number;
  /** Complete after this many samples (default: never). */
  readonly limit?: number;
  /**
   * Concept drift: the enzyme's true Michaelis constant moves by this much per sample
   * (default 0), while `x` keeps reporting the nominal `Km`: sample `n` is measured with
   * `Km + kmDrift·n` (never below 1e-3). A model that stops learning goes stale.
   */
  readonly kmDrift?: number;
  /**
   * An abrupt change: from sample `at` on, the enzyme's true Michaelis constant is
   * `Km + by` (never below 1e-3; added to any `kmDrift`), while `x` keeps reporting the
   * nominal `Km`. Default: none. A model must notice and relearn (`bench/quality.ts`).
   */
  readonly kmShift?: { readonly at: number; readonly by: number };
}

/** A Michaelis–Menten sample: `x = [Vmax, S, Km]`, `y = [V]`. */
export interface KineticsSample extends Sample {
  readonly x: readonly [vmax: number, substrate: number, km: number];
  readonly y: readonly [rate: number];
}

/**
 * A simulated enzyme-kinetics sensor: an endless stream of reaction rates measured at
 * random conditions, for regression.
 *
 * Each sample draws, uniformly, a maximum rate `Vmax` in [0.5, 2], a substrate
 * concentration `S` in [0, 10] and a Michaelis constant `Km` in [0.5, 5] (the ranges of
 * the `michaelis-menten-relu-adam-b4` reference fixture), and reports
 * `x = [Vmax, S, Km]`, `y = [Vmax·S/(Km + S) + noise]` with gaussian noise of standard
 * deviation `noise`.
 *
 * Samples come in chunks of `chunkSize`, and the stream yields to the event loop
 * (`setImmediate`) between chunks, so timers, I/O and signals keep being served however
 * fast the consumers are. Each subscription has its own generator seeded from `seed`;
 * use `share()` to feed several models the same samples. Unsubscribing cancels the
 * pending chunk.
 *
 * @example michaelisMenten({ seed: 1, limit: 10_000 }).pipe(share())
 */
export function michaelisMenten(options: MichaelisMentenOptions = {}): Observable<KineticsSample> {
  // validates every option now, before anything subscribes
  michaelisMentenSamples(options);
  return chunked(() => michaelisMentenSamples(options), options.chunkSize ?? 256);
}

/** A pull source of Michaelis–Menten samples: an iterator that knows when it has no more. */
export interface KineticsSamples extends IterableIterator<KineticsSample> {
  /** True once `limit` samples have been drawn. */
  readonly done: boolean;
}

/**
 * The same stream as `michaelisMenten`, as a synchronous pull source (an iterator), for
 * drivers that take one sample at a time as fast as training does, like `TrainingRun`.
 * The same seed gives the same samples, bit for bit, as the Observable. `chunkSize` does
 * not apply: the consumer decides when to yield.
 *
 * @example new TrainingRun({ id: 'wide', trainer, source: michaelisMentenSamples({ seed: 1 }) })
 */
export function michaelisMentenSamples(options: MichaelisMentenOptions = {}): KineticsSamples {
  const { seed = 0, noise = 0.01, vmax = [0.5, 2], substrate = [0, 10], km = [0.5, 5], limit = Infinity, kmDrift = 0, kmShift } = options;
  requireConfig(Number.isSafeInteger(seed), 'seed', `must be a safe integer, got ${seed}`);
  requireConfig(Number.isFinite(noise) && noise >= 0, 'noise', `must be a finite number ≥ 0, got ${noise}`);
  for (const [field, [lo, hi]] of [['vmax', vmax], ['substrate', substrate], ['km', km]] as const) {
    requireConfig(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi && lo >= 0, field, `must be a range [lo, hi] with 0 ≤ lo ≤ hi, got [${lo}, ${hi}]`);
  }
  requireConfig(km[0] > 0 || substrate[0] > 0, 'km', 'Km and S cannot both reach 0 (the rate would be 0/0)');
  requireConfig(Number.isFinite(kmDrift), 'kmDrift', `must be a finite number, got ${kmDrift}`);
  if (kmShift !== undefined) {
    requireConfig(Number.isSafeInteger(kmShift.at) && kmShift.at >= 0, 'kmShift.at', `must be an integer ≥ 0, got ${kmShift.at}`);
    requireConfig(Number.isFinite(kmShift.by), 'kmShift.by', `must be a finite number, got ${kmShift.by}`);
  }
  requireConfig(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0), 'limit', `must be an integer ≥ 0, got ${limit}`);

  const rng = new Rng(seed);
  let emitted = 0;
  const samples: KineticsSamples = {
    get done() {
      return emitted >= limit;
    },
    next(): IteratorResult<KineticsSample> {
      if (emitted >= limit) return { done: true, value: undefined };
      const v = rng.uniform(vmax[0], vmax[1]);
      const s = rng.uniform(substrate[0], substrate[1]);
      const k = rng.uniform(km[0], km[1]);
      const shift = kmShift !== undefined && emitted >= kmShift.at ? kmShift.by : 0;
      const trueK = kmDrift === 0 && shift === 0 ? k : Math.max(1e-3, k + kmDrift * emitted + shift);
      const rate = (v * s) / (trueK + s) + noise * rng.normal();
      emitted++;
      return { done: false, value: { x: [v, s, k], y: [rate] } };
    },
    [Symbol.iterator]() {
      return samples;
    },
  };
  return samples;
}
